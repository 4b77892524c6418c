"""The report's headline: the two comparisons the benchmark exists for, in one table, then the caveat.

"LDM-trained nnU-Net vs SAMSEG" (synthetic data against an external segmenter) and "LDM data vs randomised data"
(synthetic against SynthSeg-style domain randomisation, same label maps, same nnU-Net budget). Built from
summary.json alone: per-method means with t-based 95 % CIs, and the paired test that :mod:`nph.evaluation.stats`
ran against the baseline (the LDM method must be the baseline; its differences are turned to "LDM − other").
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any

from scipy import stats

from nph.evaluation.schemes import WHOLE

__all__ = ["HEADLINE_HEADER", "HEADLINE_PAIRS", "headline_html", "headline_markdown", "headline_rows"]

#: (title, LDM method, other method): the pairs stated at the top of the report, when both were scored.
HEADLINE_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("LDM-trained nnU-Net vs SAMSEG", "synthetic", "samseg"),
    ("LDM data vs randomised data", "synthetic", "randomized"),
)
HEADLINE_METRICS = {"dice": "Dice", "hd95_mm": "HD95 (mm)", "abs_volume_error_ml": "|volume error| (mL)"}
HEADLINE_HEADER = ["comparison", "metric", "n", "LDM mean [95 % CI]", "other mean [95 % CI]",
                   "LDM − other [95 % CI]", "p (Wilcoxon)", "p Holm"]  # fmt: skip
CAVEAT = ("Toy scale: phantom heads on a coarse grid, a few dozen training cases and a short nnU-Net budget. "
          "These numbers check that the pipeline and its statistics work end to end; they say nothing about "
          "real NPH scans or the thesis-scale models.")  # fmt: skip


def _g(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _mean_ci(entry: Mapping[str, Any]) -> str:
    """Mean and its t-based 95 % CI from the summary's n, mean and SD."""
    mean, sd, n = entry.get("mean"), entry.get("sd"), entry.get("n") or 0
    if mean is None:
        return "n/a"
    if sd is None or n < 2:
        return f"{_g(mean)}"
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return f"{_g(mean)} [{_g(mean - half)}, {_g(mean + half)}]"


def _test(summary: Mapping[str, Any], ldm: str, other: str, metric: str) -> dict[str, Any] | None:
    """The paired test of ``other`` against the baseline ``ldm``, turned into "ldm − other"."""
    for row in summary.get("comparisons", []):
        if (row["structure"], row["metric"], row["method"], row["baseline"]) == (WHOLE, metric, other, ldm):
            flip = {"mean_difference": -row["mean_difference"] if row["mean_difference"] is not None else None,
                    "ci_low": -row["ci_high"] if row["ci_high"] is not None else None,
                    "ci_high": -row["ci_low"] if row["ci_low"] is not None else None}  # fmt: skip
            return {**row, **flip}
    return None


def headline_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows of :data:`HEADLINE_HEADER` for the pairs that were scored (both methods present)."""
    whole = summary.get("structures", {}).get(WHOLE, {})
    rows = []
    for title, ldm, other in HEADLINE_PAIRS:
        if ldm not in whole or other not in whole:
            continue
        for metric, label in HEADLINE_METRICS.items():
            test = _test(summary, ldm, other, metric)
            a, b = whole[ldm]["metrics"][metric], whole[other]["metrics"][metric]
            if test is None:
                diff, p, p_holm, n = "n/a (LDM is not the baseline)", "n/a", "n/a", "n/a"
            else:
                diff = f"{_g(test['mean_difference'])} [{_g(test['ci_low'])}, {_g(test['ci_high'])}]"
                p, p_holm, n = _g(test["p_value"]), _g(test["p_holm"]), str(test["n_pairs"])
            rows.append([title, label, n, _mean_ci(a), _mean_ci(b), diff, p, p_holm])
    return rows


def headline_html(summary: Mapping[str, Any]) -> str:
    """The headline table and the caveat as HTML ("" when neither pair was scored)."""
    rows = headline_rows(summary)
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADLINE_HEADER)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f"<h2>Headline (whole ventricular system)</h2><table id='headline'><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table><p><i>{html.escape(CAVEAT)}</i></p>")  # fmt: skip


def headline_markdown(summary: Mapping[str, Any]) -> str:
    """The headline table and the caveat as Markdown ("" when neither pair was scored)."""
    rows = headline_rows(summary)
    if not rows:
        return ""
    lines = ["## Headline (whole ventricular system)", "", "| " + " | ".join(HEADLINE_HEADER) + " |",
             "|" + "---|" * len(HEADLINE_HEADER)]  # fmt: skip
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([*lines, "", f"*{CAVEAT}*", ""])

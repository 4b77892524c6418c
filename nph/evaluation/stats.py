"""Summary statistics of a benchmark: descriptive, agreement (Bland–Altman, ICC) and paired tests.

- Bland–Altman of ventricle volume (every structure) and Evans index (whole system): :mod:`.agreement`.
- ICC is ICC(2,1) of Shrout & Fleiss (1979): two-way random effects, absolute agreement, single measure,
  over the (reference, predicted) volume pairs — it penalises a bias, unlike ICC(3,1).
- Each method is compared with a baseline (default SynthSeg) per structure and metric by a paired
  two-sided Wilcoxon signed-rank test over the cases where both values are finite; p-values are
  Holm-corrected within each (structure, metric) family across methods. A family of identical pairs has
  p = 1. Mean differences (method − baseline) get percentile bootstrap 95 % CIs from a recorded seed.
- NaNs (a structure both sides lack, :mod:`nph.evaluation.surface`) are left out of means and counted as
  ``n_nan``; a structure only one side has gets worst-case distances, which count like any other value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from nph.evaluation.agreement import bland_altman
from nph.evaluation.schemes import WHOLE

__all__ = [
    "METRICS",
    "bland_altman",
    "bootstrap_mean_ci",
    "compare_to_baseline",
    "describe",
    "holm",
    "icc",
    "json_safe",
    "summarize",
]

#: Per-case columns summarised, with whether higher is better.
METRICS: dict[str, bool] = {
    "dice": True, "hd95_mm": False, "assd_mm": False, "nsd": True, "abs_volume_error_ml": False,
    "rel_volume_error_pct": False, "abs_evans_error": False,
}  # fmt: skip


def _finite(values: Sequence[float] | npt.NDArray) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    return array[np.isfinite(array)]


def describe(values: Sequence[float] | npt.NDArray) -> dict[str, float | int | None]:
    """Mean, SD (ddof 1), median, quartiles, n finite and n NaN; statistics of nothing are None."""
    array = np.asarray(values, dtype=np.float64)
    finite = _finite(array)
    out: dict[str, float | int | None] = {"n": int(finite.size), "n_nan": int(array.size - finite.size)}
    if finite.size == 0:
        return out | {k: None for k in ("mean", "sd", "median", "q1", "q3")}
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    sd = float(finite.std(ddof=1)) if finite.size > 1 else None
    return out | {"mean": float(finite.mean()), "sd": sd, "median": float(median), "q1": float(q1), "q3": float(q3)}


def icc(ratings: npt.NDArray, kind: str = "2,1") -> float:
    """Shrout–Fleiss ICC of an (n subjects, k raters) table: ``"2,1"`` (absolute) or ``"3,1"`` (consistency)."""
    table = np.asarray(ratings, dtype=np.float64)
    table = table[np.isfinite(table).all(axis=1)]
    n, k = table.shape
    if n < 2:
        return float("nan")
    grand = table.mean()
    ss_rows = k * ((table.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((table.mean(axis=0) - grand) ** 2).sum()
    ss_err = ((table - grand) ** 2).sum() - ss_rows - ss_cols
    msr, msc, mse = ss_rows / (n - 1), ss_cols / (k - 1), ss_err / ((n - 1) * (k - 1))
    if kind == "3,1":
        denominator = msr + (k - 1) * mse
        return float((msr - mse) / denominator) if denominator > 0 else float("nan")
    if kind != "2,1":
        raise ValueError(f"icc kind must be '2,1' or '3,1', got {kind!r}")
    denominator = msr + (k - 1) * mse + k * (msc - mse) / n
    return float((msr - mse) / denominator) if denominator > 0 else float("nan")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (NaNs stay NaN and do not count towards m)."""
    p = np.asarray(p_values, dtype=np.float64)
    valid = np.nonzero(np.isfinite(p))[0]
    adjusted = np.full(p.shape, np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    running, m = 0.0, len(order)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def bootstrap_mean_ci(differences: npt.NDArray, *, n_boot: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of paired differences, drawn from ``SeedSequence(seed)``."""
    diff = _finite(differences)
    if diff.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    means = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def _wilcoxon(diff: npt.NDArray) -> tuple[float, float]:
    if diff.size == 0:
        return float("nan"), float("nan")
    if np.all(diff == 0):
        return 0.0, 1.0
    result = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def compare_to_baseline(
    per_case: pd.DataFrame, baseline: str, *, n_boot: int, seed: int, alpha: float = 0.05
) -> list[dict[str, Any]]:
    """Paired tests of every other method against ``baseline`` (module docstring), Holm-corrected."""
    rows: list[dict[str, Any]] = []
    for (structure, metric), family in _families(per_case, baseline):
        start = len(rows)
        for method, diff in family:
            statistic, p_value = _wilcoxon(diff)
            low, high = bootstrap_mean_ci(diff, n_boot=n_boot, seed=seed)
            rows.append(
                {
                    "structure": structure,
                    "metric": metric,
                    "method": method,
                    "baseline": baseline,
                    "n_pairs": int(diff.size),
                    "mean_difference": float(diff.mean()) if diff.size else float("nan"),
                    "ci_low": low,
                    "ci_high": high,
                    "wilcoxon_statistic": statistic,
                    "p_value": p_value,
                }
            )
        for row, adjusted in zip(rows[start:], holm([r["p_value"] for r in rows[start:]]), strict=True):
            row["p_holm"] = adjusted
            row["significant"] = bool(math.isfinite(adjusted) and adjusted < alpha)
    return rows


def _families(per_case: pd.DataFrame, baseline: str):  # type: ignore[no-untyped-def]
    """Yield ((structure, metric), [(method, finite paired differences)]) for each test family."""
    for structure, table in per_case.groupby("structure", sort=False):
        wide = {m: t.set_index("case_id") for m, t in table.groupby("method", sort=False)}
        if baseline not in wide:
            continue
        for metric in METRICS:
            family = []
            for method, values in wide.items():
                if method == baseline:
                    continue
                paired = pd.concat([values[metric], wide[baseline][metric]], axis=1, join="inner").to_numpy(float)
                diff = paired[:, 0] - paired[:, 1]
                family.append((method, diff[np.isfinite(diff)]))
            if any(diff.size for _, diff in family):  # e.g. no Evans index for single ventricles: no test
                yield (structure, metric), family


def summarize(per_case: pd.DataFrame, *, baseline: str | None, n_boot: int, seed: int) -> dict[str, Any]:
    """The content of summary.json: per structure and method descriptive and agreement statistics, tests."""
    structures: dict[str, Any] = {}
    for structure, table in per_case.groupby("structure", sort=False):
        structures[str(structure)] = {}
        for method, rows in table.groupby("method", sort=False):
            ref, pred = rows["reference_ml"].to_numpy(float), rows["predicted_ml"].to_numpy(float)
            structures[str(structure)][str(method)] = {
                "n_cases": len(rows),
                "n_missing": int(rows["flag"].str.contains("missing").sum()),
                "metrics": {metric: describe(rows[metric]) for metric in METRICS},
                "volume_mae_ml": describe(rows["abs_volume_error_ml"]),
                "bland_altman_ml": bland_altman(ref, pred),
                "icc_2_1_volume": icc(np.stack([ref, pred], axis=1)),
            }
            if structure == WHOLE:
                evans = rows["evans_reference"].to_numpy(float), rows["evans_predicted"].to_numpy(float)
                structures[str(structure)][str(method)]["bland_altman_evans"] = bland_altman(*evans)
    methods = list(dict.fromkeys(per_case["method"]))
    comparisons = compare_to_baseline(per_case, baseline, n_boot=n_boot, seed=seed) if baseline else []
    return {
        "methods": methods,
        "baseline": baseline,
        "n_boot": n_boot,
        "seed": seed,
        "structures": structures,
        "comparisons": comparisons,
    }


def json_safe(obj: Any) -> Any:
    """NaN and infinities → None, recursively: JSON has no NaN, and write_json refuses it."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj

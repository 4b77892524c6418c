"""The benchmark report: ``report.html`` (self-contained: figures as base64 PNG) and ``report.md``.

Both carry the same tables, built from summary.json's numbers (formatted to 4 significant digits), the exact
command, the inputs and the versions of the software that produced them.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from typing import Any

from nph.evaluation.comparison import headline_html, headline_markdown
from nph.evaluation.curves import TRAINING_HEADER, training_notes, training_rows
from nph.evaluation.schemes import WHOLE

__all__ = ["bland_altman_table", "comparison_table", "fmt", "render_html", "render_markdown", "summary_table"]

SUMMARY_HEADER = [
    "method",
    "n",
    "missing",
    "Dice mean",
    "Dice SD",
    "HD95 mean (mm)",
    "ASSD mean (mm)",
    "NSD mean",
    "volume MAE (mL)",
    "volume MAE SD",
    "BA bias (mL)",
    "BA LoA low",
    "BA LoA high",
    "ICC(2,1)",
]
BLAND_ALTMAN_HEADER = [
    "method",
    "measure",
    "n",
    "bias",
    "bias 95 % CI",
    "LoA low",
    "LoA low 95 % CI",
    "LoA high",
    "LoA high 95 % CI",
    "slope",
    "slope 95 % CI",
    "p (slope)",
    "proportional bias",
]
#: summary.json entries of the Bland–Altman table, with the measure's name.
BLAND_ALTMAN_ENTRIES = {"bland_altman_ml": "volume (mL)", "bland_altman_evans": "Evans index"}
#: How the numbers were made, printed under the title of both reports (docs/benchmark.md has the details).
RULES = (
    "A structure that one side lacks scores Dice 0 and HD95 = ASSD = the diagonal of the reference's field of view "
    "(flag worst_case_distance); these count in every mean and test. The Evans index of every method is measured "
    "over the skull width of the reference (its labels, or for a ventricle-only reference the test image's head "
    "less evans.scalp_mm a side, flag skull_from_image)."
)
COMPARISON_HEADER = ["metric", "method", "baseline", "pairs", "mean diff", "CI low", "CI high", "p", "p Holm"]


def fmt(value: Any) -> str:
    """A number as the tables print it (4 significant digits; missing as 'n/a')."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def summary_table(summary: Mapping[str, Any], structure: str = WHOLE) -> list[list[str]]:
    """Rows of :data:`SUMMARY_HEADER` for one structure."""
    rows = []
    for method, entry in summary["structures"].get(structure, {}).items():
        m, mae, ba = entry["metrics"], entry["volume_mae_ml"], entry["bland_altman_ml"]
        rows.append(
            [
                method,
                fmt(entry["n_cases"]),
                fmt(entry["n_missing"]),
                fmt(m["dice"]["mean"]),
                fmt(m["dice"]["sd"]),
                fmt(m["hd95_mm"]["mean"]),
                fmt(m["assd_mm"]["mean"]),
                fmt(m["nsd"]["mean"]),
                fmt(mae["mean"]),
                fmt(mae["sd"]),
                fmt(ba["bias"]),
                fmt(ba["loa_low"]),
                fmt(ba["loa_high"]),
                fmt(entry["icc_2_1_volume"]),
            ]
        )
    return rows


def bland_altman_table(summary: Mapping[str, Any], structure: str = WHOLE) -> list[list[str]]:
    """Rows of :data:`BLAND_ALTMAN_HEADER`: per method, volume and (whole system) Evans index agreement."""
    rows = []
    for method, entry in summary["structures"].get(structure, {}).items():
        for key, measure in BLAND_ALTMAN_ENTRIES.items():
            if key in entry:
                ba = entry[key]
                rows.append(
                    [
                        method,
                        measure,
                        fmt(ba["n"]),
                        fmt(ba["bias"]),
                        _ci(ba, "bias"),
                        fmt(ba["loa_low"]),
                        _ci(ba, "loa_low"),
                        fmt(ba["loa_high"]),
                        _ci(ba, "loa_high"),
                        fmt(ba["slope"]),
                        _ci(ba, "slope"),
                        fmt(ba["slope_p"]),
                        fmt(ba["proportional_bias"]),
                    ]
                )
    return rows


def _ci(entry: Mapping[str, Any], key: str) -> str:
    return f"[{fmt(entry[f'{key}_ci_low'])}, {fmt(entry[f'{key}_ci_high'])}]"


def comparison_table(summary: Mapping[str, Any], structure: str = WHOLE) -> list[list[str]]:
    """Rows of :data:`COMPARISON_HEADER` for one structure."""
    return [
        [
            c["metric"],
            c["method"],
            c["baseline"],
            fmt(c["n_pairs"]),
            fmt(c["mean_difference"]),
            fmt(c["ci_low"]),
            fmt(c["ci_high"]),
            fmt(c["p_value"]),
            fmt(c["p_holm"]),
        ]
        for c in summary["comparisons"]
        if c["structure"] == structure
    ]


def _html_table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _structures(summary: Mapping[str, Any]) -> list[str]:
    return list(summary["structures"])


_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #bbb;padding:3px 6px}"
    "th{background:#eee}img{max-width:100%;margin:.5em 0}pre{background:#f6f6f6;padding:.6em;overflow-x:auto}"
)


def render_html(summary: Mapping[str, Any], figures: Mapping[str, bytes], provenance: Mapping[str, Any]) -> str:
    """The self-contained HTML report: every figure inline as a data: URI, no external resource."""
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>nph benchmark</title>"
        f"<style>{_STYLE}</style></head><body><h1>Ventricle segmentation benchmark</h1>",
        f"<p>Baseline for the paired tests: <b>{html.escape(str(summary['baseline']))}</b>. "
        "Wilcoxon signed-rank, Holm-corrected per metric; 95 % bootstrap CIs of mean differences.</p>",
        f"<p>{html.escape(RULES)}</p>",
        headline_html(summary),
    ]
    structures = _structures(summary)
    for index, structure in enumerate(structures):
        key = structure.replace(" ", "-")
        parts.append(f"<h2>{html.escape(structure)}</h2>")
        parts.append(_html_table(SUMMARY_HEADER, summary_table(summary, structure), f"summary-{key}"))
        parts.append(_html_table(BLAND_ALTMAN_HEADER, bland_altman_table(summary, structure), f"bland-altman-{key}"))
        if summary["comparisons"]:
            parts.append(_html_table(COMPARISON_HEADER, comparison_table(summary, structure), f"comparison-{key}"))
        if index == 0:  # the figures belong to the whole ventricular system, listed first
            parts.append("<h2>Figures (whole ventricular system)</h2>")
            for name, png in figures.items():
                data = base64.b64encode(png).decode("ascii")
                parts.append(
                    f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(name)}</figcaption></figure>"
                )
    if summary.get("training"):
        parts.append("<h2>Training (last epoch; curves in the figure Learning curves)</h2>")
        parts.append(_html_table(TRAINING_HEADER, training_rows(summary), "training"))
        parts += [f"<p>{html.escape(note)}</p>" for note in training_notes(summary)]
    parts.append("<h2>Provenance</h2><pre>" + html.escape(_provenance_text(provenance)) + "</pre></body></html>")
    return "\n".join(parts)


def render_markdown(summary: Mapping[str, Any], figure_files: Mapping[str, str], provenance: Mapping[str, Any]) -> str:
    """report.md: the same tables, figures referenced as files beside it."""
    parts = [
        "# Ventricle segmentation benchmark",
        "",
        f"Baseline for the paired tests: **{summary['baseline']}** (Wilcoxon signed-rank, Holm-corrected).",
        "",
        RULES,
        "",
        headline_markdown(summary),
    ]
    for index, structure in enumerate(_structures(summary)):
        parts += [f"## {structure}", "", _md_table(SUMMARY_HEADER, summary_table(summary, structure)), ""]
        parts += [
            "Bland–Altman (method − reference):",
            "",
            _md_table(BLAND_ALTMAN_HEADER, bland_altman_table(summary, structure)),
            "",
        ]
        if summary["comparisons"]:
            parts += [_md_table(COMPARISON_HEADER, comparison_table(summary, structure)), ""]
        if index == 0:
            parts += ["## Figures (whole ventricular system)", ""]
            parts += [f"![{name}]({path})" for name, path in figure_files.items()] + [""]
    if summary.get("training"):
        parts += ["## Training (last epoch; curves in the figure Learning curves)", ""]
        parts += [_md_table(TRAINING_HEADER, training_rows(summary)), "", *(f"- {n}" for n in training_notes(summary))]
    parts += ["", "## Provenance", "", "```", _provenance_text(provenance), "```", ""]
    return "\n".join(parts)


def _provenance_text(provenance: Mapping[str, Any]) -> str:
    lines = []
    for key, value in provenance.items():
        if isinstance(value, Mapping):
            lines.append(f"{key}:")
            lines += [f"  {k}: {v}" for k, v in value.items()]
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)

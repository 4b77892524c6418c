"""Reading the sampling sweep: the Pareto front, the rule that picks the default, and the CSV + plot it writes.

The rule: among settings that cost at most ``budget`` TFLOP per pair, keep those no worse than the reference
(DDIM 50, guidance 3) on each quality measure — mean |requested − realised| and defect share at most the
reference's mean plus its standard error over seeds (sd / √seeds), Pearson r at least its mean minus that
error — and take the cheapest (ties: the lower error). No such setting → no default (``None``), never a guess.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from nph.io.atomic import write_bytes, write_text
from nph.sampling.defaults import DDIM_50, SamplingSettings
from nph.sampling.diffusion import interval_text

__all__ = ["BUDGET_TFLOP", "choose", "pareto_front", "row_of", "write_report"]

#: Issue 15's goal: ≤ 80 TFLOP per thesis-size pair (≈ 8 H100-hours per 100k pairs at 30 % MFU).
BUDGET_TFLOP = 80.0


def row_of(summary: pd.DataFrame, settings: SamplingSettings) -> pd.Series:
    """The summary row of ``settings``; KeyError when the sweep did not run it."""
    match = summary[
        (summary["sampler"] == settings.sampler)
        & (summary["steps"] == settings.steps)
        & (summary["guidance"] == settings.guidance)
        & (summary["guidance_interval"] == interval_text(settings.guidance_interval))
    ]
    if match.empty:
        raise KeyError(f"the sweep has no row for {settings}")
    return match.iloc[0]


def _se(row: pd.Series, key: str) -> float:
    """Standard error over seeds of ``key`` (0 when a single seed gives no spread)."""
    value = float(row.get(f"{key}_sd", float("nan"))) / math.sqrt(float(row.get("seeds", 1)))
    return 0.0 if math.isnan(value) else value


def choose(
    summary: pd.DataFrame, reference: SamplingSettings = DDIM_50, budget: float = BUDGET_TFLOP
) -> pd.Series | None:
    """The cheapest setting within ``budget`` that is no worse than ``reference`` (module docstring), or None."""
    ref = row_of(summary, reference)
    ok = (
        (summary["tflop_per_pair"] <= budget)
        & (summary["mae"] <= ref["mae"] + _se(ref, "mae"))
        & (summary["pearson_r"] >= ref["pearson_r"] - _se(ref, "pearson_r"))
        & (summary["defect_share"] <= ref["defect_share"] + _se(ref, "defect_share"))
    )
    eligible = summary[ok].sort_values(["tflop_per_pair", "mae"])
    return None if eligible.empty else eligible.iloc[0]


def pareto_front(summary: pd.DataFrame) -> pd.DataFrame:
    """Settings no other setting beats on cost, error and defect share at once (each no worse, one better)."""
    keys = ["tflop_per_pair", "mae", "defect_share"]
    values = summary[keys].to_numpy()
    keep = []
    for i, row in enumerate(values):
        dominated = any((other <= row).all() and (other < row).any() for j, other in enumerate(values) if j != i)
        keep.append(not dominated)
    return summary[keep]


def _label(row: pd.Series) -> str:
    interval = f" [{row['guidance_interval']}]" if row["guidance_interval"] else ""
    return f"{row['sampler']} {row['steps']}, g{row['guidance']:g}{interval}"


def _plot(summary: pd.DataFrame, chosen: pd.Series | None, reference: pd.Series, budget: float) -> bytes:
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=100)
    points = axes.scatter(
        summary["tflop_per_pair"],
        summary["mae"],
        c=summary["defect_share"],
        cmap="viridis",
        vmin=0,
        vmax=max(0.01, float(summary["defect_share"].max())),
        s=30,
    )
    ordered = summary.sort_values(["tflop_per_pair", "mae"])
    front = ordered[ordered["mae"] < ordered["mae"].cummin().shift(fill_value=float("inf"))]
    axes.step(front["tflop_per_pair"], front["mae"], "k-", lw=0.8, where="post", label="Pareto front (cost, error)")
    axes.scatter(
        [reference["tflop_per_pair"]],
        [reference["mae"]],
        marker="s",
        facecolors="none",
        edgecolors="r",
        s=120,
        label=f"reference: {_label(reference)}",
    )
    if chosen is not None:
        axes.scatter(
            [chosen["tflop_per_pair"]], [chosen["mae"]], marker="*", color="r", s=160, label=f"chosen: {_label(chosen)}"
        )
    axes.axvline(budget, color="grey", ls=":", lw=1, label=f"budget {budget:g} TFLOP")
    axes.set(
        xscale="log",
        xlabel="TFLOP per thesis-size pair",
        ylabel="mean |requested − realised| (normalised)",
        title="mask LDM sampling: cost against conditioning error",
    )
    figure.colorbar(points, ax=axes, label="share of maps with a defect")
    axes.legend(fontsize=7, loc="upper right")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def write_report(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    out: str | Path,
    *,
    reference: SamplingSettings = DDIM_50,
    budget: float = BUDGET_TFLOP,
) -> pd.Series | None:
    """Write ``sweep_rows.csv`` (per seed), ``sweep.csv`` (per setting, with ``pareto`` and ``chosen`` columns)
    and ``pareto.png`` into ``out``; returns the chosen row (None: nothing within budget is as good)."""
    out = Path(out)
    chosen = choose(summary, reference, budget)
    table = summary.copy()
    table["pareto"] = table.index.isin(pareto_front(summary).index)
    table["chosen"] = False if chosen is None else table.index == chosen.name
    write_text(out / "sweep_rows.csv", rows.to_csv(index=False))
    write_text(out / "sweep.csv", table.to_csv(index=False))
    write_bytes(out / "pareto.png", _plot(summary, chosen, row_of(summary, reference), budget))
    return chosen

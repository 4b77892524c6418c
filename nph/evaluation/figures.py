"""The benchmark's figures (matplotlib, Agg): box plots, Bland–Altman, volume scatter, Dice vs volume, overlays.

Each function returns a :class:`~matplotlib.figure.Figure` whose artists hold the plotted numbers, so tests
can check that a figure shows what it claims; :func:`png_bytes` renders and closes it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from nph.evaluation.agreement import bland_altman

__all__ = [
    "BLAND_ALTMAN_ROWS",
    "BOX_METRICS",
    "bland_altman_figure",
    "box_figure",
    "dice_vs_volume_figure",
    "overlay_figure",
    "pick_cases",
    "png_bytes",
    "volume_scatter_figure",
]

BOX_METRICS = {
    "dice": "Dice", "hd95_mm": "HD95 (mm)", "assd_mm": "ASSD (mm)", "nsd": "NSD", "abs_volume_error_ml": "|ΔV| (mL)",
}  # fmt: skip
REFERENCE_COLOUR, PREDICTION_COLOUR = "#1b9e77", "#d95f02"


def png_bytes(figure: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG and release it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _methods(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(table["method"]))


def box_figure(table: pd.DataFrame) -> Figure:
    """One box plot per metric of :data:`BOX_METRICS`, one box per method (finite values)."""
    methods = _methods(table)
    figure, axes = plt.subplots(
        1, len(BOX_METRICS), figsize=(3.2 * len(BOX_METRICS), 3.6), squeeze=False, layout="constrained"
    )
    for ax, (metric, title) in zip(axes[0], BOX_METRICS.items(), strict=True):
        data = [table.loc[table["method"] == m, metric].dropna().to_numpy(float) for m in methods]
        ax.boxplot(data, tick_labels=methods, showmeans=True)
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    figure.suptitle("Whole ventricular system, per case")
    return figure


#: Bland–Altman rows: (reference column, predicted column, axis label).
BLAND_ALTMAN_ROWS = (
    ("reference_ml", "predicted_ml", "volume (mL)"),
    ("evans_reference", "evans_predicted", "Evans index"),
)


def bland_altman_figure(table: pd.DataFrame) -> Figure:
    """Per method (columns) and measure (rows: volume, Evans index): mean against difference (method − reference),
    the bias and 95 % limits of agreement with their 95 % CIs as bands, and the proportional-bias regression line."""
    methods = _methods(table)
    figure, axes = plt.subplots(2, len(methods), figsize=(4.0 * len(methods), 6.8), squeeze=False, layout="constrained")
    for row, (ref_col, pred_col, label) in enumerate(BLAND_ALTMAN_ROWS):
        for ax, method in zip(axes[row], methods, strict=True):
            rows = table[table["method"] == method]
            reference, predicted = rows[ref_col].to_numpy(float), rows[pred_col].to_numpy(float)
            ba = bland_altman(reference, predicted)
            _bland_altman_axes(ax, reference, predicted, ba)
            bias = "no pairs" if ba["bias"] is None else f"bias {ba['bias']:.3g}"
            ax.set(xlabel=f"mean {label}", ylabel=f"method − reference {label}")
            ax.set_title(f"{method}: {label}, {bias}", fontsize=9)
    return figure


def _bland_altman_axes(ax: Axes, reference: npt.NDArray, predicted: npt.NDArray, ba: Mapping[str, Any]) -> None:
    """Points, then lines in a fixed order: bias, lower limit, upper limit, regression (where defined)."""
    ax.scatter((reference + predicted) / 2.0, predicted - reference, s=14)
    for key, style in (("bias", "-"), ("loa_low", "--"), ("loa_high", "--")):
        if ba[key] is not None:
            ax.axhline(ba[key], linestyle=style, color="grey")
            low, high = ba.get(f"{key}_ci_low"), ba.get(f"{key}_ci_high")
            if low is not None and high is not None:
                ax.axhspan(low, high, color="grey", alpha=0.15, linewidth=0)
    if ba["slope"] is not None:
        x = np.array([np.nanmin((reference + predicted) / 2.0), np.nanmax((reference + predicted) / 2.0)])
        ax.plot(
            x,
            ba["intercept"] + ba["slope"] * x,
            color="tab:red",
            linewidth=1,
            label=f"slope {ba['slope']:.2f} (p={ba['slope_p']:.2g})",
        )
        ax.legend(fontsize=7)


def volume_scatter_figure(table: pd.DataFrame) -> Figure:
    """Predicted against reference ventricle volume, every method on one axes, with the identity line."""
    figure, ax = plt.subplots(figsize=(4.6, 4.2))
    for method in _methods(table):
        rows = table[table["method"] == method]
        ax.scatter(rows["reference_ml"], rows["predicted_ml"], s=16, label=method)
    top = float(np.nanmax(table[["reference_ml", "predicted_ml"]].to_numpy(float))) * 1.05 or 1.0
    ax.plot([0, top], [0, top], color="grey", linewidth=1, label="identity")
    ax.set(xlabel="reference volume (mL)", ylabel="predicted volume (mL)", title="Ventricle volume")
    ax.legend(fontsize=8)
    return figure


def dice_vs_volume_figure(table: pd.DataFrame) -> Figure:
    """Dice against reference ventricle volume per method: where does a method break as ventricles grow?"""
    figure, ax = plt.subplots(figsize=(4.6, 4.2))
    for method in _methods(table):
        rows = table[table["method"] == method].sort_values("reference_ml")
        ax.plot(rows["reference_ml"], rows["dice"], marker="o", markersize=4, label=method)
    ax.set(xlabel="reference ventricle volume (mL)", ylabel="Dice", title="Dice vs ventricle size", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return figure


def pick_cases(table: pd.DataFrame, method: str) -> dict[str, str]:
    """Best, median and worst case of ``method`` by whole-system Dice (NaN counts as worst)."""
    rows = table[table["method"] == method].assign(_d=lambda t: t["dice"].fillna(-1.0))
    rows = rows.sort_values(["_d", "case_id"], ascending=[False, True]).reset_index(drop=True)
    return {
        "best": str(rows.loc[0, "case_id"]),
        "median": str(rows.loc[(len(rows) - 1) // 2, "case_id"]),
        "worst": str(rows.loc[len(rows) - 1, "case_id"]),
    }


def overlay_figure(
    background: npt.NDArray,
    reference: npt.NDArray[np.bool_],
    prediction: npt.NDArray[np.bool_],
    title: str,
    spacing: tuple[float, float, float],
) -> Figure:
    """Reference (green) and predicted (orange) contours on the axial and coronal slices through the
    reference's centroid (the image centre if the reference is empty), drawn at true aspect ratio."""
    centre = (
        [round(float(c)) for c in np.argwhere(reference).mean(axis=0)]
        if reference.any()
        else [s // 2 for s in reference.shape]
    )
    views = {
        "axial": (np.s_[:, :, centre[2]], spacing[1] / spacing[0]),
        "coronal": (np.s_[:, centre[1], :], spacing[2] / spacing[0]),
    }
    figure, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
    for ax, (view, (index, aspect)) in zip(axes, views.items(), strict=True):
        ax.imshow(background[index].T, cmap="gray", origin="lower", aspect=aspect)
        for mask, colour in ((reference, REFERENCE_COLOUR), (prediction, PREDICTION_COLOUR)):
            if mask[index].any():
                ax.contour(mask[index].T.astype(float), levels=[0.5], colors=[colour], linewidths=1.2)
        ax.set_title(view)
        ax.axis("off")
    figure.suptitle(title, fontsize=9)
    return figure

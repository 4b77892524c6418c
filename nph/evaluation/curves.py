"""Learning curves of trained segmenters in the benchmark: ``training_curve.csv`` beside a method's predictions.

`nph nnunet predict` copies the trained model's own record of its training into the prediction folder; a folder
from another tool (SAMSEG, SynthSeg) has none. This module owns that file's format (written and read only here),
and turns the curves into the report's "Learning curves" figure and summary.json's ``training`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nph.errors import InputError
from nph.io.atomic import write_text

__all__ = [
    "CURVE_COLUMNS",
    "CURVE_FILE",
    "TRAINING_HEADER",
    "curves_figure",
    "read_curve",
    "read_curves",
    "training_notes",
    "training_rows",
    "training_summary",
    "write_curve",
]

CURVE_FILE = "training_curve.csv"
#: One row per epoch; pseudo_dice is the trainer's mean foreground Dice on its validation batches.
CURVE_COLUMNS = ("epoch", "train_loss", "val_loss", "pseudo_dice", "ema_pseudo_dice")
LOSSES = ("train_loss", "val_loss")


def write_curve(folder: str | Path, values: Mapping[str, Sequence[float]]) -> Path:
    """Write ``{column: one value per epoch}`` (every column but ``epoch``) as ``folder/training_curve.csv``.

    Numbers are written as Python's shortest round-trip form, so reading them back gives the same floats.

    Raises:
        ValueError: a column is missing or unknown, or the columns differ in length.
    """
    if set(values) != set(CURVE_COLUMNS[1:]):
        raise ValueError(f"curve columns {sorted(values)}: expected {list(CURVE_COLUMNS[1:])}")
    lengths = {name: len(column) for name, column in values.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"curve columns differ in length: {lengths}")
    lines = [",".join(CURVE_COLUMNS)]
    for epoch in range(next(iter(lengths.values()))):
        lines.append(",".join([str(epoch), *(repr(float(values[c][epoch])) for c in CURVE_COLUMNS[1:])]))
    return write_text(Path(folder) / CURVE_FILE, "\n".join(lines) + "\n")


def read_curve(folder: str | Path) -> pd.DataFrame | None:
    """The curve of a prediction folder, or None when it holds none.

    Raises:
        InputError: the file is not a curve (columns, numbers, epochs 0..n-1).
    """
    path = Path(folder) / CURVE_FILE
    if not path.is_file():
        return None
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a learning-curve CSV ({error})") from error
    if list(table.columns) != list(CURVE_COLUMNS):
        raise InputError(f"{path}: columns {list(table.columns)}, expected {list(CURVE_COLUMNS)}")
    if table.empty or not all(pd.api.types.is_numeric_dtype(t) for t in table.dtypes):
        raise InputError(f"{path}: expected one row of numbers per epoch (nan for a missing value)")
    if table["epoch"].tolist() != list(range(len(table))):
        raise InputError(f"{path}: epochs must run 0, 1, ..., {len(table) - 1} in order")
    return table.astype({c: float for c in CURVE_COLUMNS[1:]})


def read_curves(folders: Mapping[str, str | Path]) -> dict[str, pd.DataFrame]:
    """``{method: curve}`` for the prediction folders that hold one, in the order given."""
    curves = {method: read_curve(folder) for method, folder in folders.items()}
    return {method: curve for method, curve in curves.items() if curve is not None}


def _non_finite_loss_epochs(curve: pd.DataFrame) -> list[int]:
    bad = ~np.isfinite(curve[list(LOSSES)].to_numpy(float)).all(axis=1)
    return [int(e) for e in curve.loc[bad, "epoch"]]


def training_summary(curves: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, Any]]:
    """summary.json's ``training``: per method the epochs trained, the last epoch's numbers, non-finite losses."""
    out = {}
    for method, curve in curves.items():
        last = curve.iloc[-1]
        out[method] = {
            "epochs": len(curve),
            **{f"final_{c}": float(last[c]) for c in CURVE_COLUMNS[1:]},
            "non_finite_loss_epochs": _non_finite_loss_epochs(curve),
        }
    return out


def curves_figure(curves: Mapping[str, pd.DataFrame], methods: Sequence[str]) -> Figure:
    """Loss (train solid, validation dashed) and pseudo Dice (raw dotted, EMA solid) against epoch.

    A method keeps its colour from the report's other figures (matplotlib's cycle in the order of ``methods``).
    Non-finite values are left out of the lines; a method with any non-finite loss says so in the legend.
    """
    figure, (loss_ax, dice_ax) = plt.subplots(1, 2, figsize=(9.6, 3.8), layout="constrained")
    for method, curve in curves.items():
        colour = f"C{list(methods).index(method) % 10}"
        epochs = curve["epoch"].to_numpy(int)
        bad = " (non-finite loss)" if _non_finite_loss_epochs(curve) else ""
        for column, style, ax, label in (
            ("train_loss", "-", loss_ax, f"{method} train{bad}"),
            ("val_loss", "--", loss_ax, f"{method} validation"),
            ("pseudo_dice", ":", dice_ax, f"{method} pseudo Dice"),
            ("ema_pseudo_dice", "-", dice_ax, f"{method} EMA"),
        ):
            y = curve[column].to_numpy(float)
            ax.plot(epochs, np.where(np.isfinite(y), y, np.nan), style, color=colour, marker="o", ms=3, label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="Training and validation loss")
    dice_ax.set(xlabel="epoch", ylabel="pseudo Dice (validation batches)", title="Pseudo Dice", ylim=(-0.02, 1.02))
    last = max((len(curve) - 1 for curve in curves.values()), default=0)
    for ax in (loss_ax, dice_ax):
        ax.set_xlim(-0.5, last + 0.5)  # a run of one epoch still gets an axis of whole epochs
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.legend(fontsize=7)
    figure.suptitle("Learning curves")
    return figure


def _g(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


TRAINING_HEADER = ["method", "epochs", "train loss", "validation loss", "pseudo Dice", "EMA pseudo Dice"]


def training_rows(summary: Mapping[str, Any]) -> list[list[str]]:
    """Rows of :data:`TRAINING_HEADER`: each method's last epoch, from summary.json's ``training``."""
    return [
        [method, str(t["epochs"]), *(_g(t[f"final_{c}"]) for c in CURVE_COLUMNS[1:])]
        for method, t in summary.get("training", {}).items()
    ]


def training_notes(summary: Mapping[str, Any]) -> list[str]:
    """One sentence per method whose loss was not finite in some epoch (its curve is drawn where finite)."""
    return [
        f"{method}: non-finite training or validation loss in epoch(s) "
        f"{', '.join(map(str, t['non_finite_loss_epochs']))} (its curves are drawn where finite)."
        for method, t in summary.get("training", {}).items()
        if t["non_finite_loss_epochs"]
    ]

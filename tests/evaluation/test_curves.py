"""training_curve.csv: its format, the Learning curves figure and summary.json's ``training`` entry."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from nph.errors import InputError
from nph.evaluation.curves import (
    CURVE_FILE,
    curves_figure,
    read_curve,
    read_curves,
    training_notes,
    training_rows,
    training_summary,
    write_curve,
)

GOOD = {
    "train_loss": [0.9, 0.5, 0.1 + 0.2],
    "val_loss": [1.0, 0.7, 0.4],
    "pseudo_dice": [0.1, 0.4, 0.6],
    "ema_pseudo_dice": [0.1, 0.13, 0.177],
}
DIVERGED = {"train_loss": [0.9, math.nan], "val_loss": [math.inf, 0.8], "pseudo_dice": [0.0, 0.0],
            "ema_pseudo_dice": [0.0, 0.0]}  # fmt: skip


def test_round_trip_keeps_every_float(tmp_path) -> None:
    write_curve(tmp_path, GOOD)
    table = read_curve(tmp_path)
    assert table["epoch"].tolist() == [0, 1, 2]
    for column, values in GOOD.items():
        assert table[column].tolist() == values  # 0.1 + 0.2 = 0.30000000000000004 survives
    assert read_curve(tmp_path / "elsewhere") is None
    with pytest.raises(ValueError, match="differ in length"):
        write_curve(tmp_path, {**GOOD, "val_loss": [1.0]})
    with pytest.raises(ValueError, match="expected"):
        write_curve(tmp_path, {k: v for k, v in GOOD.items() if k != "pseudo_dice"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epoch,loss\n0,1.0\n", "columns ['epoch', 'loss']"),
        ("epoch,train_loss,val_loss,pseudo_dice,ema_pseudo_dice\n", "one row of numbers per epoch"),
        ("epoch,train_loss,val_loss,pseudo_dice,ema_pseudo_dice\n0,low,1,0,0\n", "one row of numbers per epoch"),
        ("epoch,train_loss,val_loss,pseudo_dice,ema_pseudo_dice\n1,1,1,0,0\n0,1,1,0,0\n", "epochs must run 0, 1"),
        ("", "not a learning-curve CSV"),
    ],
)
def test_a_bad_curve_file_is_an_input_error(tmp_path, text, message) -> None:
    (tmp_path / CURVE_FILE).write_text(text)
    with pytest.raises(InputError, match=re.escape(message)) as error:
        read_curve(tmp_path)
    assert str(tmp_path / CURVE_FILE) in str(error.value)


def test_summary_and_notes_name_the_last_epoch_and_non_finite_losses(tmp_path) -> None:
    for method, values in (("synthetic", GOOD), ("randomized", DIVERGED)):
        write_curve(tmp_path / method, values)
    (tmp_path / "samseg").mkdir()
    curves = read_curves({m: tmp_path / m for m in ("synthetic", "samseg", "randomized")})
    assert list(curves) == ["synthetic", "randomized"]  # SAMSEG has no curve: left out
    summary = training_summary(curves)
    assert summary["synthetic"] == {"epochs": 3, "final_train_loss": 0.1 + 0.2, "final_val_loss": 0.4,
                                    "final_pseudo_dice": 0.6, "final_ema_pseudo_dice": 0.177,
                                    "non_finite_loss_epochs": []}  # fmt: skip
    assert summary["randomized"]["non_finite_loss_epochs"] == [0, 1] and summary["randomized"]["epochs"] == 2
    assert math.isnan(summary["randomized"]["final_train_loss"])
    rows = training_rows({"training": summary})
    assert rows[0] == ["synthetic", "3", "0.3", "0.4", "0.6", "0.177"] and rows[1][2] == "n/a"
    assert training_notes({"training": summary}) == [
        "randomized: non-finite training or validation loss in epoch(s) 0, 1 (its curves are drawn where finite)."
    ]


def test_figure_draws_each_method_in_its_report_colour_where_finite() -> None:
    curves = {"synthetic": pd.DataFrame({"epoch": [0, 1, 2], **GOOD}),
              "randomized": pd.DataFrame({"epoch": [0, 1], **DIVERGED})}  # fmt: skip
    figure = curves_figure(curves, ["synthetic", "samseg", "randomized"])
    loss_ax, dice_ax = figure.axes
    lines = {line.get_label(): line for ax in figure.axes for line in ax.get_lines()}
    assert set(lines) == {
        "synthetic train", "synthetic validation", "synthetic pseudo Dice", "synthetic EMA",
        "randomized train (non-finite loss)", "randomized validation", "randomized pseudo Dice", "randomized EMA",
    }  # fmt: skip
    assert lines["synthetic validation"].get_ydata().tolist() == GOOD["val_loss"]
    assert lines["synthetic EMA"] in dice_ax.get_lines() and lines["synthetic train"] in loss_ax.get_lines()
    train = lines["randomized train (non-finite loss)"].get_ydata()
    assert train[0] == 0.9 and np.isnan(train[1])  # drawn where finite
    assert np.isnan(lines["randomized validation"].get_ydata()[0])  # inf is left out, not drawn off the axes
    assert to_hex(lines["synthetic train"].get_color()) == to_hex("C0")
    assert to_hex(lines["randomized EMA"].get_color()) == to_hex("C2")  # third method, as in the other figures
    assert figure.get_suptitle() == "Learning curves"
    assert loss_ax.get_xlim() == (-0.5, 2.5) and all(t == int(t) for t in loss_ax.get_xticks())
    one = curves_figure({"real": pd.DataFrame({"epoch": [0], **{k: v[:1] for k, v in GOOD.items()}})}, ["real"])
    one.canvas.draw()
    assert [t for t in one.axes[0].get_xticks() if -0.5 <= t <= 0.5] == [0.0]  # one epoch: one whole tick

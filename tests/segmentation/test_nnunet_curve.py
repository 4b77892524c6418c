"""The learning curve copied from an nnU-Net checkpoint: written by nnU-Net's own logger and save_checkpoint."""

from __future__ import annotations

import csv
import logging
import math
import pathlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nnunetv2.training.logging.nnunet_logger import MetaLogger
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nph.evaluation.curves import CURVE_COLUMNS, CURVE_FILE, read_curve
from nph.segmentation.nnunet_curve import read_fold_curve, write_fold_curve

#: Per epoch: train loss, validation loss, per-class pseudo Dice (nnU-Net's types: float32 losses, float64 Dice).
EPOCHS = [
    (np.float32(0.8123), np.float32(0.7711), [np.float64(0.21), np.float64(0.35)]),
    (np.float32("nan"), np.float32(0.6502), [np.float64(0.42), np.float64(np.nan)]),
    (np.float32(-0.1337), np.float32(-0.0991), [np.float64(0.61), np.float64(0.7)]),
]


def _nnunet_checkpoint(fold: Path, name: str = "checkpoint_final.pth", epochs=EPOCHS) -> MetaLogger:
    """A checkpoint written by nnU-Net's own ``save_checkpoint`` after logging ``epochs`` as its trainer does."""
    logger = MetaLogger(str(fold), resume=False)
    for epoch, (train, val, per_class) in enumerate(epochs):
        logger.log("epoch_start_timestamps", 1000.0 + epoch, epoch)
        logger.log("lrs", 0.01 * (1 - epoch / 10), epoch)
        logger.log("train_losses", train, epoch)
        logger.log("mean_fg_dice", np.nanmean(per_class), epoch)  # nnU-Net adds ema_fg_dice itself
        logger.log("dice_per_class_or_region", per_class, epoch)
        logger.log("val_losses", val, epoch)
        logger.log("epoch_end_timestamps", 1001.0 + epoch, epoch)
    network = torch.nn.Conv3d(1, 2, 3)
    trainer = SimpleNamespace(
        local_rank=0, disable_checkpointing=False, is_ddp=False, network=network,
        optimizer=torch.optim.SGD(network.parameters(), lr=0.01), grad_scaler=None, logger=logger,
        _best_ema=logger.get_value("ema_fg_dice", step=-1), current_epoch=len(epochs) - 1,
        my_init_kwargs={"plans": {"p": 1}, "configuration": "3d_fullres", "fold": 0, "dataset_json": {},
                        "device": torch.device("cpu")},
        inference_allowed_mirroring_axes=(0, 1, 2),
    )  # fmt: skip
    fold.mkdir(parents=True, exist_ok=True)
    nnUNetTrainer.save_checkpoint(trainer, str(fold / name))
    return logger


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_csv_holds_nnunets_logged_numbers(tmp_path: Path) -> None:
    fold = tmp_path / "fold_0"
    logger = _nnunet_checkpoint(fold)
    out = tmp_path / "pred"
    assert write_fold_curve(fold, out) == out / CURVE_FILE
    with (out / CURVE_FILE).open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CURVE_COLUMNS and [r["epoch"] for r in rows] == ["0", "1", "2"]
    ema = None
    for row, (train, val, per_class), logged_ema in zip(rows, EPOCHS, logger.get_value("ema_fg_dice", None),
                                                        strict=True):  # fmt: skip
        assert _same(float(row["train_loss"]), float(train)) and _same(float(row["val_loss"]), float(val))
        assert float(row["pseudo_dice"]) == float(np.nanmean(per_class))
        ema = float(np.nanmean(per_class)) if ema is None else 0.9 * ema + 0.1 * float(np.nanmean(per_class))
        assert float(row["ema_pseudo_dice"]) == float(logged_ema) == pytest.approx(ema, abs=1e-12)
    assert rows[1]["train_loss"] == "nan" and float(rows[0]["train_loss"]) == float(np.float32(0.8123))
    table = read_curve(out)  # the benchmark reads the same numbers back
    assert table["val_loss"].tolist() == [float(v) for _, v, _ in EPOCHS]
    assert table["pseudo_dice"].tolist() == pytest.approx([0.28, 0.42, 0.655])


def test_latest_checkpoint_is_read_when_there_is_no_final(tmp_path: Path) -> None:
    _nnunet_checkpoint(tmp_path / "fold_0", "checkpoint_latest.pth", EPOCHS[:2])
    _nnunet_checkpoint(tmp_path / "fold_0", "checkpoint_best.pth", EPOCHS[:1])
    assert read_fold_curve(tmp_path / "fold_0")["val_loss"] == [float(EPOCHS[0][1]), float(EPOCHS[1][1])]


class _Payload:
    """Unpickling this would create a file: what weights_only=True must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (pathlib.Path.touch, (self.marker,))


def test_unsafe_checkpoint_is_refused_and_a_stale_curve_removed(tmp_path: Path, caplog) -> None:
    fold, out, marker = tmp_path / "fold_0", tmp_path / "pred", tmp_path / "unpickled"
    fold.mkdir()
    torch.save({"logging": {"train_losses": [_Payload(marker)]}}, fold / "checkpoint_final.pth")
    out.mkdir()
    (out / CURVE_FILE).write_text("from another model\n")
    with caplog.at_level(logging.WARNING):
        assert write_fold_curve(fold, out) is None
    assert not marker.exists() and not (out / CURVE_FILE).exists()
    assert "not readable with weights_only=True" in caplog.text and str(fold / "checkpoint_final.pth") in caplog.text


def test_checkpoints_without_a_usable_record(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"checkpoint_final\.pth"):
        read_fold_curve(tmp_path)
    torch.save({"network_weights": {}}, tmp_path / "checkpoint_final.pth")
    with pytest.raises(RuntimeError, match="no nnU-Net training record"):
        read_fold_curve(tmp_path)
    record = {"train_losses": [0.5, 0.4], "val_losses": [0.6], "mean_fg_dice": [0.1, 0.2], "ema_fg_dice": [0.1, 0.11]}
    torch.save({"logging": record}, tmp_path / "checkpoint_final.pth")
    with pytest.raises(RuntimeError, match="not one value per epoch"):
        read_fold_curve(tmp_path)
    torch.save({"logging": {key: [] for key in record}}, tmp_path / "checkpoint_final.pth")  # before epoch 0 ended
    with pytest.raises(RuntimeError, match="not one value per epoch"):
        read_fold_curve(tmp_path)

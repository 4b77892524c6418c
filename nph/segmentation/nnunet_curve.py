"""The learning curve of a trained nnU-Net fold, taken from nnU-Net's own record in the fold's checkpoint.

Why the checkpoint and not ``training_log_*.txt``: the checkpoint's ``logging`` entry holds nnU-Net's per-epoch
lists (``train_losses``, ``val_losses``, ``mean_fg_dice``, ``ema_fg_dice``) exactly, one value per epoch, as the
weights that predict were trained. The text log rounds to 4 decimals, prints only per-class pseudo Dice (in a
numpy-version-dependent repr), so mean and EMA would have to be recomputed (a second copy of nnU-Net's logic), and
a resumed run starts a new log that repeats the epochs after its last checkpoint. Reading the checkpoint is safe:
``torch.load(weights_only=True)`` with only numpy's float scalars allowed besides tensors (numpy's scalar
constructor, ``numpy.dtype`` and the float dtype classes, which build numbers from bytes and run no code); any
other object in the file is refused, never unpickled.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nph.evaluation.curves import CURVE_FILE, write_curve

__all__ = ["CURVE_CHECKPOINTS", "LOGGER_KEYS", "read_fold_curve", "write_fold_curve"]

log = logging.getLogger(__name__)

#: Checkpoints whose record covers the whole run, in order of preference (``checkpoint_best`` stops at its epoch).
CURVE_CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_latest.pth")
#: Curve column → nnU-Net's LocalLogger list.
LOGGER_KEYS = {
    "train_loss": "train_losses",
    "val_loss": "val_losses",
    "pseudo_dice": "mean_fg_dice",
    "ema_pseudo_dice": "ema_fg_dice",
}


def _numpy_float_globals() -> list[Any]:
    """What unpickling numpy float scalars needs: the scalar constructor, ``numpy.dtype``, the float dtype classes."""
    kinds = (np.float16, np.float32, np.float64)
    return [np.float32(0).__reduce__()[0], np.dtype, *(type(np.dtype(k)) for k in kinds)]


def read_fold_curve(fold_dir: Path) -> dict[str, list[float]]:
    """``{curve column: one float per epoch}`` from the fold's final (else latest) checkpoint.

    Raises:
        FileNotFoundError: the fold holds no such checkpoint.
        RuntimeError: the checkpoint holds no usable record (refused content, missing lists, unequal lengths).
    """
    path = next((fold_dir / name for name in CURVE_CHECKPOINTS if (fold_dir / name).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{fold_dir}: none of {list(CURVE_CHECKPOINTS)}")
    try:
        with torch.serialization.safe_globals(_numpy_float_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        raise RuntimeError(f"{path}: not readable with weights_only=True ({_reason(error)})") from error
    record = checkpoint.get("logging") if isinstance(checkpoint, dict) else None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), list) for k in LOGGER_KEYS.values()):
        raise RuntimeError(f"{path}: no nnU-Net training record (its 'logging' lacks {list(LOGGER_KEYS.values())})")
    curve = {column: [float(v) for v in record[key]] for column, key in LOGGER_KEYS.items()}
    lengths = {key: len(record[key]) for key in LOGGER_KEYS.values()}
    if len(set(lengths.values())) != 1 or not next(iter(lengths.values())):
        raise RuntimeError(f"{path}: nnU-Net's record is not one value per epoch for each list ({lengths})")
    return curve


def _reason(error: Exception) -> str:
    """The line of torch's long weights-only message that names what was refused."""
    text = str(error).split("WeightsUnpickler error:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def write_fold_curve(fold_dir: Path, out_dir: Path) -> Path | None:
    """Write the fold's curve into the prediction folder ``out_dir``; None (and a warning) when there is none.

    A curve left in ``out_dir`` by an earlier prediction is removed then, so the folder never shows another model's.
    """
    try:
        curve = read_fold_curve(fold_dir)
    except (FileNotFoundError, RuntimeError) as error:
        (out_dir / CURVE_FILE).unlink(missing_ok=True)
        log.warning("no learning curve in %s: %s", out_dir, error)
        return None
    path = write_curve(out_dir, curve)
    log.info("learning curve of %d epochs (from %s) written to %s", len(curve["train_loss"]), fold_dir, path)
    return path

"""nph's nnU-Net trainer: plain supervision where nnU-Net's deep supervision has no weights, and no NaN runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from nnunetv2.training.logging.nnunet_logger import MetaLogger

from nph.segmentation.trainers.nnUNetTrainer_nph import deep_supervision_usable, nnUNetTrainer_nph


def _deep_supervision_weights(n_resolutions: int) -> np.ndarray:
    """nnU-Net's own weight rule (nnUNetTrainer._build_loss): halve per level, drop the lowest, normalise."""
    weights = np.array([1 / 2**i for i in range(n_resolutions - 1)])
    if weights.size:
        weights[-1] = 0
    with np.errstate(invalid="ignore"):
        return weights / weights.sum()


@pytest.mark.parametrize("n_resolutions", [1, 2, 3, 5])
def test_deep_supervision_only_where_nnunets_weights_are_finite(n_resolutions: int) -> None:
    pools = [[1, 1, 1]] + [[2, 2, 2]] * (n_resolutions - 1)
    weights = _deep_supervision_weights(n_resolutions)
    usable = weights.size > 0 and bool(np.isfinite(weights).all())
    assert deep_supervision_usable(pools) is usable is (n_resolutions >= 3)


def _trainer_after_one_epoch(loss: float, tmp_path: Path) -> nnUNetTrainer_nph:
    trainer = nnUNetTrainer_nph.__new__(nnUNetTrainer_nph)  # the epoch-end hook needs only these attributes
    trainer.logger, trainer.is_ddp, trainer.current_epoch = MetaLogger(str(tmp_path), resume=False), False, 0
    trainer.on_train_epoch_end([{"loss": np.array(loss)}, {"loss": np.array(loss)}])
    return trainer


def test_a_nan_training_loss_stops_the_run(tmp_path: Path) -> None:
    assert _trainer_after_one_epoch(0.25, tmp_path).logger.get_value("train_losses", step=-1) == pytest.approx(0.25)
    with pytest.raises(RuntimeError, match="training loss is nan in epoch 0"):
        _trainer_after_one_epoch(float("nan"), tmp_path)

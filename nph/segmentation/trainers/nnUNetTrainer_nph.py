"""nnU-Net's default trainer with its run length taken from the environment nph builds from config.

nph's ``nnunet.epochs`` / ``iterations`` / ``val_iterations`` reach this class as ``NPH_NNUNET_*`` variables
of the training subprocess, so a short CI run and a long cluster run use the same class and the same code.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

__all__ = ["deep_supervision_usable", "nnUNetTrainer_nph", "nnUNetTrainer_nph_tiny"]


def deep_supervision_usable(pool_op_kernel_sizes: list) -> bool:
    """nnU-Net weights all but the lowest resolution's output; with fewer than 3 resolutions the weights are 0/0.

    nnU-Net plans 1 or 2 resolutions for tiny images (a coarse grid, a small crop of the head) and then trains on a
    NaN loss (2 resolutions) or stops on an empty weight vector (1): plain supervision is what such a plan needs.
    """
    return len(pool_op_kernel_sizes) >= 3


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


class nnUNetTrainer_nph(nnUNetTrainer):
    """Default nnU-Net training; epochs × iterations from ``NPH_NNUNET_EPOCHS``/``_ITERATIONS``/``_VAL_ITERATIONS``,
    CPU threads from ``NPH_NNUNET_THREADS``."""

    default_epochs = 1000
    default_iterations = 250
    default_val_iterations = 50

    def __init__(
        self, plans: dict, configuration: str, fold: int, dataset_json: dict,
        device: torch.device = torch.device("cuda"),  # noqa: B008 (nnU-Net's own signature)
    ) -> None:
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = _env_int("NPH_NNUNET_EPOCHS", self.default_epochs)
        self.num_iterations_per_epoch = _env_int("NPH_NNUNET_ITERATIONS", self.default_iterations)
        self.num_val_iterations_per_epoch = _env_int("NPH_NNUNET_VAL_ITERATIONS", self.default_val_iterations)
        # nnUNetv2_train -device cpu sets torch to every core of the machine before the trainer exists; a job given
        # fewer cores (a SLURM task, two demo steps at once) then runs more threads than cores and crawls.
        threads = _env_int("NPH_NNUNET_THREADS", 0)
        if threads > 0 and self.device.type == "cpu":
            torch.set_num_threads(threads)
            self.print_to_log_file(f"torch threads on the CPU: {torch.get_num_threads()} (NPH_NNUNET_THREADS)")
        if not deep_supervision_usable(self.configuration_manager.pool_op_kernel_sizes):
            self.enable_deep_supervision = False
            self.print_to_log_file(
                f"{len(self.configuration_manager.pool_op_kernel_sizes)} resolution(s) planned: deep supervision off"
            )

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        """A non-finite training loss stops the run: a model trained on NaN is not a result."""
        super().on_train_epoch_end(train_outputs)
        loss = float(self.logger.get_value("train_losses", step=-1))
        if not np.isfinite(loss):
            raise RuntimeError(f"training loss is {loss} in epoch {self.current_epoch}: the run cannot be trusted")


class nnUNetTrainer_nph_tiny(nnUNetTrainer_nph):
    """A few iterations for tests on CPU (2 epochs × 5 iterations unless the environment says otherwise).

    No mirroring: test-time mirroring in 3D costs 8 forward passes per patch, most of a tiny run's time.
    """

    default_epochs = 2
    default_iterations = 5
    default_val_iterations = 2

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):  # type: ignore[no-untyped-def]
        rotation, dummy_2d, patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, patch_size, None

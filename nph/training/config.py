"""Hyper-parameters of the training engine, checked once when the engine is built."""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Any

import torch

from nph.errors import InputError

__all__ = ["EngineConfig", "Precision", "resolve_precision"]


class Precision(str, Enum):
    """Arithmetic of the training step: ``auto`` = bf16 on GPUs that have it, else fp16, fp32 on CPU."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs to know; every field comes from the ``train`` config section.

    ``batch_size`` is the global batch of one optimiser step: it is split over ``grad_accum``
    micro-batches and over the ranks of a distributed run.
    """

    max_steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0  # 0 = off
    grad_accum: int = 1
    ema_decay: float = 0.0  # 0 = no EMA
    precision: Precision = Precision.AUTO
    checkpoint_every: int = 100
    log_every: int = 10
    image_every: int = 0  # 0 = never log sample images
    validate_every: int = 0  # 0 = only at the end
    seed: int = 0
    num_workers: int = 0  # DataLoader processes loading batches ahead (0 = in the training process)
    prefetch: int = 2  # batches each worker loads ahead

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "checkpoint_every", "log_every", "prefetch"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum:
            raise InputError(
                f"train.batch_size: {self.batch_size} is not divisible by train.grad_accum={self.grad_accum}")
        if self.num_workers < 0:
            raise InputError(f"train.num_workers: must be >= 0, got {self.num_workers}")
        if self.lr <= 0:
            raise InputError(f"train.lr: must be > 0, got {self.lr}")
        if self.schedule not in ("cosine", "constant"):
            raise InputError(f"train.schedule: expected 'cosine' or 'constant', got {self.schedule!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"train.ema_decay: expected 0 <= decay < 1, got {self.ema_decay}")
        try:
            object.__setattr__(self, "precision", Precision(self.precision))
        except ValueError as err:
            known = ", ".join(p.value for p in Precision)
            raise InputError(f"train.precision: expected one of {known}, got {self.precision!r}") from err
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EngineConfig:
        """Build from a config section; unknown keys are an error that lists the known ones."""
        known = {f.name: f.default for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            listing = ", ".join(f"{k}={v}" for k, v in known.items())
            raise InputError(f"train: unknown key(s) {unknown}; known keys with defaults: {listing}")
        return cls(**values)


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """The precision a run will actually use on ``device`` (CPU always trains in fp32)."""
    if device.type != "cuda":
        return Precision.FP32
    if precision is Precision.AUTO:
        return Precision.BF16 if torch.cuda.is_bf16_supported() else Precision.FP16
    return precision

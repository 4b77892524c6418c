"""Learning-rate schedule (linear warm-up then cosine) and an exponential moving average of weights."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["EMA", "warmup_cosine"]


def warmup_cosine(warmup_steps: int, max_steps: int, schedule: str, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier for ``torch.optim.lr_scheduler.LambdaLR``: linear warm-up, then cosine (or constant)."""

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


class EMA:
    """Shadow copy of a module's floating-point state, updated as ``shadow = d·shadow + (1-d)·weights``.

    Buffers that are not trained (integer counters, running statistics) are copied as they are.
    The shadow lives on the module's device and is what a bundle stores.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for key, value in module.state_dict().items():
            shadow = self.shadow[key]
            if value.is_floating_point():
                shadow.lerp_(value.detach(), 1.0 - self.decay)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            self.shadow[key].copy_(value)

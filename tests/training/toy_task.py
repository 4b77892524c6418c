"""A small real task for the engine tests of this folder: a 3D conv net that learns to smooth noise volumes."""

from __future__ import annotations

import os
import signal

import torch
from torch import nn

from nph.training import EngineConfig, Task


class ToyTask(Task):
    """Conv net with dropout (so the global RNG matters) trained with MSE; can send itself SIGUSR2."""

    def __init__(self, init_seed: int = 0, signal_at_call: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(init_seed)
        self.net = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Conv3d(4, 1, 3, padding=1))
        self.loss = self.build_loss()
        self.calls = 0
        self.signal_at_call = signal_at_call

    def build_loss(self) -> nn.Module:
        return nn.MSELoss()

    def training_step(self, batch):
        self.calls += 1
        if self.signal_at_call is not None and self.calls == self.signal_at_call:
            os.kill(os.getpid(), signal.SIGUSR2)
        prediction = self.net(batch["x"])
        return self.loss(prediction, batch["y"]), {"mean_prediction": float(prediction.detach().mean())}

    def validation_step(self, batch):
        return {"mse": float(self.loss(self.net(batch["x"]), batch["y"]))}


def toy_dataset(n: int = 12, seed: int = 0, size: int = 8) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(1, size, size, size, generator=generator)
        y = nn.functional.avg_pool3d(x[None], 3, stride=1, padding=1)[0]
        out.append({"x": x, "y": y})
    return out


def toy_config(**overrides) -> EngineConfig:
    values = dict(max_steps=8, batch_size=4, lr=3e-3, warmup_steps=2, grad_clip=1.0, grad_accum=2,
                  ema_decay=0.9, checkpoint_every=100, log_every=1, seed=7)
    values.update(overrides)
    return EngineConfig(**values)

"""Noise schedules of the diffusion models: MONAI schedulers built from config, and the training target.

``kind`` is ``ddpm`` (epsilon or v prediction; DDPM, DDIM or DPM-Solver++(2M) sampling) or ``rflow``
(rectified flow, velocity ``x0 - noise``; RFlow (Euler) or DPM-Solver++(2M) sampling).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

import torch
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler, RFlowScheduler

from nph.errors import InputError
from nph.sampling.dpm_solver import DPMSolverMultistepScheduler, FlowDPMSolverScheduler

__all__ = ["AnyScheduler", "NoiseKind", "Prediction", "build_scheduler", "noisy_input_and_target"]

AnyScheduler = DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler | RFlowScheduler


class NoiseKind(str, Enum):
    DDPM = "ddpm"
    RFLOW = "rflow"


class Prediction(str, Enum):
    EPSILON = "epsilon"
    V_PREDICTION = "v_prediction"


def _check(noise: Mapping[str, Any]) -> tuple[NoiseKind, Prediction]:
    try:
        kind = NoiseKind(noise.get("kind", "ddpm"))
        prediction = Prediction(noise.get("prediction", "epsilon"))
    except ValueError as err:
        raise InputError(f"noise: {err} (kind: ddpm|rflow, prediction: epsilon|v_prediction)") from err
    return kind, prediction


def build_scheduler(noise: Mapping[str, Any], sampler: str | None = None) -> AnyScheduler:
    """The scheduler for training (``sampler=None``) or for sampling with ``ddpm``/``ddim``/``dpmpp_2m``/``rflow``."""
    kind, prediction = _check(noise)
    steps = int(noise.get("num_train_timesteps", 1000))
    if kind is NoiseKind.RFLOW:
        if sampler == "dpmpp_2m":
            return FlowDPMSolverScheduler(num_train_timesteps=steps)
        if sampler not in (None, "rflow"):
            raise InputError(
                f"sampler={sampler}: this model was trained with rectified flow; use sampler=rflow or dpmpp_2m"
            )
        return RFlowScheduler(num_train_timesteps=steps, use_discrete_timesteps=False, sample_method="uniform")
    if sampler == "rflow":
        raise InputError("sampler=rflow: this model was trained with DDPM noise; use sampler=ddim, dpmpp_2m or ddpm")
    betas = {
        "schedule": noise.get("schedule", "scaled_linear_beta"),
        "beta_start": float(noise.get("beta_start", 0.0015)),
        "beta_end": float(noise.get("beta_end", 0.0205)),
    }
    if sampler == "ddim":
        return DDIMScheduler(num_train_timesteps=steps, clip_sample=False, prediction_type=prediction.value, **betas)
    if sampler == "dpmpp_2m":
        return DPMSolverMultistepScheduler(num_train_timesteps=steps, prediction_type=prediction.value, **betas)
    if sampler not in (None, "ddpm"):
        raise InputError(f"sampler={sampler}: expected ddim, dpmpp_2m, ddpm or rflow")
    return DDPMScheduler(num_train_timesteps=steps, clip_sample=False, prediction_type=prediction.value, **betas)


def noisy_input_and_target(
    scheduler: AnyScheduler,
    noise_cfg: Mapping[str, Any],
    x0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Draw timesteps and noise (global RNG, seeded per step by the engine); return (x_t, t, target)."""
    _, prediction = _check(noise_cfg)
    noise = torch.randn_like(x0)
    if isinstance(scheduler, RFlowScheduler):
        t = scheduler.sample_timesteps(x0)
        return scheduler.add_noise(x0, noise, t), t, x0 - noise
    t = torch.randint(0, scheduler.num_train_timesteps, (x0.shape[0],), device=x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    target = noise if prediction is Prediction.EPSILON else scheduler.get_velocity(x0, noise, t)
    return x_t, t, target

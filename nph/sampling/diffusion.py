"""The denoising loop every nph diffusion model samples with: DDIM, DPM-Solver++(2M), DDPM or rectified flow.

Classifier-free guidance runs the conditional and unconditional inputs in one forward pass of 2B:
``out = out_uncond + w · (out_cond − out_uncond)`` (Ho & Salimans 2022). A guidance interval
``[t_lo, t_hi]`` limits that doubled pass to the steps whose noise level ``τ = t / num_train_timesteps``
(0 = clean, 1 = pure noise; DDPM and rectified-flow timesteps alike) lies in it, ends included; every
other step runs one conditional pass, i.e. guidance 1 (Kynkäänniemi et al. 2024). ``guidance == 1``
never runs the doubled pass. Randomness comes from one ``torch.Generator`` per sample, so a sample does
not depend on the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.schedulers import DDPMScheduler, RFlowScheduler
from torch import nn

from nph.errors import InputError
from nph.models.noise import AnyScheduler

__all__ = [
    "SAMPLERS",
    "Denoiser",
    "Interval",
    "check_guidance_interval",
    "check_sampler",
    "guided",
    "guided_denoiser",
    "inference_autocast",
    "initial_noise",
    "interval_text",
    "sample_latents",
    "sampling_timesteps",
]

#: Samplers every nph diffusion model offers (rflow only for models trained with noise.kind=rflow, the
#: others only for DDPM-trained ones; dpmpp_2m is DPM-Solver++(2M), :mod:`nph.sampling.dpm_solver`).
SAMPLERS = ("ddim", "dpmpp_2m", "ddpm", "rflow")
#: Guidance interval (lo, hi) in noise level τ = t / num_train_timesteps; None = every step.
Interval = tuple[float, float] | None

#: (x_t (B, C, …), timesteps (B,)) → model output (B, C, …)
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_sampler(sampler: str) -> str:
    """The sampler name, or :class:`InputError` listing the known ones."""
    if sampler not in SAMPLERS:
        raise InputError(f"sampler={sampler}: expected one of {', '.join(SAMPLERS)}")
    return sampler


def check_guidance_interval(interval: Sequence[float] | None) -> Interval:
    """``None`` or ``(lo, hi)`` with 0 ≤ lo ≤ hi ≤ 1, else :class:`InputError`."""
    if interval is None:
        return None
    values = tuple(interval)
    if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(f"guidance_interval={list(values)}: expected null or [t_lo, t_hi] (noise levels in [0, 1])")
    lo, hi = float(values[0]), float(values[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise InputError(f"guidance_interval=[{lo}, {hi}]: expected 0 <= t_lo <= t_hi <= 1 (1 = pure noise)")
    return lo, hi


def interval_text(interval: Interval) -> str:
    """The interval as manifests and records store it: "" for every step, else "lo-hi"."""
    return "" if interval is None else f"{interval[0]:g}-{interval[1]:g}"


def guided(timestep: float, guidance: float, interval: Interval, num_train_timesteps: int) -> bool:
    """Whether the step at ``timestep`` runs the doubled (unconditional + conditional) pass."""
    if guidance == 1.0:
        return False
    if interval is None:
        return True
    return interval[0] <= timestep / num_train_timesteps <= interval[1]


def inference_autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on a GPU, full precision on the CPU (where bf16 kernels are slower, not faster)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def guided_denoiser(
    net: nn.Module,
    context: torch.Tensor,
    uncond_context: torch.Tensor,
    guidance: float,
    interval: Interval = None,
    num_train_timesteps: int = 1000,
) -> Denoiser:
    """Wrap a cross-attention U-Net with classifier-free guidance inside ``interval`` (module docstring).

    The batch shares one timestep per call (as :func:`sample_latents` calls it); outside the interval, or with
    ``guidance == 1``, one conditional pass of B runs instead of the doubled pass of 2B.
    """

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not guided(float(t[0]), guidance, interval, num_train_timesteps):
            return net(x, timesteps=t, context=context).float()
        out = net(torch.cat([x, x]), timesteps=torch.cat([t, t]), context=torch.cat([uncond_context, context])).float()
        uncond, cond = out.chunk(2)
        return uncond + guidance * (cond - uncond)

    return denoise


def initial_noise(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """One standard-normal latent of ``shape`` per generator, stacked to (B, *shape)."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


def sampling_timesteps(
    scheduler: AnyScheduler, steps: int, latent_numel: int, device: torch.device | None = None
) -> list[float]:
    """Set ``scheduler`` to ``steps`` steps; returns the timesteps the model is called at, in order."""
    if isinstance(scheduler, RFlowScheduler):
        scheduler.set_timesteps(steps, device=device, input_img_size_numel=latent_numel)
    else:
        scheduler.set_timesteps(steps, device=device)
    return [float(t) for t in scheduler.timesteps]


@torch.inference_mode()
def sample_latents(
    denoise: Denoiser, scheduler: AnyScheduler, x: torch.Tensor, steps: int, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """Run the reverse process from noise ``x`` (B, C, …) in ``steps`` steps; returns the clean latents.

    DDPM steps draw noise, so they run per sample with that sample's generator; DDIM (eta 0), DPM-Solver++
    and rectified flow are deterministic and run batched.
    """
    sampling_timesteps(scheduler, steps, int(x[0, 0].numel()), x.device)
    timesteps = list(scheduler.timesteps)
    for i, t in enumerate(timesteps):
        model_out = denoise(x, torch.full((x.shape[0],), float(t), device=x.device))
        if isinstance(scheduler, RFlowScheduler):
            following = timesteps[i + 1] if i + 1 < len(timesteps) else None
            x, _ = scheduler.step(model_out, t, x, following)
        elif isinstance(scheduler, DDPMScheduler):
            x = torch.cat(
                [
                    scheduler.step(model_out[j : j + 1], int(t), x[j : j + 1], generator=g)[0]
                    for j, g in enumerate(generators)
                ]
            )
        else:
            x, _ = scheduler.step(model_out, int(t), x)
    return x

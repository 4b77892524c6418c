"""The denoising loop every nph diffusion model samples with: DDIM, DDPM or rectified flow, batched CFG.

Classifier-free guidance runs the conditional and unconditional inputs in one forward pass of 2B:
``out = out_uncond + w · (out_cond − out_uncond)`` (Ho & Salimans 2022). Randomness comes from one
``torch.Generator`` per sample, so a sample does not depend on the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.networks.schedulers import DDPMScheduler, RFlowScheduler
from torch import nn

from nph.errors import InputError
from nph.models.noise import AnyScheduler

__all__ = ["SAMPLERS", "Denoiser", "check_sampler", "guided_denoiser", "inference_autocast", "initial_noise",
           "sample_latents"]

#: Samplers every nph diffusion model offers (rflow only for models trained with noise.kind=rflow).
SAMPLERS = ("ddim", "ddpm", "rflow")

#: (x_t (B, C, …), timesteps (B,)) → model output (B, C, …)
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_sampler(sampler: str) -> str:
    """The sampler name, or :class:`InputError` listing the known ones."""
    if sampler not in SAMPLERS:
        raise InputError(f"sampler={sampler}: expected one of {', '.join(SAMPLERS)}")
    return sampler


def inference_autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on a GPU, full precision on the CPU (where bf16 kernels are slower, not faster)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def guided_denoiser(net: nn.Module, context: torch.Tensor, uncond_context: torch.Tensor, guidance: float) -> Denoiser:
    """Wrap a cross-attention U-Net with classifier-free guidance; ``guidance == 1`` skips the second half."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if guidance == 1.0:
            return net(x, timesteps=t, context=context).float()
        out = net(torch.cat([x, x]), timesteps=torch.cat([t, t]), context=torch.cat([uncond_context, context])).float()
        uncond, cond = out.chunk(2)
        return uncond + guidance * (cond - uncond)

    return denoise


def initial_noise(shape: Sequence[int], generators: Sequence[torch.Generator], device: torch.device) -> torch.Tensor:
    """One standard-normal latent of ``shape`` per generator, stacked to (B, *shape)."""
    return torch.stack([torch.randn(tuple(shape), generator=g) for g in generators]).to(device)


@torch.inference_mode()
def sample_latents(denoise: Denoiser, scheduler: AnyScheduler, x: torch.Tensor, steps: int,
                   generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Run the reverse process from noise ``x`` (B, C, …) in ``steps`` steps; returns the clean latents.

    DDPM steps draw noise, so they run per sample with that sample's generator; DDIM (eta 0) and
    rectified flow are deterministic and run batched.
    """
    if isinstance(scheduler, RFlowScheduler):
        scheduler.set_timesteps(steps, device=x.device, input_img_size_numel=int(x[0, 0].numel()))
    else:
        scheduler.set_timesteps(steps, device=x.device)
    timesteps = list(scheduler.timesteps)
    for i, t in enumerate(timesteps):
        model_out = denoise(x, torch.full((x.shape[0],), float(t), device=x.device))
        if isinstance(scheduler, RFlowScheduler):
            following = timesteps[i + 1] if i + 1 < len(timesteps) else None
            x, _ = scheduler.step(model_out, t, x, following)
        elif isinstance(scheduler, DDPMScheduler):
            x = torch.cat([scheduler.step(model_out[j:j + 1], int(t), x[j:j + 1], generator=g)[0]
                           for j, g in enumerate(generators)])
        else:
            x, _ = scheduler.step(model_out, int(t), x)
    return x

"""Mask diffusion model: MONAI's DiffusionModelUNet on the frozen autoencoder's latents.

Conditioned by cross-attention on ``[normalised ventricle fraction, conditioned flag]``; the flag (and
the value) is dropped with probability ``drop_prob`` so one network learns the conditional and the
unconditional model (classifier-free guidance, Ho & Salimans 2022; Pinaya et al. 2022 brain LDM).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.nets import DiffusionModelUNet
from torch import nn

from nph.errors import InputError
from nph.models.noise import AnyScheduler, build_scheduler, noisy_input_and_target
from nph.training import Task

__all__ = ["CONTEXT_DIM", "MaskDMTask", "build_mask_unet", "make_context", "oversampling_weights"]

#: [normalised ventricle fraction, conditioned flag]
CONTEXT_DIM = 2
#: Seed of the noise, timesteps and posterior draws of a validation step (the same for every checkpoint).
VALIDATION_SEED = 0


def build_mask_unet(network: Mapping[str, Any], latent_channels: int) -> DiffusionModelUNet:
    """The U-Net from the ``network`` config: channels, attention per level, head channels, res blocks,
    ``upcast_attention`` (attention scores in fp32 under mixed precision, as the thesis; default off)."""
    channels = tuple(int(c) for c in network["channels"])
    attention = tuple(bool(a) for a in network["attention_levels"])
    heads = network.get("num_head_channels", 8)
    heads = tuple(int(h) for h in heads) if isinstance(heads, (list, tuple)) else int(heads)
    if len(attention) != len(channels):
        raise InputError(f"mask_dm.network.attention_levels: {len(attention)} entries for {len(channels)} levels")
    return DiffusionModelUNet(
        spatial_dims=3, in_channels=latent_channels, out_channels=latent_channels, channels=channels,
        attention_levels=attention, num_res_blocks=int(network.get("num_res_blocks", 2)), num_head_channels=heads,
        norm_num_groups=int(network.get("norm_num_groups", 32)),
        resblock_updown=bool(network.get("resblock_updown", True)),
        with_conditioning=True, cross_attention_dim=CONTEXT_DIM, transformer_num_layers=1,
        upcast_attention=bool(network.get("upcast_attention", False)))


def make_context(condition: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
    """(B,) normalised conditions and (B,) flags (1 = conditioned, 0 = not) → context (B, 1, 2)."""
    flag = flag.to(condition.dtype)
    return torch.stack([condition * flag, flag], dim=-1)[:, None, :]


def oversampling_weights(condition: npt.NDArray[np.floating], bins: int) -> npt.NDArray[np.float64]:
    """Inverse-frequency weights over ``bins`` equal-width bins of the condition (rare sizes drawn more)."""
    edges = np.linspace(condition.min(), condition.max(), bins + 1)
    which = np.clip(np.digitize(condition, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(np.float64)
    return 1.0 / counts[which]


class MaskDMTask(Task):
    """Denoising loss (MSE to the noise, velocity, or rectified-flow velocity) on scaled latents.

    A batch holds ``mu``/``sigma`` (B, C, x, y, z) — the autoencoder's posterior, already multiplied by
    the latent scale factor — and ``condition`` (B,), the normalised ventricle fraction.
    """

    def __init__(self, net: DiffusionModelUNet, noise: Mapping[str, Any], drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob <= 1.0:
            raise InputError(f"mask_dm.drop_prob: expected a probability, got {drop_prob}")
        self.net = net
        self.noise_cfg = dict(noise)
        # Kept out of the module tree: it holds no trained state, and MONAI's RFlowScheduler is an nn.Module
        # subclass that skips nn.Module.__init__, so registering it would break .to() and state_dict().
        self.__dict__["scheduler"] = build_scheduler(self.noise_cfg)
        self.scheduler: AnyScheduler
        self.drop_prob = drop_prob
        self.loss = self.build_loss()

    def build_loss(self) -> nn.Module:
        return nn.MSELoss()

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        z = batch["mu"] + batch["sigma"] * torch.randn_like(batch["sigma"])
        keep = (torch.rand(z.shape[0], device=z.device) >= self.drop_prob).float()
        x_t, t, target = noisy_input_and_target(self.scheduler, self.noise_cfg, z)
        prediction = self.net(x_t, timesteps=t, context=make_context(batch["condition"], keep))
        loss = self.loss(prediction.float(), target)
        return loss, {"conditioned": float(keep.mean())}

    def validation_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """Conditioned denoising error on held-out cases, seeded (the global RNG is left as it was)."""
        with torch.random.fork_rng(devices=[batch["mu"].device] if batch["mu"].is_cuda else []):
            torch.manual_seed(VALIDATION_SEED)
            z = batch["mu"] + batch["sigma"] * torch.randn_like(batch["sigma"])
            x_t, t, target = noisy_input_and_target(self.scheduler, self.noise_cfg, z)
            keep = torch.ones(z.shape[0], device=z.device)
            prediction = self.net(x_t, timesteps=t, context=make_context(batch["condition"], keep))
            return {"mse": float(self.loss(prediction.float(), target))}

"""Image autoencoder: MONAI's SPADE AutoencoderKL, whose decoder is modulated by the one-hot label map.

Loss: L1 + KL + patch-adversarial (after a warm-up) + perceptual (only with user-given weights), as in
Ruschke's thesis after Rombach et al. 2022 and Park et al. 2019 ("Semantic image synthesis with SPADE").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import SPADEAutoencoderKL
from torch import nn

from nph.data.labels import NUM_CLASSES
from nph.errors import InputError
from nph.models.image_losses import AdversarialTerms
from nph.models.image_quality import reconstruction_l1, reconstruction_ssim
from nph.models.mask_ae import kl_divergence
from nph.training import EngineConfig, Task

__all__ = ["ImageAETask", "build_image_ae", "downsampling_of", "one_hot_seg", "random_crop"]

Batch = dict[str, torch.Tensor]


def one_hot_seg(labels: torch.Tensor) -> torch.Tensor:
    """Contiguous label map (B, X, Y, Z) long → SPADE's one-hot ``seg`` (B, 33, X, Y, Z) float."""
    return F.one_hot(labels.long(), NUM_CLASSES).permute(0, 4, 1, 2, 3).float().contiguous()


def build_image_ae(network: Mapping[str, Any]) -> SPADEAutoencoderKL:
    """The SPADE autoencoder from the ``network`` config section.

    Keys: channels (per level; each level after the first halves the grid), num_res_blocks, latent_channels,
    norm_num_groups, spade_channels (hidden channels of each SPADE block), attention (deepest level).
    """
    channels = tuple(int(c) for c in network["channels"])
    attention = bool(network.get("attention", False))
    try:
        return SPADEAutoencoderKL(
            spatial_dims=3, label_nc=NUM_CLASSES, in_channels=1, out_channels=1, channels=channels,
            num_res_blocks=int(network["num_res_blocks"]), latent_channels=int(network["latent_channels"]),
            attention_levels=(False,) * (len(channels) - 1) + (attention,),
            norm_num_groups=int(network["norm_num_groups"]), with_encoder_nonlocal_attn=attention,
            with_decoder_nonlocal_attn=attention, spade_intermediate_channels=int(network["spade_channels"]))
    except ValueError as err:
        raise InputError(f"network: {err}") from err


def downsampling_of(network: Mapping[str, Any]) -> int:
    """How much smaller the latent grid is than the image grid, per axis."""
    return int(2 ** (len(network["channels"]) - 1))


def random_crop(batch: Batch, size: tuple[int, ...] | None) -> Batch:
    """The same random (X, Y, Z) window of every tensor in the batch (global torch RNG: seeded per step)."""
    if not size:
        return batch
    shape = batch["labels"].shape[-3:]
    starts = [int(torch.randint(0, s - c + 1, ())) if s > c else 0 for s, c in zip(shape, size, strict=True)]
    index: tuple[Any, ...] = (..., *(slice(a, a + min(c, s)) for a, c, s in zip(starts, size, shape, strict=True)))
    return {k: v[index] for k, v in batch.items()}


class ImageAETask(Task):
    """SPADE-AE training: ``l1 + kl_weight·KL + perceptual_weight·P + adv_weight·G`` (G after ``adv_start``).

    The patch discriminator trains in the same step through the same optimiser (its own parameter group,
    ``disc_lr_ratio`` × lr); it is a submodule of the task, so checkpoints hold it, and bundles do not.

    Args:
        net: the SPADE autoencoder.
        discriminator: patch discriminator, or None for no adversarial loss.
        perceptual: perceptual loss module, or None (off).
        kl_weight, adv_weight, perceptual_weight: loss weights.
        adv_start: optimiser steps before the generator's adversarial term is switched on.
        disc_lr_ratio: discriminator learning rate relative to the autoencoder's.
        crop: train on random windows of this size (voxels), or None for whole volumes.
        grad_accum: micro-batches per optimiser step (to count steps).
    """

    net: SPADEAutoencoderKL
    micro_steps: torch.Tensor

    def __init__(self, net: SPADEAutoencoderKL, *, discriminator: nn.Module | None, perceptual: nn.Module | None,
                 kl_weight: float, adv_weight: float, perceptual_weight: float, adv_start: int,
                 disc_lr_ratio: float = 1.0, crop: tuple[int, ...] | None = None, grad_accum: int = 1) -> None:
        super().__init__()
        self.net = net
        self.adversarial = AdversarialTerms(discriminator) if discriminator is not None else None
        self.perceptual = perceptual
        if perceptual is not None:
            perceptual.requires_grad_(False)
        self.kl_weight, self.adv_weight, self.perceptual_weight = kl_weight, adv_weight, perceptual_weight
        self.adv_start, self.disc_lr_ratio, self.crop, self.grad_accum = adv_start, disc_lr_ratio, crop, grad_accum
        self.register_buffer("micro_steps", torch.zeros((), dtype=torch.long))
        self.loss = self.build_loss()

    def build_loss(self) -> nn.Module:
        return nn.L1Loss()

    def configure_optimizers(self, cfg: EngineConfig) -> torch.optim.Optimizer:
        groups: list[dict[str, Any]] = [{"params": [p for p in self.net.parameters() if p.requires_grad]}]
        if self.adversarial is not None:
            groups.append({"params": list(self.adversarial.parameters()), "lr": cfg.lr * self.disc_lr_ratio})
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)

    @property
    def adversarial_on(self) -> bool:
        return self.adversarial is not None and int(self.micro_steps) >= self.adv_start * self.grad_accum

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        batch = random_crop(batch, self.crop)
        image, seg = batch["image"], one_hot_seg(batch["labels"])
        reconstruction, mu, sigma = self.net(image, seg)
        reconstruction = reconstruction.float()
        l1 = self.loss(reconstruction, image)
        kl = kl_divergence(mu.float(), sigma.float())
        loss = l1 + self.kl_weight * kl
        logs = {"l1": float(l1.detach()), "kl": float(kl.detach())}
        if self.perceptual is not None and self.perceptual_weight > 0:
            perceptual = self.perceptual(reconstruction, image)
            loss = loss + self.perceptual_weight * perceptual
            logs["perceptual"] = float(perceptual.detach())
        if self.adversarial is not None:
            generator = self.adversarial.generator(reconstruction)
            loss = loss + (self.adv_weight if self.adversarial_on else 0.0) * generator
            disc = self.adversarial.discriminator_loss(reconstruction, image)
            loss = loss + disc
            logs.update(adv_generator=float(generator.detach()), adv_discriminator=float(disc.detach()))
        self.micro_steps += 1
        return loss, logs

    def validation_step(self, batch: Batch) -> dict[str, float]:
        reconstruction = self.net.reconstruct(batch["image"], one_hot_seg(batch["labels"])).float().clamp(0, 1)
        return {"recon_l1": reconstruction_l1(reconstruction, batch["image"]),
                "recon_ssim": reconstruction_ssim(reconstruction, batch["image"])}

    def preview(self, batch: Batch) -> np.ndarray:
        reconstruction = self.net.reconstruct(batch["image"][:1], one_hot_seg(batch["labels"][:1]))
        return reconstruction.float().clamp(0, 1)[0, 0].cpu().numpy()

"""Mask autoencoder: a learned per-voxel embedding of the 33 labels in front of MONAI's AutoencoderKL.

The decoder emits logits over the 33 classes; the loss is cross-entropy + KL (Ruschke's thesis, after
Rombach et al. 2022, "High-resolution image synthesis with latent diffusion models").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from monai.networks.nets import AutoencoderKL
from torch import nn

from nph.data.labels import NUM_CLASSES
from nph.training import Task

__all__ = ["MaskAETask", "MaskAutoencoder", "build_mask_ae", "dice_per_class", "kl_divergence"]


class MaskAutoencoder(nn.Module):
    """Label map (B, X, Y, Z) of contiguous indices → logits (B, 33, X, Y, Z) through a latent (B, C, X/4, …).

    Args:
        embed_dim: channels of the learned label embedding.
        channels: AutoencoderKL channels per level; each level after the first halves the grid.
        num_res_blocks: residual blocks per level.
        latent_channels: channels of the latent.
        norm_num_groups: group-norm groups (must divide every channel count).
        attention: self-attention in the deepest level and the non-local blocks (off in the thesis).
        initial_log_var: start value of the posterior's log-variance (None: MONAI's initialisation, σ ≈ 1).
            Case-to-case differences of the latent means start an order of magnitude below σ ≈ 1, so early on
            the decoder is fed mostly noise and learns one template mask; with a tiny KL weight σ shrinks only
            slowly. A short run therefore starts near-deterministic (e.g. -8, σ ≈ 0.02) and keeps the ventricle
            size in the latent; a long run (the thesis) does not need it.
    """

    def __init__(self, embed_dim: int, channels: tuple[int, ...], num_res_blocks: int, latent_channels: int,
                 norm_num_groups: int, attention: bool = False, initial_log_var: float | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(NUM_CLASSES, embed_dim)
        levels = len(channels)
        self.autoencoder = AutoencoderKL(
            spatial_dims=3, in_channels=embed_dim, out_channels=NUM_CLASSES, channels=tuple(channels),
            num_res_blocks=(num_res_blocks,) * levels, latent_channels=latent_channels,
            attention_levels=(False,) * (levels - 1) + (attention,), norm_num_groups=norm_num_groups,
            with_encoder_nonlocal_attn=attention, with_decoder_nonlocal_attn=attention)
        self.downsampling = 2 ** (levels - 1)
        if initial_log_var is not None:
            nn.init.constant_(self.autoencoder.quant_conv_log_sigma.conv.bias, float(initial_log_var))

    def embed(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, X, Y, Z) long → (B, embed_dim, X, Y, Z); channels-last on the CPU, where oneDNN's 3-D
        convolutions run a training step about 20 % faster that way (GPUs keep PyTorch's default layout)."""
        h = self.embedding(labels).permute(0, 4, 1, 2, 3)
        layout = torch.channels_last_3d if h.device.type == "cpu" else torch.contiguous_format
        return h.contiguous(memory_format=layout)

    def encode(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation, each (B, latent_channels, X/f, Y/f, Z/f)."""
        return self.autoencoder.encode(self.embed(labels))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent → class logits (B, 33, X, Y, Z)."""
        return self.autoencoder.decode(z)

    def forward(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, sigma = self.encode(labels)
        return self.decode(self.autoencoder.sampling(mu, sigma)), mu, sigma


def build_mask_ae(network: Mapping[str, Any]) -> MaskAutoencoder:
    """The autoencoder from the ``network`` config section (keys of :class:`MaskAutoencoder`)."""
    values = dict(network)
    values["channels"] = tuple(values["channels"])
    return MaskAutoencoder(**values)


def kl_divergence(mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma²) ‖ N(0, 1)) summed over the latent, averaged over the batch."""
    per_voxel = mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2).clamp_min(1e-12)) - 1.0
    return 0.5 * per_voxel.flatten(1).sum(1).mean()


def dice_per_class(prediction: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Dice of each class between two index maps; NaN where the class is in neither."""
    scores = np.full(num_classes, np.nan)
    for c in range(num_classes):
        p, t = prediction == c, target == c
        total = int(p.sum() + t.sum())
        if total:
            scores[c] = 2.0 * int((p & t).sum()) / total
    return scores


class MaskAETask(Task):
    """Cross-entropy (+ ``dice_weight`` · soft Dice) of the reconstructed labels + ``kl_weight`` · KL.

    The thesis used cross-entropy alone. Small structures (the 3rd and 4th ventricles are tens of voxels
    on a coarse grid) barely move a voxel-averaged cross-entropy; a soft Dice over the batch weighs every
    class alike, which is what lets a small autoencoder learn them in a few hundred steps.
    """

    def __init__(self, net: MaskAutoencoder, kl_weight: float, dice_weight: float = 0.0) -> None:
        super().__init__()
        self.net: MaskAutoencoder = net
        self.kl_weight = kl_weight
        self.dice_weight = dice_weight
        self.loss = self.build_loss()

    def build_loss(self) -> nn.Module:
        if self.dice_weight > 0:
            return DiceCELoss(to_onehot_y=True, softmax=True, batch=True, lambda_dice=self.dice_weight)
        return nn.CrossEntropyLoss()

    def training_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits, mu, sigma = self.net(batch["labels"])
        labels = batch["labels"][:, None] if self.dice_weight > 0 else batch["labels"]
        reconstruction = self.loss(logits.float(), labels)
        kl = kl_divergence(mu.float(), sigma.float())
        name = "dice_ce" if self.dice_weight > 0 else "ce"
        return reconstruction + self.kl_weight * kl, {name: float(reconstruction.detach()), "kl": float(kl.detach())}

    def validation_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        prediction = self.net.decode(self.net.encode(batch["labels"])[0]).argmax(1)
        scores = dice_per_class(prediction, batch["labels"])
        accuracy = float((prediction == batch["labels"]).float().mean())
        return {"dice_mean": float(np.nanmean(scores)), "accuracy": accuracy}

    def preview(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        logits = self.net.decode(self.net.encode(batch["labels"][:1])[0])
        return F.softmax(logits.float(), 1).argmax(1)[0].cpu().numpy()

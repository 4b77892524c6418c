"""Image diffusion model: MONAI's SPADE diffusion U-Net on the image autoencoder's latents, every level
modulated by the one-hot label map (Ruschke's thesis; Park et al. 2019; Rombach et al. 2022).

The noise process (DDPM or rectified flow) is the mask model's (:mod:`nph.models.noise`); the frozen
autoencoder and its stored latent scale factor turn images into latents inside the training step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.nets import SPADEAutoencoderKL, SPADEDiffusionModelUNet

from nph.data.labels import NUM_CLASSES
from nph.errors import InputError
from nph.models.image_ae import one_hot_seg
from nph.models.latent_stats import inverse_std
from nph.models.noise import build_scheduler, noisy_input_and_target
from nph.sampling.diffusion import initial_noise, sample_latents
from nph.training import Task

__all__ = ["ImageDMTask", "build_image_dm", "latent_scale_factor"]

Batch = dict[str, torch.Tensor]
#: Seed of the noise and timesteps validation draws, so validation numbers compare across steps and runs.
VALIDATION_SEED = 0
#: DDIM steps of the preview image the tracker shows during training.
PREVIEW_STEPS = 10


def build_image_dm(network: Mapping[str, Any], latent_channels: int) -> SPADEDiffusionModelUNet:
    """The SPADE U-Net from the ``network`` config section.

    Keys: channels (per level), attention (per level, booleans), num_head_channels (per level),
    num_res_blocks, norm_num_groups, spade_channels, resblock_updown, upcast_attention (attention scores in fp32
    under mixed precision, as the thesis; default off).
    """
    channels = tuple(int(c) for c in network["channels"])
    try:
        return SPADEDiffusionModelUNet(
            spatial_dims=3, in_channels=latent_channels, out_channels=latent_channels, label_nc=NUM_CLASSES,
            channels=channels, attention_levels=tuple(bool(a) for a in network["attention"]),
            num_head_channels=tuple(int(h) for h in network["num_head_channels"]),
            num_res_blocks=int(network["num_res_blocks"]), norm_num_groups=int(network["norm_num_groups"]),
            spade_intermediate_channels=int(network["spade_channels"]),
            resblock_updown=bool(network.get("resblock_updown", False)),
            upcast_attention=bool(network.get("upcast_attention", False)))
    except (ValueError, TypeError) as err:
        raise InputError(f"network: {err}") from err


@torch.no_grad()
def latent_scale_factor(autoencoder: SPADEAutoencoderKL, images: Iterable[torch.Tensor],
                        device: torch.device | None = None) -> float:
    """1 / standard deviation of the posterior means of ``images`` (each (1, X, Y, Z)), so latents have unit scale.

    Computed once over the training images after the autoencoder is trained and stored in its bundle
    (the thesis code recomputed it from one or two volumes at sampling time).
    """
    autoencoder.eval()
    device = device or next(autoencoder.parameters()).device
    return inverse_std(autoencoder.encode(image[None].to(device))[0].float() for image in images)


class ImageDMTask(Task):
    """Denoising loss of the SPADE U-Net on scaled latents of the frozen SPADE autoencoder.

    Args:
        net: the SPADE diffusion U-Net.
        autoencoder: the trained image autoencoder (frozen; held, not trained or exported).
        noise: the ``noise`` config section (:func:`nph.models.noise.build_scheduler`).
        scale_factor: latent scale factor from the autoencoder's bundle.
    """

    def __init__(self, net: SPADEDiffusionModelUNet, autoencoder: SPADEAutoencoderKL, noise: Mapping[str, Any],
                 scale_factor: float) -> None:
        super().__init__()
        self.net = net
        self.autoencoder = autoencoder.requires_grad_(False).eval()
        self.noise = dict(noise)
        self.scheduler = build_scheduler(self.noise)
        self.scale_factor = float(scale_factor)

    def train(self, mode: bool = True) -> ImageDMTask:
        super().train(mode)
        self.autoencoder.eval()
        return self

    @torch.no_grad()
    def latents(self, image: torch.Tensor) -> torch.Tensor:
        """Scaled posterior mean of images (B, 1, X, Y, Z) → (B, C, X/f, Y/f, Z/f).

        The mean, not a posterior sample: with KL weight 1e-6 a briefly trained autoencoder still has
        sigma ≈ 1 against means of std ≈ 0.2, and samples would bury the image in noise; the scale factor
        is measured on the same means.
        """
        return self.autoencoder.encode(image)[0].float() * self.scale_factor

    def _loss(self, batch: Batch) -> torch.Tensor:
        x_t, t, target = noisy_input_and_target(self.scheduler, self.noise, self.latents(batch["image"]))
        prediction = self.net(x_t, t, one_hot_seg(batch["labels"]))
        return F.mse_loss(prediction.float(), target.float())

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = self._loss(batch)
        return loss, {"mse": float(loss.detach())}

    def validation_step(self, batch: Batch) -> dict[str, float]:
        """Denoising error with seeded noise and timesteps (the global RNG is left as it was)."""
        with torch.random.fork_rng():
            torch.manual_seed(VALIDATION_SEED)
            return {"mse": float(self._loss(batch).detach())}

    def preview(self, batch: Batch) -> np.ndarray:
        """An image generated (DDIM, fixed seed) for the first label map of the batch, (X, Y, Z) in [0, 1]."""
        seg = one_hot_seg(batch["labels"][:1])
        generators = [torch.Generator().manual_seed(VALIDATION_SEED)]
        shape = self.latents(batch["image"][:1]).shape[1:]

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.net(x, t, seg).float()

        z = sample_latents(denoise, build_scheduler(self.noise, "ddim"), initial_noise(shape, generators, seg.device),
                           PREVIEW_STEPS, generators)
        image = self.autoencoder.decode_stage_2_outputs(z / self.scale_factor, seg)
        return image.float().clamp(0, 1)[0, 0].cpu().numpy()

"""Pairing: label maps → images with the image LDM, so every synthetic pair is labelled by construction.

Sample ``i`` of a run with seed ``s`` draws its noise from ``sample_seed(s, i)`` (``SeedSequence([s, i])``)
alone, so results do not depend on the batch size or on which task makes the sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.nets import SPADEAutoencoderKL
from torch import nn

from nph.data.orientation import RAS, axis_codes, reorient
from nph.errors import InputError
from nph.models.bundle import META, BundleKind, bundle_digest, load_bundle
from nph.models.image_ae import build_image_ae, downsampling_of, one_hot_seg
from nph.models.image_dm import build_image_dm
from nph.models.image_quality import contrast_error, label_means, ms_ssim_diversity, ventricle_contrast
from nph.models.noise import build_scheduler
from nph.sampling.diffusion import check_sampler, inference_autocast, initial_noise, sample_latents

__all__ = ["ImageModel", "consistency_report", "load_image_model", "paint_images"]

log = logging.getLogger(__name__)


@dataclass
class ImageModel:
    """The trained image LDM: SPADE autoencoder, SPADE U-Net, latent scale factor, ``noise`` config section."""

    autoencoder: SPADEAutoencoderKL
    unet: nn.Module
    scale_factor: float
    noise: dict[str, Any]
    downsampling: int
    latent_channels: int
    digests: dict[str, str]
    shape: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    orientation: str = RAS  # axis codes of the arrays it was trained on (imported thesis models: e.g. IAR)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device


def load_image_model(models: str | Path, device: torch.device | str = "cpu") -> ImageModel:
    """Read ``models/image_ae`` and ``models/image_dm``; checks that the U-Net was trained on that autoencoder."""
    models = Path(models)
    ae_dir, dm_dir = models / BundleKind.IMAGE_AE.value, models / BundleKind.IMAGE_DM.value
    ae_config, ae_state, _ = load_bundle(ae_dir, BundleKind.IMAGE_AE)
    dm_config, dm_state, dm_meta = load_bundle(dm_dir, BundleKind.IMAGE_DM)
    digests = {"image_ae": bundle_digest(ae_dir), "image_dm": bundle_digest(dm_dir)}
    if dm_meta.get("autoencoder") != digests["image_ae"]:
        raise InputError(
            f"{dm_dir}: trained on autoencoder {dm_meta.get('autoencoder')}, but {ae_dir} is "
            f"{digests['image_ae']} (retrain image_dm, or use the matching image_ae)"
        )
    autoencoder = build_image_ae(ae_config["network"])
    autoencoder.load_state_dict(ae_state)
    unet = build_image_dm(dm_config["network"], int(dm_meta["latent_channels"]))
    unet.load_state_dict(dm_state)
    shape = tuple(int(s) for s in dm_meta["shape"])
    spacing = tuple(float(s) for s in dm_meta["spacing"])
    orientation = axis_codes(dm_meta.get("orientation", RAS), f"{dm_dir / META}: orientation")
    return ImageModel(
        autoencoder.to(device).eval(),
        unet.to(device).eval(),
        float(dm_meta["latent_scale_factor"]),
        dict(dm_config["noise"]),
        downsampling_of(ae_config["network"]),
        int(dm_meta["latent_channels"]),
        digests,
        shape,  # type: ignore[arg-type]
        spacing,  # type: ignore[arg-type]
        orientation,
    )


@torch.inference_mode()
def paint_images(
    model: ImageModel,
    labels: torch.Tensor | npt.NDArray,
    seeds: Sequence[int],
    *,
    sampler: str = "ddim",
    steps: int = 50,
    batch_size: int = 4,
    orientation: str | None = None,
) -> npt.NDArray[np.float32]:
    """Images (N, X, Y, Z) in [0, 1] for label maps (N, X, Y, Z) of contiguous indices, one noise seed each.

    Args:
        model: the image LDM (:func:`load_image_model`).
        labels: contiguous label maps on the model's grid (in ``orientation``'s axis order).
        seeds: a 63-bit noise seed per label map (``nph.seeds.sample_seed(seed, index)``).
        sampler: ``ddim`` or ``ddpm`` (DDPM-trained models), ``rflow`` (rectified-flow-trained models).
        steps: denoising steps.
        batch_size: label maps per forward pass; does not change the result.
        orientation: axis codes of ``labels`` and of the images returned; the model sees its own (``model.
            orientation``, by exact axis permutations and flips). None: ``labels`` are in the model's already.
    """
    layout = model.orientation if orientation is None else orientation
    if axis_codes(layout) != model.orientation:
        labels = torch.from_numpy(reorient(torch.as_tensor(labels).cpu().numpy(), layout, model.orientation))
    labels = torch.as_tensor(labels).long()
    if labels.ndim != 4 or len(seeds) != labels.shape[0]:
        raise ValueError(f"paint_images: labels {tuple(labels.shape)} need shape (N, X, Y, Z) and N seeds")
    check_sampler(sampler)
    latent_shape = (int(model.latent_channels), *(s // model.downsampling for s in labels.shape[1:]))
    device, out = model.device, []
    autocast = inference_autocast(device)
    for first in range(0, labels.shape[0], batch_size):
        chunk = slice(first, first + batch_size)
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds[chunk]]
        seg = one_hot_seg(labels[chunk].to(device))

        def denoise(x: torch.Tensor, t: torch.Tensor, seg: torch.Tensor = seg) -> torch.Tensor:
            return model.unet(x, t, seg).float()

        with autocast:
            latents = sample_latents(
                denoise,
                build_scheduler(model.noise, sampler),
                initial_noise(latent_shape, generators, device),
                steps,
                generators,
            )
            images = model.autoencoder.decode_stage_2_outputs(latents / model.scale_factor, seg)
        out.append(images.float().clamp(0, 1)[:, 0].cpu().numpy())
    return reorient(np.concatenate(out).astype(np.float32), model.orientation, layout)


def consistency_report(images: npt.NDArray, labels: npt.NDArray, real: npt.NDArray | None = None) -> dict[str, float]:
    """Mask–image consistency and diversity of generated ``images`` (N, X, Y, Z) for ``labels`` (N, X, Y, Z).

    With ``real`` images of the same label maps: per-label contrast error (mean |Δ| of label means) and the
    real images' ventricle/parenchyma contrast; always: the generated contrast and MS-SSIM diversity (N ≥ 2).
    """
    generated = np.stack([label_means(i, lab) for i, lab in zip(images, labels, strict=True)])
    report = {
        "ventricle_contrast": float(
            np.nanmean([ventricle_contrast(i, lab) for i, lab in zip(images, labels, strict=True)])
        )
    }
    if real is not None:
        reference = np.stack([label_means(i, lab) for i, lab in zip(real, labels, strict=True)])
        report["contrast_error"] = contrast_error(generated, reference)
        report["ventricle_contrast_real"] = float(
            np.nanmean([ventricle_contrast(i, lab) for i, lab in zip(real, labels, strict=True)])
        )
    if len(images) >= 2:
        report["ms_ssim"] = ms_ssim_diversity(images)
    return report

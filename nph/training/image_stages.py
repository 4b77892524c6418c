"""The two image stages of ``nph train`` (``image_ae``, ``image_dm``): what each hands the engine and the bundle.

Each is set up from its experiment section and a labelled dataset folder with images (``nph.cli.commands.train``
runs the shared engine on ``setup.task``); ``setup.finish(weights)`` measures the quality signals and returns
the bundle's meta (latent scale factor, label table, grid, ...).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks.nets import SPADEAutoencoderKL
from torch.utils.data import Subset

from nph.data.labels import label_id_table
from nph.errors import InputError
from nph.models.bundle import BundleKind, bundle_digest, load_bundle
from nph.models.bundle_init import init_from_bundle
from nph.models.image_ae import ImageAETask, build_image_ae, downsampling_of, one_hot_seg
from nph.models.image_data import PairData, load_pairs
from nph.models.image_dm import ImageDMTask, build_image_dm, latent_scale_factor
from nph.models.image_losses import build_discriminator, perceptual_loss_from_config
from nph.models.image_quality import reconstruction_l1, reconstruction_ssim
from nph.sampling.pairing import ImageModel, consistency_report, paint_images
from nph.seeds import sample_seed
from nph.training.data import split_cases, split_meta
from nph.training.stage import StageSetup

__all__ = ["STAGES", "load_image_ae", "setup_image_ae", "setup_image_dm"]

log = logging.getLogger(__name__)
#: Training images (evenly spaced) whose latents set the scale factor: plenty of voxels, bounded time.
SCALE_CASES = 64
#: Seed of the noise of the images generated for the end-of-training quality report.
QUALITY_SEED = 0


def _grid_meta(pairs: PairData, training: Sequence[int], validation: Sequence[int], seed: int) -> dict[str, Any]:
    return {"label_ids": label_id_table(), "shape": list(pairs.shape), "spacing": [float(s) for s in pairs.spacing],
            "affine": np.asarray(pairs.affine).tolist(), "channels": 1, "training_cases": len(training),
            "cases": split_meta(pairs.case_ids, training, validation, seed)}


def _check_divisible(shape: tuple[int, ...], factor: int, key: str) -> None:
    if any(s % factor for s in shape):
        raise InputError(f"{key}: {list(shape)} is not divisible by the autoencoder's downsampling ×{factor}")


def _split(pairs: PairData, section: Mapping[str, Any], seed: int) -> tuple[Subset, Subset, dict[str, Any]]:
    """Training and held-out validation cases (by case, seeded) and the grid/split part of the bundle meta."""
    training, held_out = split_cases(pairs.case_ids, int(section.get("validation_cases", 2)), seed)
    return (Subset(pairs.examples, training), Subset(pairs.examples, held_out),
            _grid_meta(pairs, training, held_out, seed))


def setup_image_ae(section: Mapping[str, Any], data: str | Path, *, grid_shape: tuple[int, ...] | None = None,
                   init: str | Path | None = None, cache: Path | None = None, split_seed: int = 0,
                   **_: Any) -> StageSetup:
    """The SPADE autoencoder stage: keys ``network``, ``loss``, ``crop``, ``validation_cases`` (held out by case),
    ``train.grad_accum``."""
    network, loss = dict(section["network"]), dict(section["loss"])
    factor = downsampling_of(network)
    if grid_shape is not None:  # before the case store is built: a refused run writes nothing
        _check_divisible(tuple(grid_shape), factor, "grid.shape")
    pairs = load_pairs(data, grid_shape, cache)
    _check_divisible(pairs.shape, factor, "grid.shape")
    crop = tuple(int(c) for c in section["crop"]) if section.get("crop") else None
    if crop is not None:
        _check_divisible(crop, factor, "image_ae.crop")
    net = build_image_ae(network)
    examples, validation, meta = _split(pairs, section, split_seed)
    if init:
        meta["init_bundle"] = init_from_bundle(init, BundleKind.IMAGE_AE, net, network, pairs.spacing)
    adv_weight = float(loss["adv_weight"])
    discriminator = (build_discriminator(int(loss["disc_channels"]), int(loss["disc_layers"]),
                                         str(loss.get("disc_norm", "instance"))) if adv_weight > 0 else None)
    perceptual = perceptual_loss_from_config(loss)
    task = ImageAETask(net, discriminator=discriminator, perceptual=perceptual, kl_weight=float(loss["kl_weight"]),
                       adv_weight=adv_weight, perceptual_weight=float(loss["perceptual_weight"]),
                       adv_start=int(loss["adv_start"]), disc_lr_ratio=float(loss.get("disc_lr_ratio", 1.0)),
                       crop=crop, grad_accum=int(section.get("train", {}).get("grad_accum", 1)))

    def finish(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        trained = copy.deepcopy(net)
        trained.load_state_dict(weights)
        every = range(0, len(examples), max(1, len(examples) // SCALE_CASES))[:SCALE_CASES]
        scale = latent_scale_factor(trained, (examples[i]["image"] for i in every))
        with torch.inference_mode():
            quality = [_recon_quality(trained, validation[i]) for i in range(len(validation))]
        summary = {k: float(np.mean([q[k] for q in quality])) for k in quality[0]} if quality else {}
        log.info("image_ae: latent scale factor %.4g, reconstruction %s", scale, summary)
        return {**meta, "latent_scale_factor": scale, "downsampling": factor,
                "latent_channels": int(network["latent_channels"]), "quality": summary,
                "perceptual_loss": perceptual is not None}

    config = {"network": network, "loss": loss, "crop": list(crop) if crop else None}
    return StageSetup(BundleKind.IMAGE_AE, task, examples, validation, config, finish, meta)


def _recon_quality(net: SPADEAutoencoderKL, example: Mapping[str, torch.Tensor]) -> dict[str, float]:
    device = next(net.parameters()).device
    image, labels = example["image"][None].to(device), example["labels"][None].to(device)
    reconstruction = net.reconstruct(image, one_hot_seg(labels)).float().clamp(0, 1)
    return {"recon_l1": reconstruction_l1(reconstruction, image),
            "recon_ssim": reconstruction_ssim(reconstruction, image)}


def load_image_ae(folder: str | Path) -> tuple[SPADEAutoencoderKL, dict[str, Any], dict[str, Any]]:
    """The trained SPADE autoencoder of a bundle (eval mode), its config and meta."""
    config, state, meta = load_bundle(folder, BundleKind.IMAGE_AE)
    net = build_image_ae(config["network"])
    net.load_state_dict(state)
    return net.eval(), config, meta


def setup_image_dm(section: Mapping[str, Any], data: str | Path, models: str | Path, *,
                   grid_shape: tuple[int, ...] | None = None, init: str | Path | None = None,
                   cache: Path | None = None, split_seed: int = 0, **_: Any) -> StageSetup:
    """The SPADE diffusion stage on the latents of ``models/image_ae``: keys ``network``, ``noise``, ``quality``,
    ``validation_cases`` (held out by case; image_ae's cases for the same count and split seed)."""
    ae_folder = Path(models) / BundleKind.IMAGE_AE.value
    autoencoder, ae_config, ae_meta = load_image_ae(ae_folder)
    pairs = load_pairs(data, grid_shape, cache)
    if list(pairs.shape) != list(ae_meta["shape"]) or not np.allclose(pairs.spacing, ae_meta["spacing"], atol=1e-3):
        raise InputError(f"{ae_folder}: autoencoder trained on grid {ae_meta['shape']} at {ae_meta['spacing']} mm, "
                         f"data is {list(pairs.shape)} at {list(pairs.spacing)} mm")
    network, noise = dict(section["network"]), dict(section["noise"])
    latent_channels = int(ae_config["network"]["latent_channels"])
    net = build_image_dm(network, latent_channels)
    examples, validation, grid_meta = _split(pairs, section, split_seed)
    meta = {**grid_meta, "latent_scale_factor": float(ae_meta["latent_scale_factor"]),
            "latent_channels": latent_channels, "downsampling": int(ae_meta["downsampling"]),
            "autoencoder": bundle_digest(ae_folder)}
    if init:
        meta["init_bundle"] = init_from_bundle(init, BundleKind.IMAGE_DM, net, network, pairs.spacing)
    task = ImageDMTask(net, autoencoder, noise, ae_meta["latent_scale_factor"])

    def finish(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {**meta, "quality": _generation_quality(autoencoder, network, weights, meta, noise, validation,
                                                       section.get("quality", {}))}

    config = {"network": network, "noise": noise}
    return StageSetup(BundleKind.IMAGE_DM, task, examples, validation, config, finish, meta)


def _generation_quality(autoencoder: SPADEAutoencoderKL, network: Mapping[str, Any], weights: dict[str, torch.Tensor],
                        meta: Mapping[str, Any], noise: Mapping[str, Any],
                        validation: Sequence[dict[str, torch.Tensor]], quality: Mapping[str, Any]) -> dict[str, float]:
    """Generate images for held-out label maps and compare them with their real images (quality signals)."""
    validation = [validation[i] for i in range(min(len(validation), int(quality.get("samples", 0))))]
    if not validation:
        return {}
    unet = build_image_dm(network, int(meta["latent_channels"]))
    unet.load_state_dict(weights)
    device = next(autoencoder.parameters()).device
    model = ImageModel(autoencoder.eval(), unet.to(device).eval(), float(meta["latent_scale_factor"]), dict(noise),
                       int(meta["downsampling"]), int(meta["latent_channels"]), {})
    labels = torch.stack([e["labels"] for e in validation])
    seeds = [sample_seed(QUALITY_SEED, i) for i in range(len(validation))]
    images = paint_images(model, labels, seeds, sampler=str(quality.get("sampler", "ddim")),
                          steps=int(quality.get("steps", 20)), batch_size=len(validation))
    report = consistency_report(images, labels.numpy(), np.stack([e["image"][0].numpy() for e in validation]))
    log.info("image_dm: generation quality %s", report)
    return report


STAGES: dict[str, Callable[..., StageSetup]] = {"image_ae": setup_image_ae, "image_dm": setup_image_dm}


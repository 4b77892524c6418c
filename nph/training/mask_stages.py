"""The two mask stages as the ``train`` command runs them: data → task → (engine) → bundle meta.

``mask_ae`` learns the label autoencoder and, once trained, its latent scale factor and reconstruction
Dice; ``mask_dm`` learns the conditional diffusion model on the frozen autoencoder's latents.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nph.data.labels import LABEL_IDS, LABEL_NAMES, VENTRICLE_IDS, label_id_table
from nph.errors import InputError
from nph.models.bundle import BundleKind, bundle_digest, load_bundle
from nph.models.mask_ae import MaskAETask, MaskAutoencoder, build_mask_ae, dice_per_class
from nph.models.mask_data import MaskData, load_masks
from nph.models.mask_dm import MaskDMTask, build_mask_unet, oversampling_weights
from nph.training.stage import StageSetup

__all__ = ["STAGES", "latent_scale_factor", "load_mask_ae", "reconstruction_dice", "setup_mask_ae", "setup_mask_dm"]

log = logging.getLogger(__name__)
VENTRICLE_INDICES = torch.tensor([LABEL_IDS.index(i) for i in VENTRICLE_IDS])


def _grid_meta(data: MaskData) -> dict[str, Any]:
    return {"label_ids": label_id_table(), "shape": list(data.shape), "spacing": [float(s) for s in data.spacing],
            "affine": data.affine.tolist(), "training_cases": len(data.examples)}


@torch.inference_mode()
def latent_scale_factor(net: MaskAutoencoder, labels: Sequence[torch.Tensor]) -> float:
    """1 / std of posterior samples over ``labels`` (Rombach et al.): unit-variance latents for the U-Net."""
    latents = [net.autoencoder.sampling(*net.encode(x[None])) for x in labels]
    return float(1.0 / torch.cat([z.flatten() for z in latents]).std())


@torch.inference_mode()
def reconstruction_dice(net: MaskAutoencoder, labels: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Mean Dice per class (by name) and of the whole ventricles (union of the six) over ``labels``."""
    per_class, whole = [], []
    for x in labels:
        prediction = net.decode(net.encode(x[None])[0]).argmax(1)[0]
        per_class.append(dice_per_class(prediction, x))
        a, b = torch.isin(prediction, VENTRICLE_INDICES), torch.isin(x, VENTRICLE_INDICES)
        whole.append(2.0 * float((a & b).sum()) / max(1, int(a.sum() + b.sum())))
    means = np.nanmean(np.asarray(per_class), axis=0) if per_class else np.full(len(LABEL_NAMES), np.nan)
    return {"ventricles": float(np.mean(whole)) if whole else float("nan"),
            "mean": float(np.nanmean(means)), "per_class": {n: (None if np.isnan(v) else float(v))
                                                             for n, v in zip(LABEL_NAMES, means, strict=True)}}


def _check_divisible(shape: Sequence[int], factor: int) -> None:
    if any(s % factor for s in shape):
        raise InputError(f"grid.shape: {list(shape)} is not divisible by the mask autoencoder's downsampling ×{factor}")


def setup_mask_ae(section: Mapping[str, Any], data: str | Path, *, grid_shape: Sequence[int] | None = None,
                  **_: Any) -> StageSetup:
    """Keys of ``section``: ``network`` (see build_mask_ae), ``kl_weight``, ``dice_weight`` (0 = cross-entropy
    alone, as the thesis), ``validation_cases``, ``scale_cases``."""
    masks = load_masks(Path(data), tuple(grid_shape) if grid_shape else None)
    network = dict(section["network"])
    net = build_mask_ae(network)
    _check_divisible(masks.shape, net.downsampling)
    task = MaskAETask(net, float(section.get("kl_weight", 1e-6)), float(section.get("dice_weight", 0.0)))
    validation = masks.examples[: int(section.get("validation_cases", 4))]
    meta = _grid_meta(masks)

    def finish(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        trained = copy.deepcopy(net).cpu().eval()
        trained.load_state_dict(weights)
        labels = [e["labels"] for e in masks.examples[: int(section.get("scale_cases", 16))]]
        scale = latent_scale_factor(trained, labels)
        dice = reconstruction_dice(trained, [e["labels"] for e in validation])
        log.info("mask_ae: latent scale factor %.4g, whole-ventricle Dice %.3f, mean Dice %.3f",
                 scale, dice["ventricles"], dice["mean"])
        latent = [int(network["latent_channels"]), *(s // net.downsampling for s in masks.shape)]
        return {**meta, "latent_scale_factor": scale, "latent_shape": latent, "downsampling": net.downsampling,
                "reconstruction_dice": dice}

    return StageSetup(BundleKind.MASK_AE, task, masks.examples, validation, {"network": network}, finish, meta)


def load_mask_ae(folder: str | Path) -> tuple[MaskAutoencoder, dict[str, Any], dict[str, Any]]:
    """The trained mask autoencoder of a bundle (eval mode, frozen), its config and meta."""
    config, state, meta = load_bundle(folder, BundleKind.MASK_AE)
    net = build_mask_ae(config["network"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{folder}: weights do not fit the network in its config.yaml ({str(err)[:200]})") from err
    return net.eval().requires_grad_(False), config, meta


@torch.inference_mode()
def _encode_all(ae: MaskAutoencoder, masks: MaskData, scale: float, condition: np.ndarray,
                posterior: bool) -> list[dict[str, Any]]:
    """Scaled posterior mean and std per case; ``posterior=False`` trains on the means alone (std 0)."""
    out = []
    for example, value in zip(masks.examples, condition, strict=True):
        mu, sigma = ae.encode(example["labels"][None])
        sigma = sigma if posterior else torch.zeros_like(sigma)
        value_t = torch.tensor(value, dtype=torch.float32)
        out.append({"mu": mu[0] * scale, "sigma": sigma[0] * scale, "condition": value_t})
    return out


def setup_mask_dm(section: Mapping[str, Any], data: str | Path, models: str | Path, *,
                  grid_shape: Sequence[int] | None = None, **_: Any) -> StageSetup:
    """Keys: ``network`` (build_mask_unet), ``noise`` (models.noise), ``drop_prob``, ``oversample_bins`` (0 = off),
    ``posterior_sampling`` (train on posterior samples, as the thesis; false = on the posterior means)."""
    ae_folder = Path(models) / BundleKind.MASK_AE.value
    ae, _config, ae_meta = load_mask_ae(ae_folder)
    masks = load_masks(Path(data), tuple(grid_shape) if grid_shape else None)
    if list(masks.shape) != list(ae_meta["shape"]):
        raise InputError(f"{data}: grid {list(masks.shape)} differs from the autoencoder's {ae_meta['shape']} "
                         f"({ae_folder})")
    low, high = float(masks.ventricle_fraction.min()), float(masks.ventricle_fraction.max())
    if not high > low:
        raise InputError(f"{data}: every case has ventricle_fraction {low}; conditioning needs a range")
    condition = (masks.ventricle_fraction - low) / (high - low)
    scale = float(ae_meta["latent_scale_factor"])
    posterior = bool(section.get("posterior_sampling", True))
    examples = _encode_all(ae, masks, scale, condition, posterior)
    network, noise = dict(section["network"]), dict(section["noise"])
    latent_channels = int(ae_meta["latent_shape"][0])
    task = MaskDMTask(build_mask_unet(network, latent_channels), noise, float(section.get("drop_prob", 0.2)))
    bins = int(section.get("oversample_bins", 0))
    meta = {**_grid_meta(masks), "latent_scale_factor": scale, "latent_shape": ae_meta["latent_shape"],
            "condition": {"name": "ventricle_fraction", "min": low, "max": high}, "noise": noise,
            "drop_prob": float(section.get("drop_prob", 0.2)), "mask_ae": bundle_digest(ae_folder),
            "oversample_bins": bins, "posterior_sampling": posterior}
    weights = oversampling_weights(condition, bins) if bins > 0 else None
    return StageSetup(BundleKind.MASK_DM, task, examples, [], {"network": network, "noise": noise},
                      lambda _weights: dict(meta), meta, weights)


STAGES: dict[str, Callable[..., StageSetup]] = {"mask_ae": setup_mask_ae, "mask_dm": setup_mask_dm}

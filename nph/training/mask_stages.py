"""The two mask stages as the ``train`` command runs them: data → task → (engine) → bundle meta.

``mask_ae`` learns the label autoencoder and, once trained, its latent scale factor and reconstruction
Dice; ``mask_dm`` learns the conditional diffusion model on the frozen autoencoder's latents.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset

from nph.data.labels import LABEL_IDS, LABEL_NAMES, VENTRICLE_IDS, label_id_table
from nph.errors import InputError
from nph.models.bundle import BundleKind, bundle_digest, load_bundle
from nph.models.latent_stats import inverse_std
from nph.models.mask_ae import MaskAETask, MaskAutoencoder, build_mask_ae, dice_per_class
from nph.models.mask_data import MaskData, load_masks
from nph.models.mask_dm import MaskDMTask, build_mask_unet, oversampling_weights
from nph.training.data import split_cases, split_meta
from nph.training.latent_cache import MaskLatents, cached_latents
from nph.training.stage import StageSetup

__all__ = ["STAGES", "latent_scale_factor", "load_mask_ae", "reconstruction_dice", "setup_mask_ae", "setup_mask_dm"]

log = logging.getLogger(__name__)
VENTRICLE_INDICES = torch.tensor([LABEL_IDS.index(i) for i in VENTRICLE_IDS])


def _grid_meta(data: MaskData, training: Sequence[int], validation: Sequence[int], seed: int) -> dict[str, Any]:
    return {"label_ids": label_id_table(), "shape": list(data.shape), "spacing": [float(s) for s in data.spacing],
            "affine": data.affine.tolist(), "training_cases": len(training),
            "cases": split_meta(data.case_ids, training, validation, seed)}


@torch.inference_mode()
def latent_scale_factor(net: MaskAutoencoder, labels: Iterable[torch.Tensor]) -> float:
    """1 / std of posterior samples over ``labels`` (Rombach et al.): unit-variance latents for the U-Net."""
    return inverse_std(net.autoencoder.sampling(*net.encode(x[None])) for x in labels)


@torch.inference_mode()
def reconstruction_dice(net: MaskAutoencoder, labels: Iterable[torch.Tensor]) -> dict[str, Any]:
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
                  cache: Path | None = None, split_seed: int = 0, **_: Any) -> StageSetup:
    """Keys of ``section``: ``network`` (see build_mask_ae), ``kl_weight``, ``dice_weight`` (0 = cross-entropy
    alone, as the thesis), ``validation_cases`` (held out by case), ``scale_cases``."""
    network = dict(section["network"])
    net = build_mask_ae(network)
    if grid_shape:  # before the case store is built: a refused run writes nothing
        _check_divisible(grid_shape, net.downsampling)
    masks = load_masks(Path(data), tuple(grid_shape) if grid_shape else None, cache)
    _check_divisible(masks.shape, net.downsampling)
    task = MaskAETask(net, float(section.get("kl_weight", 1e-6)), float(section.get("dice_weight", 0.0)))
    training, held_out = split_cases(masks.case_ids, int(section.get("validation_cases", 4)), split_seed)
    examples, validation = Subset(masks.examples, training), Subset(masks.examples, held_out)
    meta = _grid_meta(masks, training, held_out, split_seed)

    def finish(weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        trained = copy.deepcopy(net).cpu().eval()
        trained.load_state_dict(weights)
        scale_cases = range(min(len(examples), int(section.get("scale_cases", 16))))
        scale = latent_scale_factor(trained, (examples[i]["labels"] for i in scale_cases))
        dice = reconstruction_dice(trained, (validation[i]["labels"] for i in range(len(validation))))
        log.info("mask_ae: latent scale factor %.4g, whole-ventricle Dice %.3f, mean Dice %.3f (%d held-out cases)",
                 scale, dice["ventricles"], dice["mean"], len(validation))
        latent = [int(network["latent_channels"]), *(s // net.downsampling for s in masks.shape)]
        return {**meta, "latent_scale_factor": scale, "latent_shape": latent, "downsampling": net.downsampling,
                "reconstruction_dice": dice}

    return StageSetup(BundleKind.MASK_AE, task, examples, validation, {"network": network}, finish, meta)


def load_mask_ae(folder: str | Path) -> tuple[MaskAutoencoder, dict[str, Any], dict[str, Any]]:
    """The trained mask autoencoder of a bundle (eval mode, frozen), its config and meta."""
    config, state, meta = load_bundle(folder, BundleKind.MASK_AE)
    net = build_mask_ae(config["network"])
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{folder}: weights do not fit the network in its config.yaml ({str(err)[:200]})") from err
    return net.eval().requires_grad_(False), config, meta


def setup_mask_dm(section: Mapping[str, Any], data: str | Path, models: str | Path, *,
                  grid_shape: Sequence[int] | None = None, cache: Path | None = None, split_seed: int = 0,
                  device: torch.device | None = None, **_: Any) -> StageSetup:
    """Keys: ``network`` (build_mask_unet), ``noise`` (models.noise), ``drop_prob``, ``oversample_bins`` (0 = off),
    ``posterior_sampling`` (train on posterior samples, as the thesis; false = on the posterior means),
    ``validation_cases`` (held out by case; the same cases as mask_ae's for the same count and split seed),
    ``encode_batch`` (label maps per encoder pass when the latents are cached)."""
    ae_folder = Path(models) / BundleKind.MASK_AE.value
    ae, _config, ae_meta = load_mask_ae(ae_folder)
    masks = load_masks(Path(data), tuple(grid_shape) if grid_shape else None, cache)
    if list(masks.shape) != list(ae_meta["shape"]):
        raise InputError(f"{data}: grid {list(masks.shape)} differs from the autoencoder's {ae_meta['shape']} "
                         f"({ae_folder})")
    training, held_out = split_cases(masks.case_ids, int(section.get("validation_cases", 4)), split_seed)
    # the condition's units come from the training cases alone: held-out cases must not shape the model
    low, high = float(masks.ventricle_fraction[training].min()), float(masks.ventricle_fraction[training].max())
    if not high > low:
        raise InputError(f"{data}: every training case has ventricle_fraction {low}; conditioning needs a range")
    condition = (masks.ventricle_fraction - low) / (high - low)
    scale = float(ae_meta["latent_scale_factor"])
    posterior = bool(section.get("posterior_sampling", True))
    latents = cached_latents(ae, masks.examples, masks.case_ids, bundle_digest(ae_folder),
                             Path(models) / BundleKind.MASK_DM.value / "training", device or torch.device("cpu"),
                             int(section.get("encode_batch", 4)))
    examples = MaskLatents(latents, training, scale, condition, posterior)
    validation = MaskLatents(latents, held_out, scale, condition, posterior)
    network, noise = dict(section["network"]), dict(section["noise"])
    latent_channels = int(ae_meta["latent_shape"][0])
    task = MaskDMTask(build_mask_unet(network, latent_channels), noise, float(section.get("drop_prob", 0.2)))
    bins = int(section.get("oversample_bins", 0))
    meta = {**_grid_meta(masks, training, held_out, split_seed), "latent_scale_factor": scale,
            "latent_shape": ae_meta["latent_shape"], "condition": {"name": "ventricle_fraction", "min": low,
                                                                   "max": high},
            "noise": noise, "drop_prob": float(section.get("drop_prob", 0.2)), "mask_ae": bundle_digest(ae_folder),
            "oversample_bins": bins, "posterior_sampling": posterior}
    weights = oversampling_weights(condition[training], bins) if bins > 0 else None
    return StageSetup(BundleKind.MASK_DM, task, examples, validation, {"network": network, "noise": noise},
                      lambda _weights: dict(meta), meta, weights)


STAGES: dict[str, Callable[..., StageSetup]] = {"mask_ae": setup_mask_ae, "mask_dm": setup_mask_dm}

"""Sampling label maps with a requested ventricle size: noise → guided denoising → decode → argmax → ids.

Sample ``i`` of a run with seed ``s`` draws its noise from ``nph.seeds.sample_seed(s, i)``, so the
result does not depend on the batch size or on which other samples were drawn.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.labels import contiguous_to_ids
from nph.errors import InputError
from nph.models.bundle import BundleKind, bundle_digest, load_bundle
from nph.models.mask_ae import MaskAutoencoder
from nph.models.mask_dm import build_mask_unet, make_context
from nph.models.noise import build_scheduler
from nph.progress import progress
from nph.sampling.defaults import DEFAULT
from nph.sampling.diffusion import (
    Interval,
    check_guidance_interval,
    check_sampler,
    guided_denoiser,
    inference_autocast,
    initial_noise,
    interval_text,
    sample_latents,
)
from nph.seeds import sample_seed
from nph.training.mask_stages import load_mask_ae

__all__ = ["MaskModel", "generate_masks", "load_mask_model", "sample_mask_batch", "sample_masks"]

log = logging.getLogger(__name__)


@dataclass
class MaskModel:
    """The two trained mask bundles of a ``models/`` folder, ready to sample."""

    ae: MaskAutoencoder
    unet: torch.nn.Module
    meta: dict[str, Any]  # the diffusion bundle's meta: condition range, latent shape and scale, grid
    noise: dict[str, Any]
    digests: dict[str, str]
    device: torch.device

    def fraction_of(self, condition: float) -> float:
        """The ventricle fraction a normalised condition asks for (1.0 = largest in training)."""
        low, high = self.meta["condition"]["min"], self.meta["condition"]["max"]
        return low + condition * (high - low)


def load_mask_model(models: str | Path, device: torch.device | None = None) -> MaskModel:
    """Load ``models/mask_ae`` and ``models/mask_dm`` and check that they belong together."""
    models = Path(models)
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ae, _, _ = load_mask_ae(models / BundleKind.MASK_AE.value)
    dm_folder = models / BundleKind.MASK_DM.value
    config, state, meta = load_bundle(dm_folder, BundleKind.MASK_DM)
    ae_digest = bundle_digest(models / BundleKind.MASK_AE.value)
    if meta.get("mask_ae") != ae_digest:
        raise InputError(
            f"{dm_folder}: trained on mask autoencoder {meta.get('mask_ae')}, but "
            f"{models / 'mask_ae'} is {ae_digest}; retrain mask_dm or restore that autoencoder"
        )
    unet = build_mask_unet(config["network"], int(meta["latent_shape"][0]))
    try:
        unet.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"{dm_folder}: weights do not fit the network in its config.yaml ({str(err)[:200]})") from err
    unet.eval().requires_grad_(False)
    return MaskModel(
        ae.to(device),
        unet.to(device),
        meta,
        dict(config["noise"]),
        {"mask_ae": ae_digest, "mask_dm": bundle_digest(dm_folder)},
        device,
    )


def _conditions(condition: float | Sequence[float], n: int) -> npt.NDArray[np.float64]:
    values = np.atleast_1d(np.asarray(condition, dtype=np.float64))
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise InputError(f"condition: expected a number or a list of numbers, got {condition!r}")
    return values[np.arange(n) % values.size]


def _check_request(
    n: int,
    sampler: str,
    batch_size: int,
    steps: int,
    condition: float | Sequence[float],
    guidance_interval: Interval = None,
) -> npt.NDArray[np.float64]:
    """Refuse a bad request before any model is loaded or anything is written; returns the conditions."""
    check_sampler(sampler)
    check_guidance_interval(guidance_interval)
    if n < 1 or batch_size < 1 or steps < 1:
        raise InputError(f"n={n}, batch_size={batch_size}, steps={steps}: each must be >= 1")
    return _conditions(condition, n)


def generate_masks(
    model: MaskModel,
    n: int,
    seed: int,
    condition: float | Sequence[float],
    *,
    guidance: float = DEFAULT.guidance,
    sampler: str = DEFAULT.sampler,
    steps: int = DEFAULT.steps,
    guidance_interval: Interval = DEFAULT.guidance_interval,
    batch_size: int = 4,
    start: int = 0,
) -> Iterator[tuple[int, float, npt.NDArray[np.int16]]]:
    """Yield ``(index, requested condition, label map in SynthSeg ids (X, Y, Z))`` for samples start..start+n-1.

    ``condition`` is the normalised ventricle fraction (0 = smallest, 1 = largest seen in training, above 1
    extrapolates); a list is assigned to samples in turn. ``guidance`` is the classifier-free guidance scale,
    applied at the noise levels in ``guidance_interval`` (:mod:`nph.sampling.diffusion`).
    """
    conditions = _check_request(n + start, sampler, batch_size, steps, condition, guidance_interval)
    for first in range(start, start + n, batch_size):
        indices = list(range(first, min(first + batch_size, start + n)))
        volumes = sample_mask_batch(
            model,
            [sample_seed(seed, i) for i in indices],
            conditions[indices],
            guidance=guidance,
            sampler=sampler,
            steps=steps,
            guidance_interval=guidance_interval,
        )
        for i, value, volume in zip(indices, conditions[indices], volumes, strict=True):
            yield i, float(value), contiguous_to_ids(volume)


def sample_mask_batch(
    model: MaskModel,
    seeds: Sequence[int],
    conditions: Sequence[float] | npt.NDArray[np.floating],
    *,
    guidance: float = DEFAULT.guidance,
    sampler: str = DEFAULT.sampler,
    steps: int = DEFAULT.steps,
    guidance_interval: Interval = DEFAULT.guidance_interval,
) -> npt.NDArray[np.int64]:
    """Contiguous label maps (B, X, Y, Z) for one batch: one noise seed and one normalised condition per sample."""
    scale = float(model.meta["latent_scale_factor"])
    autocast = inference_autocast(model.device)
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    values = torch.tensor(np.asarray(conditions, dtype=np.float32), device=model.device)
    context = make_context(values, torch.ones_like(values))
    scheduler = build_scheduler(model.noise, sampler)
    denoise = guided_denoiser(
        model.unet,
        context,
        make_context(values, torch.zeros_like(values)),
        guidance,
        check_guidance_interval(guidance_interval),
        scheduler.num_train_timesteps,
    )
    x = initial_noise(model.meta["latent_shape"], generators, model.device)
    with torch.inference_mode(), autocast:
        z = sample_latents(denoise, scheduler, x, steps, generators)
        return model.ae.decode(z / scale).float().argmax(1).to("cpu").numpy()


def sample_masks(
    models: str | Path,
    out: str | Path,
    n: int,
    seed: int,
    condition: float | Sequence[float],
    *,
    guidance: float = DEFAULT.guidance,
    sampler: str = DEFAULT.sampler,
    steps: int = DEFAULT.steps,
    guidance_interval: Interval = DEFAULT.guidance_interval,
    batch_size: int = 4,
) -> pd.DataFrame:
    """Write ``n`` sampled label maps as a labelled dataset folder (no images); returns its manifest."""
    paths = DatasetPaths(out)
    if paths.manifest.exists() or paths.dataset_json.exists():
        raise InputError(f"{paths.root}: already holds a dataset; choose an empty out= folder")
    _check_request(n, sampler, batch_size, steps, condition, guidance_interval)
    model = load_mask_model(models)
    affine = np.asarray(model.meta["affine"], dtype=np.float64)
    rows, started = [], time.perf_counter()
    bar = progress(total=n, desc="sample-masks", unit="mask")
    for index, value, label_ids in generate_masks(
        model,
        n,
        seed,
        condition,
        guidance=guidance,
        sampler=sampler,
        steps=steps,
        guidance_interval=guidance_interval,
        batch_size=batch_size,
    ):
        provenance = {
            "source": "mask_ldm",
            "seed": seed,
            "index": index,
            "requested_condition": value,
            "requested_fraction": model.fraction_of(value),
            "guidance": guidance,
            "sampler": sampler,
            "steps": steps,
            "guidance_interval": interval_text(guidance_interval),
            **model.digests,
        }
        rows.append(write_case(paths, f"mask_{index:06d}", label_ids, affine, image=None, provenance=provenance))
        bar.update(1)
        bar.set_postfix(samples_per_s=f"{len(rows) / (time.perf_counter() - started):.2f}")
    bar.close()
    manifest = finalize(
        paths,
        rows,
        description="nph mask LDM samples",
        extra={
            "generator": {"models": str(Path(models).resolve()), **model.digests, "condition": model.meta["condition"]}
        },
    )
    log.info("%d masks → %s", len(manifest), paths.root)
    return manifest

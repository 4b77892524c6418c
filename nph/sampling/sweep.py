"""The sampling sweep that picks the default: fidelity, label-map quality, wall time and cost per setting.

Mask LDM: every setting samples the same requested conditions with the same noise seeds (sample ``i`` of seed
``s`` draws ``sample_seed(s, i)``), and each (setting, seed) gives one row: Pearson r and mean |requested −
realised| of the normalised ventricle fraction, the share of maps with each anatomical defect
(:mod:`nph.sampling.defects`) and with any, wall seconds per sample, and the thesis-size TFLOP per pair.
Image LDM: for the same label maps and noise, contrast error and MS-SSIM of each setting's images against the
DDIM-50 images.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict

import numpy as np
import numpy.typing as npt
import pandas as pd

from nph.data.labels import LABEL_IDS, contiguous_to_ids, ventricle_mask
from nph.evaluation.fidelity import conditioning_fidelity
from nph.models.image_quality import contrast_error, label_means, ms_ssim_paired
from nph.sampling.defaults import DDIM_50, SamplingSettings
from nph.sampling.defects import CHECKS, defects
from nph.sampling.diffusion import interval_text
from nph.sampling.masks import MaskModel, sample_mask_batch
from nph.sampling.pairing import ImageModel, paint_images
from nph.seeds import sample_seed

__all__ = ["KEYS", "image_sweep", "mask_sweep", "summarise"]

log = logging.getLogger(__name__)
#: Columns that name a setting.
KEYS = ("sampler", "steps", "guidance", "guidance_interval")


def _setting_columns(settings: SamplingSettings) -> dict[str, object]:
    return {**asdict(settings), "guidance_interval": interval_text(settings.guidance_interval)}


def _fraction(label_ids: npt.NDArray[np.integer]) -> float:
    """Ventricle volume over intracranial volume (every non-background voxel); voxel size cancels."""
    brain = int((label_ids != 0).sum())
    return float(ventricle_mask(label_ids).sum()) / brain if brain else float("nan")


def _masks(
    model: MaskModel, settings: SamplingSettings, conditions: Sequence[float], seed: int, batch_size: int
) -> list[npt.NDArray[np.int16]]:
    out: list[npt.NDArray[np.int16]] = []
    for first in range(0, len(conditions), batch_size):
        indices = range(first, min(first + batch_size, len(conditions)))
        volumes = sample_mask_batch(
            model,
            [sample_seed(seed, i) for i in indices],
            [conditions[i] for i in indices],
            guidance=settings.guidance,
            sampler=settings.sampler,
            steps=settings.steps,
            guidance_interval=settings.guidance_interval,
        )
        out.extend(contiguous_to_ids(v) for v in volumes)
    return out


def mask_sweep(
    model: MaskModel,
    grid: Iterable[SamplingSettings],
    conditions: Sequence[float],
    seeds: Sequence[int],
    tflop: Callable[[SamplingSettings], float],
    *,
    batch_size: int = 8,
    required: Iterable[int] = LABEL_IDS,
) -> pd.DataFrame:
    """One row per (setting, seed); ``tflop(settings)`` is the cost of one pair (e.g. thesis size)."""
    low, high = float(model.meta["condition"]["min"]), float(model.meta["condition"]["max"])
    required, rows = tuple(required), []
    for settings in grid:
        cost = tflop(settings)
        for seed in seeds:
            start = time.perf_counter()
            maps = _masks(model, settings, conditions, seed, batch_size)
            seconds = (time.perf_counter() - start) / len(maps)
            realised = (np.array([_fraction(m) for m in maps]) - low) / (high - low)
            fidelity = conditioning_fidelity(conditions, realised)
            found = pd.DataFrame([defects(m, required) for m in maps])
            rows.append(
                {
                    **_setting_columns(settings),
                    "seed": seed,
                    "n": len(maps),
                    "pearson_r": fidelity["pearson_r"],
                    "mae": fidelity["mae"],
                    **{f"{check}_share": float(found[check].mean()) for check in CHECKS},
                    "defect_share": float(found.any(axis=1).mean()),
                    "seconds_per_sample": seconds,
                    "tflop_per_pair": cost,
                }
            )
            log.info(
                "sweep %s seed %d: r=%.3f MAE=%.3f defects=%.2f, %.2f s/sample",
                settings,
                seed,
                rows[-1]["pearson_r"] or float("nan"),
                rows[-1]["mae"],
                rows[-1]["defect_share"],
                seconds,
            )
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every measure, one row per setting, cheapest first."""
    measures = [c for c in rows.columns if c not in (*KEYS, "seed", "n")]
    grouped = rows.groupby(list(KEYS), dropna=False, sort=False)
    table = grouped[measures].mean()
    spread = grouped[measures].std(ddof=1).add_suffix("_sd")
    table = table.join(spread[[c for c in spread.columns if not c.startswith("tflop")]])
    table["seeds"] = grouped.size()
    return table.reset_index().sort_values(["tflop_per_pair", "mae"]).reset_index(drop=True)


def image_sweep(
    model: ImageModel,
    labels: npt.NDArray[np.integer],
    grid: Iterable[tuple[str, int]],
    seed: int,
    *,
    batch_size: int = 4,
    reference: tuple[str, int] = (DDIM_50.sampler, DDIM_50.steps),
) -> pd.DataFrame:
    """Contrast error and MS-SSIM of each (sampler, steps) against the ``reference`` images; same noise per map.

    ``labels``: contiguous label maps (N, X, Y, Z) on the model's grid. Contrast error is the mean |Δ| of the
    per-label mean intensities (:func:`nph.models.image_quality.contrast_error`).
    """
    seeds = [sample_seed(seed, i) for i in range(len(labels))]

    def paint(sampler: str, steps: int) -> tuple[npt.NDArray[np.float32], float]:
        start = time.perf_counter()
        images = paint_images(model, labels, seeds, sampler=sampler, steps=steps, batch_size=batch_size)
        return images, (time.perf_counter() - start) / len(labels)

    ref_images, _ = paint(*reference)
    ref_means = np.stack([label_means(i, lab) for i, lab in zip(ref_images, labels, strict=True)])
    rows = []
    for sampler, steps in grid:
        images, seconds = paint(sampler, steps)
        means = np.stack([label_means(i, lab) for i, lab in zip(images, labels, strict=True)])
        rows.append(
            {
                "sampler": sampler,
                "steps": steps,
                "seed": seed,
                "n": len(labels),
                "contrast_error": contrast_error(means, ref_means),
                "ms_ssim": ms_ssim_paired(images, ref_images),
                "seconds_per_sample": seconds,
            }
        )
    return pd.DataFrame(rows)

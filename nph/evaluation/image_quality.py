"""``nph image-quality``'s library entry point: how close is a synthetic labelled dataset to a real one?

- FID on MedicalNet 3D ResNet-50 features (user weights, :mod:`nph.evaluation.features`);
- MMD (MONAI, linear kernel on intensities) between equally many real and synthetic images;
- MS-SSIM diversity: mean MS-SSIM of random pairs within each dataset (lower = more diverse); the scales
  and kernel shrink to fit small grids (recorded in the output);
- per-label intensity statistics (pooled over cases) of both datasets;
- conditioning fidelity (:mod:`nph.evaluation.fidelity`) when the synthetic manifest has
  ``requested_condition`` and ``ventricle_fraction``.
Writes ``OUT/image_quality.json`` and ``OUT/intensity_stats.csv`` atomically.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch
from monai.metrics import FIDMetric, MMDMetric
from monai.metrics.regression import compute_ms_ssim

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABELS
from nph.errors import InputError
from nph.evaluation.features import ResNetSpec, extract_features, find_weights, load_feature_network
from nph.evaluation.fidelity import DEFAULT_BINS, conditioning_fidelity
from nph.evaluation.stats import json_safe
from nph.io.atomic import write_json, write_text
from nph.progress import progress

__all__ = ["MS_SSIM_WEIGHTS", "QualityOptions", "frechet_distance", "image_quality", "intensity_statistics",
           "ms_ssim_diversity", "ms_ssim_settings"]

log = logging.getLogger(__name__)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_NAMES = {label.id: label.name for label in LABELS}


@dataclass
class QualityOptions:
    """Settings of :func:`image_quality` (see configs/image_quality.yaml)."""

    weights: str | None = None
    weights_dir: str | None = None
    network: ResNetSpec = field(default_factory=ResNetSpec)
    max_images: int = 64
    ms_ssim_pairs: int = 32
    batch_size: int = 4
    seed: int = 0
    fidelity_bins: Sequence[float] = DEFAULT_BINS
    fidelity_normalisation: tuple[float, float] | None = None


def frechet_distance(real: npt.NDArray, synthetic: npt.NDArray) -> float:
    """FID between two feature sets (N, C), by MONAI's FIDMetric."""
    return float(FIDMetric()(torch.from_numpy(synthetic), torch.from_numpy(real)).item())


def ms_ssim_settings(shape: Sequence[int]) -> tuple[int, tuple[float, ...]]:
    """The largest kernel (≤ 11) and most scales (≤ 5) that MONAI's MS-SSIM accepts for ``shape``."""
    for scales in (5, 4, 3, 2, 1):
        for kernel in (11, 9, 7, 5, 3):
            if min(shape) // max(1, scales - 1) ** 2 > kernel - 1:
                weights = np.asarray(MS_SSIM_WEIGHTS[:scales])
                return kernel, tuple(float(w) for w in weights / weights.sum())
    raise InputError(f"images of shape {tuple(shape)} are too small for MS-SSIM")


def ms_ssim_diversity(images: Sequence[npt.NDArray], *, pairs: int, seed: int) -> float | None:
    """Mean MS-SSIM (data range 1) over up to ``pairs`` random distinct pairs, drawn from ``SeedSequence(seed)``."""
    if len(images) < 2:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    kernel, weights = ms_ssim_settings(images[0].shape)
    values = []
    for _ in range(pairs):
        i, j = rng.choice(len(images), size=2, replace=False)
        a, b = (torch.from_numpy(np.asarray(images[k], np.float32))[None, None] for k in (i, j))
        values.append(float(compute_ms_ssim(a, b, spatial_dims=3, kernel_size=kernel, weights=weights).mean()))
    return float(np.mean(values))


def intensity_statistics(dataset: LabelledDataset, case_ids: Sequence[str]) -> pd.DataFrame:
    """Pooled intensity mean, SD and voxel count per SynthSeg label over the given cases."""
    sums: dict[int, list[float]] = {}
    for case_id in case_ids:
        image, labels = dataset.image(case_id).data, dataset.label(case_id).data
        for label_id in np.unique(labels):
            values = image[labels == label_id].astype(np.float64)
            acc = sums.setdefault(int(label_id), [0.0, 0.0, 0.0])
            acc[0] += values.size
            acc[1] += values.sum()
            acc[2] += (values**2).sum()
    rows = []
    for label_id, (n, s, s2) in sorted(sums.items()):
        mean = s / n
        rows.append({"label_id": label_id, "label": _NAMES.get(label_id, str(label_id)), "n_voxels": int(n),
                     "mean": mean, "sd": float(np.sqrt(max(s2 / n - mean**2, 0.0)))})
    return pd.DataFrame(rows)


def _open(path: str | Path, key: str) -> LabelledDataset:
    dataset = LabelledDataset(path)
    if not dataset.has_images:
        raise InputError(f"{key}: {path} has label maps only; image quality needs images")
    return dataset


def _subset(dataset: LabelledDataset, limit: int, seed: int) -> list[str]:
    ids = dataset.case_ids
    order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(len(ids))
    return [ids[i] for i in sorted(order[:limit])]


def _load_images(dataset: LabelledDataset, case_ids: Sequence[str], what: str) -> list[npt.NDArray]:
    return [dataset.image(c).data for c in progress(case_ids, desc=f"load {what}", unit="image")]


def _fidelity(dataset: LabelledDataset, options: QualityOptions) -> dict[str, Any] | None:
    manifest = dataset.manifest
    if not {"requested_condition", "ventricle_fraction"} <= set(manifest.columns):
        return None
    requested = pd.to_numeric(manifest["requested_condition"], errors="coerce").to_numpy(float)
    realised = pd.to_numeric(manifest["ventricle_fraction"], errors="coerce").to_numpy(float)
    if options.fidelity_normalisation is not None:
        low, high = options.fidelity_normalisation
        realised = (realised - low) / (high - low)
    result = conditioning_fidelity(requested, realised, bins=options.fidelity_bins)
    return {"normalisation": options.fidelity_normalisation, **result}


def image_quality(real: str | Path, synthetic: str | Path, out: str | Path, options: QualityOptions) -> dict[str, Any]:
    """Compute every measure of the module docstring, write them to ``out`` and return them.

    Raises:
        InputError: missing weights, datasets without images, grids that differ, too few images.
    """
    weights = find_weights(options.weights, options.weights_dir)
    real_ds, synth_ds = _open(real, "real"), _open(synthetic, "synthetic")
    real_ids = _subset(real_ds, options.max_images, options.seed)
    synth_ids = _subset(synth_ds, options.max_images, options.seed + 1)
    if min(len(real_ids), len(synth_ids)) < 2:
        raise InputError(f"real/synthetic: FID and MMD need at least 2 images each, got {len(real_ids)} and "
                         f"{len(synth_ids)}")
    network = load_feature_network(weights, options.network)
    real_images = _load_images(real_ds, real_ids, "real")
    synth_images = _load_images(synth_ds, synth_ids, "synthetic")
    if real_images[0].shape != synth_images[0].shape:
        raise InputError(f"synthetic: grid {synth_images[0].shape} differs from real {real_images[0].shape}; "
                         "put both on one grid (nph ingest) first")
    start = time.perf_counter()
    real_features = extract_features(network, real_images, batch_size=options.batch_size)
    synth_features = extract_features(network, synth_images, batch_size=options.batch_size)
    rate = (len(real_images) + len(synth_images)) / (time.perf_counter() - start)
    log.info("features of %d images (%.1f images/s)", len(real_images) + len(synth_images), rate)
    n = min(len(real_images), len(synth_images))

    def to_tensor(images: list[npt.NDArray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images[:n])[:, None].astype(np.float32)).contiguous()

    kernel, ms_weights = ms_ssim_settings(real_images[0].shape)
    result = {
        "n_real": len(real_images), "n_synthetic": len(synth_images), "weights": str(weights),
        "network": asdict(options.network), "fid": frechet_distance(real_features, synth_features),
        "mmd": float(MMDMetric()(to_tensor(real_images), to_tensor(synth_images)).item()),
        "ms_ssim": {"synthetic": ms_ssim_diversity(synth_images, pairs=options.ms_ssim_pairs, seed=options.seed),
                    "real": ms_ssim_diversity(real_images, pairs=options.ms_ssim_pairs, seed=options.seed),
                    "kernel_size": kernel, "weights": list(ms_weights)},
        "conditioning_fidelity": _fidelity(synth_ds, options), "seed": options.seed,
    }
    stats = intensity_statistics(real_ds, real_ids).merge(
        intensity_statistics(synth_ds, synth_ids), on=["label_id", "label"], how="outer", suffixes=("_real", "_synth"))
    stats["mean_difference"] = stats["mean_synth"] - stats["mean_real"]
    buffer = io.StringIO()
    stats.to_csv(buffer, index=False)
    write_text(Path(out) / "intensity_stats.csv", buffer.getvalue())
    result["intensity"] = {"max_abs_mean_difference": float(stats["mean_difference"].abs().max())}
    write_json(Path(out) / "image_quality.json", json_safe(result))
    return result


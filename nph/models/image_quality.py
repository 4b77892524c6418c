"""Cheap, weight-free quality signals of the image model, logged during training and after sampling.

- reconstruction L1 / SSIM of the autoencoder;
- mask–image consistency: each label's mean intensity in generated images against real images of the
  same labels (per-label contrast error), and the ventricle/parenchyma contrast of both;
- diversity: MS-SSIM between samples (1 = identical; lower = more diverse).
Images are (X, Y, Z) or (B, 1, X, Y, Z) in [0, 1]; label maps hold contiguous indices 0..32.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

from nph.data.labels import LABELS, NUM_CLASSES, VENTRICLE_IDS, TissueGroup

__all__ = [
    "PARENCHYMA_INDICES",
    "VENTRICLE_INDICES",
    "contrast_error",
    "label_means",
    "ms_ssim_diversity",
    "ms_ssim_paired",
    "reconstruction_l1",
    "reconstruction_ssim",
    "ventricle_contrast",
]

VENTRICLE_INDICES: tuple[int, ...] = tuple(i for i, label in enumerate(LABELS) if label.id in VENTRICLE_IDS)
#: Cerebral white matter, cortex and deep grey matter: the tissue the ventricles are seen against.
PARENCHYMA_INDICES: tuple[int, ...] = tuple(
    i
    for i, label in enumerate(LABELS)
    if label.group in (TissueGroup.WHITE_MATTER, TissueGroup.CORTEX, TissueGroup.DEEP_GREY)
)
_KERNEL = 7
_MS_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _volume(x: torch.Tensor | npt.NDArray) -> torch.Tensor:
    """(X, Y, Z) or (B, 1, X, Y, Z) → float (B, 1, X, Y, Z) on CPU."""
    t = torch.as_tensor(x).detach().float().cpu()
    return t[None, None] if t.ndim == 3 else t


def reconstruction_l1(reconstruction: torch.Tensor, image: torch.Tensor) -> float:
    """Mean absolute difference over all voxels."""
    return float((_volume(reconstruction) - _volume(image)).abs().mean())


def reconstruction_ssim(reconstruction: torch.Tensor, image: torch.Tensor) -> float:
    """Mean 3D SSIM (Gaussian window of 7 voxels, data range 1)."""
    metric = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=_KERNEL)
    value = metric(_volume(reconstruction).clamp(0, 1), _volume(image).clamp(0, 1))
    return float(torch.as_tensor(value).mean())


def label_means(image: torch.Tensor | npt.NDArray, labels: torch.Tensor | npt.NDArray) -> npt.NDArray[np.float64]:
    """Mean intensity of each of the 33 labels in one volume (NaN where the label is absent)."""
    flat_image = torch.as_tensor(image).detach().float().cpu().reshape(-1).double()
    flat_labels = torch.as_tensor(labels).detach().cpu().reshape(-1).long()
    sums = torch.zeros(NUM_CLASSES, dtype=torch.float64).index_add_(0, flat_labels, flat_image)
    counts = torch.bincount(flat_labels, minlength=NUM_CLASSES).double()
    means = (sums / counts.clamp_min(1)).numpy()
    means[counts.numpy() == 0] = np.nan
    return means


def contrast_error(generated: npt.NDArray[np.float64], real: npt.NDArray[np.float64]) -> float:
    """Mean absolute difference of per-label mean intensities over the foreground labels both contain.

    Args:
        generated: (33,) or (N, 33) label means of generated images (:func:`label_means`).
        real: the same for real images of the same label maps.
    """
    diff = np.abs(np.atleast_2d(generated) - np.atleast_2d(real))[:, 1:]
    return float(np.nanmean(diff)) if np.isfinite(diff).any() else float("nan")


def ventricle_contrast(image: torch.Tensor | npt.NDArray, labels: torch.Tensor | npt.NDArray) -> float:
    """(P − V) / (P + V) of the mean intensity over all ventricle voxels (V) and all parenchyma voxels (P).

    Voxel-weighted, so the lateral ventricles count by their size. Positive when the ventricles are darker
    than the brain (FLAIR, T1); NaN if either region is absent.
    """
    flat_image = torch.as_tensor(image).detach().float().cpu().reshape(-1).double()
    flat_labels = torch.as_tensor(labels).detach().cpu().reshape(-1).long()
    means = []
    for indices in (PARENCHYMA_INDICES, VENTRICLE_INDICES):
        region = torch.isin(flat_labels, torch.tensor(indices))
        means.append(float(flat_image[region].mean()) if bool(region.any()) else float("nan"))
    parenchyma, ventricles = means
    total = parenchyma + ventricles
    return (parenchyma - ventricles) / total if total > 0 else float("nan")


def _ms_ssim_metric(shape: Sequence[int]) -> MultiScaleSSIMMetric:
    """MS-SSIM with as many of the standard five scales as the grid allows (at least one)."""
    scales = 1
    for n in range(len(_MS_WEIGHTS), 0, -1):
        if all(side // max(1, n - 1) ** 2 > _KERNEL - 1 for side in shape):
            scales = n
            break
    weights = np.asarray(_MS_WEIGHTS[:scales]) / np.sum(_MS_WEIGHTS[:scales])
    return MultiScaleSSIMMetric(spatial_dims=3, data_range=1.0, kernel_size=_KERNEL, weights=tuple(weights.tolist()))


def ms_ssim_paired(samples: torch.Tensor | npt.NDArray, references: torch.Tensor | npt.NDArray) -> float:
    """Mean MS-SSIM of each sample with its reference (both (B, X, Y, Z) in [0, 1]): how close two samplers'
    images of the same label maps and noise are."""
    first, second = (torch.as_tensor(v).detach().float().cpu().clamp(0, 1) for v in (samples, references))
    if first.shape != second.shape or first.ndim != 4:
        raise ValueError(
            f"ms_ssim_paired: shapes {tuple(first.shape)} and {tuple(second.shape)}; need equal (B, X, Y, Z)"
        )
    return float(torch.as_tensor(_ms_ssim_metric(first.shape[1:])(first[:, None], second[:, None])).mean())


def ms_ssim_diversity(samples: torch.Tensor | npt.NDArray, max_pairs: int = 16) -> float:
    """Mean MS-SSIM over pairs of samples (B ≥ 2 volumes, (B, X, Y, Z) or (B, 1, X, Y, Z)).

    The first ``max_pairs`` pairs in a fixed order are used, so the number is reproducible.
    """
    t = torch.as_tensor(samples).detach().float().cpu()
    t = t[:, None] if t.ndim == 4 else t
    if t.shape[0] < 2:
        raise ValueError(f"ms_ssim_diversity: needs at least 2 samples, got {t.shape[0]}")
    pairs = list(itertools.combinations(range(t.shape[0]), 2))[:max_pairs]
    metric = _ms_ssim_metric(t.shape[2:])
    first = torch.stack([t[i] for i, _ in pairs]).clamp(0, 1)
    second = torch.stack([t[j] for _, j in pairs]).clamp(0, 1)
    return float(torch.as_tensor(metric(first, second)).mean())

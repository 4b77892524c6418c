"""Phantom contrast: paint an MRI-like image (FLAIR or T1) onto a SynthSeg-id label map.

Per-tissue means with per-case jitter, a little tissue texture, periventricular hyperintensity on FLAIR
(more with larger ventricles), partial-volume blur, a smooth multiplicative bias field and Rician noise;
background 0; scaled to [0, 1] by the 0.5/99.5 percentiles of the head voxels, as the thesis scales its scans.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from nph.data.labels import LABELS, VENTRICLE_IDS, TissueGroup
from nph.data.phantom_anatomy import smooth_field

__all__ = ["CONTRAST_MEANS", "Contrast", "paint_image"]

PERCENTILES = (0.5, 99.5)
_G = TissueGroup


class Contrast(str, Enum):
    """The MRI contrasts a phantom can have."""

    FLAIR = "flair"
    T1 = "t1"


#: Mean intensity per tissue group before bias, noise and scaling (arbitrary units, background 0).
CONTRAST_MEANS: dict[Contrast, dict[TissueGroup, float]] = {
    Contrast.FLAIR: {
        _G.BACKGROUND: 0.0, _G.CSF: 0.10, _G.VENTRICLE: 0.07, _G.WHITE_MATTER: 0.48, _G.CORTEX: 0.70,
        _G.DEEP_GREY: 0.62, _G.CEREBELLUM_WM: 0.50, _G.CEREBELLUM_GM: 0.68, _G.BRAINSTEM: 0.56,
    },
    Contrast.T1: {
        _G.BACKGROUND: 0.0, _G.CSF: 0.12, _G.VENTRICLE: 0.10, _G.WHITE_MATTER: 0.82, _G.CORTEX: 0.50,
        _G.DEEP_GREY: 0.62, _G.CEREBELLUM_WM: 0.78, _G.CEREBELLUM_GM: 0.52, _G.BRAINSTEM: 0.72,
    },
}
#: Structures that differ from their group's mean (pallidum and thalamus are brighter on T1, e.g.).
_OFFSETS: dict[Contrast, dict[int, float]] = {
    Contrast.FLAIR: {13: -0.04, 52: -0.04, 10: -0.02, 49: -0.02, 17: 0.03, 53: 0.03},
    Contrast.T1: {13: 0.10, 52: 0.10, 10: 0.05, 49: 0.05, 11: -0.04, 50: -0.04, 17: -0.06, 53: -0.06},
}
_WM_IDS = (2, 41)


def _lookup(contrast: Contrast, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A per-case id → mean intensity table: each tissue group's mean jittered by ~4 %, each label by ~1 %."""
    group_gain = {group: float(np.exp(rng.normal(0.0, 0.04))) for group in TissueGroup}
    table = np.zeros(max(label.id for label in LABELS) + 1, dtype=np.float32)
    for label in LABELS:
        mean = CONTRAST_MEANS[contrast][label.group] + _OFFSETS[contrast].get(label.id, 0.0)
        table[label.id] = mean * group_gain[label.group] * float(np.exp(rng.normal(0.0, 0.01)))
    return table


def _periventricular(labels: npt.NDArray[np.int16], spacing: tuple[float, float, float]) -> npt.NDArray[np.float32]:
    """How close each white-matter voxel is to a ventricle (1 at the wall, fading over ~3 mm), else 0."""
    near = ndimage.gaussian_filter(np.isin(labels, VENTRICLE_IDS).astype(np.float32), [3.0 / s for s in spacing])
    return np.where(np.isin(labels, _WM_IDS), np.minimum(2.0 * near, 1.0), 0.0).astype(np.float32)


def paint_image(
    labels: npt.NDArray[np.int16],
    spacing: tuple[float, float, float],
    contrast: Contrast | str,
    rng: np.random.Generator,
    *,
    enlargement: float = 0.0,
) -> npt.NDArray[np.float32]:
    """A float32 image in [0, 1] for ``labels`` (SynthSeg ids, RAS+), 0 outside the head.

    Args:
        labels: (X, Y, Z) label map.
        spacing: voxel size in mm (sets the periventricular rim's width).
        contrast: ``flair`` or ``t1``.
        rng: the case's generator for intensities, bias and noise.
        enlargement: the phantom's ventricle enlargement; FLAIR's periventricular hyperintensity grows with it.
    """
    contrast = Contrast(contrast)
    image = _lookup(contrast, rng)[labels]
    image += rng.normal(0.0, 0.02, labels.shape).astype(np.float32)  # tissue texture
    if contrast is Contrast.FLAIR:
        image += np.float32(0.05 + 0.12 * min(max(enlargement, 0.0), 1.5)) * _periventricular(labels, spacing)
    image = ndimage.gaussian_filter(image, 0.5)  # partial volume at the voxel scale
    control = tuple(min(4, s) for s in labels.shape)
    image *= np.exp(np.float32(0.12) * smooth_field(rng, labels.shape, control))
    sigma = np.float32(rng.uniform(0.015, 0.03))
    real = image + sigma * rng.standard_normal(labels.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(labels.shape, dtype=np.float32)
    image = np.sqrt(real * real + imag * imag)
    head = labels != 0
    if not head.any():
        return np.zeros(labels.shape, dtype=np.float32)
    low, high = np.percentile(image[head], PERCENTILES)
    scaled = np.clip((image - low) / max(float(high - low), 1e-6), 0.0, 1.0)
    scaled[~head] = 0.0
    return scaled.astype(np.float32, copy=False)

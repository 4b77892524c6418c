"""Ellipsoidal heads with known Evans index: label maps, and images with a scalp + skull shell of known thickness."""

from __future__ import annotations

import numpy as np

#: x semi-axis (voxels) of the intracranial ellipsoid, centred on the grid's x centre.
BRAIN_SEMI_X = 35.5


def ellipsoid(shape, centre, semi_axes) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum(((g - c) / a) ** 2 for g, c, a in zip(grids, centre, semi_axes, strict=True)) <= 1.0


def head_with_ventricles(half_width: float, shape=(81, 60, 40)) -> np.ndarray:
    """SynthSeg ids: an ellipsoidal head (semi-axis 35.5 voxels in x) and two lateral-ventricle ellipsoids
    centred 10 voxels either side of the midline with ``half_width`` voxels in x; elongated in y so the
    anterior horn rows are as wide as the centre row."""
    centre = tuple(n // 2 for n in shape)
    ids = np.where(ellipsoid(shape, centre, (BRAIN_SEMI_X, 28, 18)), 2, 0).astype(np.int16)
    ids[ellipsoid(shape, (centre[0] - 10, *centre[1:]), (half_width, 60, 4))] = 4
    ids[ellipsoid(shape, (centre[0] + 10, *centre[1:]), (half_width, 60, 4))] = 43
    return ids


def image_with_scalp(ids: np.ndarray, spacing, shell_mm: float) -> np.ndarray:
    """A FLAIR-like image of ``ids`` (brain 0.6, ventricles 0.1) inside a shell ``shell_mm`` thick on every axis:
    dark bone (0.02) under bright scalp (0.8), half the thickness each; 0 outside the head."""
    centre = tuple(n // 2 for n in ids.shape)
    brain_semi = np.array([BRAIN_SEMI_X, 28, 18], float)

    def grown(mm: float) -> np.ndarray:
        return ellipsoid(ids.shape, centre, brain_semi + mm / np.asarray(spacing, float))

    image = np.where(grown(shell_mm), 0.8, 0.0).astype(np.float32)
    image[grown(shell_mm / 2)] = 0.02
    image[ids != 0] = 0.6
    image[np.isin(ids, (4, 43))] = 0.1
    return image

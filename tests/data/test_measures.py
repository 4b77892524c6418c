"""Ventricle volume, ICV and Evans index on a box phantom whose true values are known."""

from __future__ import annotations

import math

import numpy as np

from nph.data.measures import evans_index, measure, voxel_volume_ml

SPACING = (1.0, 2.0, 3.0)  # anisotropic on purpose: 6 mm³ a voxel
AFFINE = np.diag([*SPACING, 1.0])


def box_head() -> np.ndarray:
    """Head 30 voxels (30 mm) wide; frontal horns span x 12..27 (16 mm); wider posterior ventricle parts."""
    ids = np.zeros((40, 40, 20), dtype=np.int16)
    ids[5:35, 5:35, 2:18] = 2
    ids[12:18, 20:30, 8:12] = 4
    ids[22:28, 20:30, 8:12] = 43
    # posterior parts (y 20..22) reach further out: wider than the horns, but not frontal
    ids[10:12, 20:23, 8:12] = 4
    ids[28:30, 20:23, 8:12] = 43
    ids[19:21, 15:20, 6:8] = 14  # 3rd ventricle
    ids[19:21, 8:11, 4:6] = 15  # 4th ventricle
    return ids


def test_volumes_use_the_voxel_spacing() -> None:
    ids = box_head()
    assert math.isclose(voxel_volume_ml(AFFINE), 0.006)
    ventricle_voxels = 2 * (6 * 10 * 4) + 2 * (2 * 3 * 4) + 2 * 5 * 2 + 2 * 3 * 2
    m = measure(ids, AFFINE)
    assert math.isclose(m.ventricle_ml, ventricle_voxels * 0.006)
    assert math.isclose(m.icv_ml, 30 * 30 * 16 * 0.006)
    assert math.isclose(m.ventricle_fraction, ventricle_voxels / (30 * 30 * 16))


def test_evans_index_uses_frontal_horns_over_inner_skull_width() -> None:
    ids = box_head()
    assert math.isclose(evans_index(ids, AFFINE), 16 / 30)
    # A skull narrower on the horns' slice changes the denominator: the same slice is used.
    narrower = ids.copy()
    narrower[5:8, :, 8:12] = 0
    narrower[32:35, :, 8:12] = 0
    assert math.isclose(evans_index(narrower, AFFINE), 16 / 24)


def test_evans_index_is_nan_without_lateral_ventricles() -> None:
    ids = box_head()
    ids[np.isin(ids, (4, 43))] = 2
    assert math.isnan(evans_index(ids, AFFINE))


def test_evans_index_reorients_arrays_that_are_not_ras() -> None:
    """An IPL array (as the thesis's networks produce, ``nph import-thesis``) measures like its RAS original."""
    from nph.models.thesis_import import grid_affine

    ids = box_head()
    ipl = np.ascontiguousarray(ids.transpose(2, 1, 0)[::-1, ::-1, ::-1])  # axes S→I, A→P, R→L
    affine = grid_affine(ipl.shape, (SPACING[2], SPACING[1], SPACING[0]), "IPL")
    assert math.isclose(evans_index(ipl, affine), 16 / 30)
    assert math.isclose(measure(ipl, affine).icv_ml, measure(ids, AFFINE).icv_ml)

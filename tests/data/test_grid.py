"""The grid step: volumes and ids survive resampling, any orientation lands in RAS, heads centre, intensities scale."""

from __future__ import annotations

import numpy as np
import pytest
from ingest_inputs import head_labels, reorient

from nph.data.grid import (
    Grid,
    LabelResampling,
    check_same_head,
    head_centre_mm,
    resample_labels,
    resample_to,
    scale_intensity,
    target_affine,
    to_grid,
)
from nph.errors import InputError
from nph.io.nifti import Volume

THESIS_LIKE = Grid(shape=(24, 28, 24), spacing=(1.667, 1.75, 1.667))


def _sphere(radius_mm: float, shape=(40, 48, 40), centre=(19.5, 23.5, 19.5)) -> np.ndarray:
    grid = np.indices(shape).astype(np.float64)
    return sum((grid[i] - centre[i]) ** 2 for i in range(3)) <= radius_mm**2


def test_target_affine_puts_grid_centre_on_head_centre() -> None:
    grid = Grid(shape=(10, 20, 30), spacing=(2.0, 1.0, 3.0))
    affine = target_affine(grid, (5.0, -7.0, 11.0))
    assert np.allclose(affine[:3, :3], np.diag([2.0, 1.0, 3.0]))
    assert np.allclose(affine @ np.array([4.5, 9.5, 14.5, 1.0]), [5.0, -7.0, 11.0, 1.0])


def test_sphere_volume_is_kept_by_label_and_image_resampling() -> None:
    radius = 12.0
    sphere = _sphere(radius)
    true_ml = 4 / 3 * np.pi * radius**3 / 1000
    labels = Volume(np.where(sphere, 4, 0).astype(np.int16), np.eye(4))
    gridded = to_grid(labels, THESIS_LIKE)
    voxel_ml = float(np.prod(THESIS_LIKE.spacing)) / 1000
    label_ml = float((gridded.label.data == 4).sum()) * voxel_ml
    assert label_ml == pytest.approx(true_ml, rel=0.03)
    assert gridded.label.data.dtype == np.int16 and gridded.icv_retained == pytest.approx(1.0, abs=0.03)
    image = resample_to(Volume(sphere.astype(np.float32), np.eye(4)), gridded.label.affine, THESIS_LIKE.shape, order=1)
    assert image.data.dtype == np.float32
    assert float(image.data.sum()) * voxel_ml == pytest.approx(true_ml, rel=0.03)


@pytest.mark.parametrize("method", list(LabelResampling))
def test_both_label_resamplings_keep_every_label_id(method) -> None:
    ids = head_labels()
    gridded = to_grid(Volume(ids, np.eye(4)), THESIS_LIKE, label_resampling=method)
    assert set(np.unique(gridded.label.data)) == set(np.unique(ids)) == {0, 2, 3, 4, 12, 14, 41, 42, 43}
    assert gridded.label.data.dtype == ids.dtype


def test_a_thin_binary_mask_keeps_its_volume_under_linear_resampling() -> None:
    """A 4 mm thin ellipsoid (a ventricle-like mask) from 1 mm onto 1.7 mm voxels: linear within 5 %, nearest +17 %."""
    grid = np.indices((40, 48, 40)).astype(np.float64)
    for centre in ((19.5, 23.5, 19.5), (19.2, 23.9, 19.7), (18.7, 23.3, 20.1)):
        x, y, z = (grid[i] - centre[i] for i in range(3))
        mask = ((x / 14) ** 2 + (y / 2) ** 2 + (z / 10) ** 2 <= 1).astype(np.int16)
        affine = target_affine(THESIS_LIKE, (19.5, 23.5, 19.5))
        volume_mm3 = {method: float(resample_labels(Volume(mask, np.eye(4)), affine, THESIS_LIKE.shape, method)
                                    .data.sum()) * float(np.prod(THESIS_LIKE.spacing)) for method in LabelResampling}
        assert volume_mm3[LabelResampling.LINEAR] == pytest.approx(float(mask.sum()), rel=0.05)
        assert volume_mm3[LabelResampling.NEAREST] > 1.1 * float(mask.sum())


def test_same_head_check_passes_other_grids_and_refuses_a_shift() -> None:
    ids = head_labels()
    head = ids != 0
    check_same_head(ids, head, (1.0, 1.0, 1.0))  # identical: passes
    check_same_head(np.where(ids == 3, 24, ids), head & (ids != 3), (1.0, 1.0, 1.0))  # dark outer CSF: passes
    shifted = np.roll(ids, 4, axis=0)  # 4 mm to the right (the head stays inside the array)
    with pytest.raises(InputError, match=r"^lab\.nii: does not describe the head in img\.nii: \d+% of its labelled "
                                         r"voxels lie over the image's head \(needs 95%\) and it reaches 4 mm beyond "
                                         r"it \(allowed 11\); a wrong pairing or a shifted label map\?$"):
        check_same_head(shifted, head, (1.0, 1.0, 1.0), label_source="lab.nii", image_source="img.nii")
    with pytest.raises(InputError, match=r"0% of its labelled voxels"):
        check_same_head(ids, np.zeros_like(head), (1.0, 1.0, 1.0))


@pytest.mark.parametrize("flips", [(0,), (0, 2), (1, 2)], ids=["LAS", "LAI", "RPI"])
def test_non_ras_source_lands_in_ras_with_left_on_the_left(flips) -> None:
    ids = head_labels()
    ras = to_grid(Volume(ids, np.eye(4)), THESIS_LIKE).label
    stored, affine = reorient(ids, np.eye(4), flips)  # not reoriented on load: resample_to handles any affine
    moved = to_grid(Volume(stored, affine), THESIS_LIKE).label
    assert np.allclose(moved.affine, ras.affine) and np.array_equal(moved.data, ras.data)
    marker_x = np.argwhere(moved.data == 12)[:, 0].mean()
    left_wm_x = np.argwhere(moved.data == 2)[:, 0].mean()
    right_wm_x = np.argwhere(moved.data == 41)[:, 0].mean()
    assert marker_x < THESIS_LIKE.shape[0] / 2 and left_wm_x < THESIS_LIKE.shape[0] / 2 < right_wm_x


def test_head_is_centred_and_a_too_small_grid_crops() -> None:
    ids = head_labels(centre_shift=(-4, 3, 2))
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-100.0, 20.0, 5.0)
    centre = head_centre_mm(ids, affine)
    coords = np.argwhere(ids != 0)
    assert np.allclose(centre, (coords.min(0) + coords.max(0)) / 2 + affine[:3, 3])
    gridded = to_grid(Volume(ids, affine), THESIS_LIKE)
    out = np.argwhere(gridded.label.data != 0)
    assert np.allclose((out.min(0) + out.max(0)) / 2, (np.array(THESIS_LIKE.shape) - 1) / 2, atol=1.0)
    small = Grid(shape=(12, 28, 24), spacing=(1.667, 1.75, 1.667))  # 20 mm wide: the 31 mm head is cut
    cropped = to_grid(Volume(ids, affine), small)
    kept_x = 12 * 1.667
    head_x = np.arange(ids.shape[0])[(ids != 0).any(axis=(1, 2))]
    inside = np.abs(head_x - (head_x.min() + head_x.max()) / 2) < kept_x / 2
    expected = (ids != 0)[head_x[inside]].sum() / (ids != 0).sum()
    assert cropped.icv_retained == pytest.approx(expected, abs=0.03) and cropped.icv_retained < 0.9


def test_intensity_scaling_maps_head_percentiles_to_0_and_1() -> None:
    rng = np.random.default_rng(np.random.SeedSequence(7))
    image = rng.uniform(100, 1100, size=(20, 20, 20)).astype(np.float32)
    head = np.zeros(image.shape, dtype=bool)
    head[2:18, 2:18, 2:18] = True
    image[~head] = 5000.0  # bright background must not move the scale
    scaled = scale_intensity(image, head, zero_outside=True)
    assert np.all(scale_intensity(image, head)[~head] == 1.0)  # kept (clipped) unless zeroed on request
    low, high = np.percentile(image[head], [0.5, 99.5])
    assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
    assert np.all(scaled[~head] == 0.0)
    assert (scaled[head] == 0.0).mean() == pytest.approx(0.005, abs=0.001)
    assert (scaled[head] == 1.0).mean() == pytest.approx(0.005, abs=0.001)
    median = float(np.median(image[head]))
    assert np.median(scaled[head]) == pytest.approx((median - low) / (high - low), abs=1e-3)
    assert np.median(scaled[head]) == pytest.approx(0.5, abs=0.02)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InputError, match=r"^lab.nii: label map has no non-background voxels"):
        head_centre_mm(np.zeros((4, 4, 4), dtype=np.int16), np.eye(4), source="lab.nii")
    with pytest.raises(InputError, match=r"^img.nii: intensities are constant over the head"):
        scale_intensity(np.ones((4, 4, 4)), np.ones((4, 4, 4), dtype=bool), source="img.nii")
    with pytest.raises(InputError, match=r"^img.nii: no head voxels"):
        scale_intensity(np.ones((4, 4, 4)), np.zeros((4, 4, 4), dtype=bool), source="img.nii")
    with pytest.raises(InputError, match=r"grid.shape: expected three positive integers"):
        Grid(shape=(4, 4.5, 4), spacing=(1, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"grid.spacing"):
        Grid(shape=(4, 4, 4), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="order must be 0"):
        resample_to(Volume(np.zeros((4, 4, 4)), np.eye(4)), np.eye(4), (4, 4, 4), order=3)

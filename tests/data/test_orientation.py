"""Reorientation by axis codes: exact permutations and flips of arrays, the same voxel at the same place."""

from __future__ import annotations

import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform

from nph.data.orientation import axis_codes, reorient, reorient_axes
from nph.errors import InputError
from nph.models.thesis_import import grid_affine

ARRAY = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # a batch of two 3×4×5 volumes


@pytest.mark.parametrize(("source", "target"), [("IPL", "IAR"), ("RAS", "ASR"), ("IPL", "PIR"), ("LPS", "RAS")])
def test_a_round_trip_is_the_identity(source: str, target: str) -> None:
    there = reorient(ARRAY, source, target)
    assert there.flags.c_contiguous and there.dtype == ARRAY.dtype
    np.testing.assert_array_equal(reorient(there, target, source), ARRAY)


def test_flips_and_permutations_are_exact() -> None:
    np.testing.assert_array_equal(reorient(ARRAY, "IPL", "IAL"), ARRAY[:, :, ::-1, :])  # P → A: axis 1 flipped
    np.testing.assert_array_equal(reorient(ARRAY, "IPL", "IAR"), ARRAY[:, :, ::-1, ::-1])  # and L → R: axis 2
    asr = reorient(ARRAY, "RAS", "ASR")  # RAS axes (x, y, z) → (y, z, x)
    assert asr.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(asr, ARRAY.transpose(0, 2, 3, 1))
    assert reorient_axes((3, 4, 5), "RAS", "ASR") == (4, 5, 3)
    assert reorient_axes((1.0, 2.0, 3.0), "IPL", "PIR") == (2.0, 1.0, 3.0)
    assert reorient(ARRAY, "ras", "RAS") is ARRAY  # same codes: the array itself, no copy


@pytest.mark.parametrize(("source", "target"), [("IPL", "IAR"), ("IPL", "PIR"), ("RAS", "ASR")])
def test_one_grid_in_two_layouts_puts_each_voxel_at_the_same_place(source: str, target: str) -> None:
    shape, spacing = (3, 4, 5), (1.0, 2.0, 3.0)
    there = grid_affine(reorient_axes(shape, source, target), reorient_axes(spacing, source, target), target)
    transform = ornt_transform(axcodes2ornt(tuple(source)), axcodes2ornt(tuple(target)))
    np.testing.assert_allclose(there, grid_affine(shape, spacing, source) @ inv_ornt_aff(transform, shape))


def test_bad_codes_name_the_setting() -> None:
    assert axis_codes("ipl") == "IPL"
    with pytest.raises(InputError, match=r"^image_orientation=IPX: expected one of R/L, A/P, S/I per axis"):
        axis_codes("IPX", "image_orientation")
    with pytest.raises(InputError, match=r"^orientation=IP: expected three axis codes"):
        reorient(ARRAY, "IP", "RAS")

"""Anatomical defect checks: phantoms pass all three; each planted defect is caught by its check alone."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nph.data.phantoms import make_phantom
from nph.sampling.defects import CHECKS, defects

TINY = {"shape": (32, 48, 32), "spacing": (5.0, 4.667, 5.0)}
CLEAN = dict.fromkeys(CHECKS, False)


@pytest.fixture(scope="module")
def phantoms() -> list[np.ndarray]:
    return [make_phantom(seed, enlargement=e, **TINY).label_ids for seed, e in ((0, 0.0), (1, 0.5), (2, 1.0))]


def test_phantoms_have_no_defects(phantoms):
    for label_ids in phantoms:
        assert defects(label_ids) == CLEAN


def test_a_missing_label_is_caught(phantoms):
    label_ids = phantoms[0].copy()
    label_ids[label_ids == 18] = 2  # left amygdala → white matter
    assert defects(label_ids) == {**CLEAN, "missing_labels": True}
    assert defects(label_ids, required={0, 2, 4, 43}) == CLEAN


def test_a_detached_ventricle_fragment_is_caught(phantoms):
    label_ids = phantoms[1].copy()
    ventricle = label_ids == 4
    size = int(ventricle.sum())
    far = ndimage.distance_transform_edt(~ventricle) * (label_ids == 2)
    x, y, z = np.unravel_index(int(far.argmax()), far.shape)  # the white matter farthest from the ventricle
    side = int(np.ceil((0.1 * size) ** (1 / 3)))  # a fragment of ≈ 10 % of the ventricle, inside white matter
    block = np.zeros_like(ventricle)
    block[x - side // 2 : x + side, y - side // 2 : y + side, z - side // 2 : z + side] = True
    block &= label_ids == 2
    label_ids[block] = 4
    assert block.sum() > 0.05 * size
    assert defects(label_ids) == {**CLEAN, "disconnected_ventricles": True}
    tiny = phantoms[1].copy()
    tiny[tuple(np.argwhere(tiny == 2)[0])] = 4  # one stray voxel: below the 5 % fragment share
    assert defects(tiny) == CLEAN


def test_background_or_cortex_inside_white_matter_is_a_hole(phantoms):
    for filler in (0, 3):
        label_ids = phantoms[2].copy()
        inner = np.argwhere(label_ids == 41)
        for point in inner[len(inner) // 2 :]:  # a white-matter voxel whose 26 neighbours are white matter too
            x, y, z = point
            if (label_ids[x - 1 : x + 2, y - 1 : y + 2, z - 1 : z + 2] == 41).all():
                label_ids[x, y, z] = filler
                break
        assert defects(label_ids) == {**CLEAN, "white_matter_holes": True}, filler


def test_one_map_at_a_time():
    with pytest.raises(ValueError, match="expected one label map"):
        defects(np.zeros((2, 4, 4, 4), dtype=np.int16))

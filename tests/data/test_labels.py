"""Label table: the 33 SynthSeg ids, conversions between schemes, and the aseg fold-in."""

from __future__ import annotations

import numpy as np
import pytest

from nph.data import labels as L
from nph.errors import InputError


def test_table_has_synthseg_ids_and_six_ventricles() -> None:
    assert L.LABEL_IDS == (0, 2, 3, 4, 5, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 24, 26, 28,
                           41, 42, 43, 44, 46, 47, 49, 50, 51, 52, 53, 54, 58, 60)
    assert L.NUM_CLASSES == 33 and len(set(L.LABEL_NAMES)) == 33
    names = {label.id: label.name for label in L.LABELS}
    assert [names[i] for i in L.VENTRICLE_IDS] == [
        "left lateral ventricle", "left inferior lateral ventricle", "3rd ventricle", "4th ventricle",
        "right lateral ventricle", "right inferior lateral ventricle"]
    assert all(label.group is L.TissueGroup.VENTRICLE for label in L.LABELS if label.id in L.VENTRICLE_IDS)


def test_ids_contiguous_one_hot_round_trip() -> None:
    rng = np.random.default_rng(0)
    ids = rng.choice(L.LABEL_IDS, size=(5, 6, 7))
    contiguous = L.ids_to_contiguous(ids)
    assert contiguous.dtype == np.uint8 and contiguous.max() <= 32
    assert np.array_equal(L.contiguous_to_ids(contiguous), ids)
    hot = L.one_hot(contiguous)
    assert hot.shape == (33, 5, 6, 7)
    assert np.array_equal(hot.sum(axis=0), np.ones((5, 6, 7)))
    assert np.array_equal(hot.argmax(axis=0), contiguous)
    assert L.ids_to_contiguous(np.array([0, 2, 60])).tolist() == [0, 1, 32]


def test_unknown_id_is_an_error_naming_it() -> None:
    with pytest.raises(InputError, match=r"\[6, 99\]"):
        L.ids_to_contiguous(np.array([0, 6, 4, 99]), source="x.nii.gz")
    with pytest.raises(InputError, match=r"0\.\.32"):
        L.contiguous_to_ids(np.array([0, 33]))


def test_aseg_ids_fold_into_synthseg() -> None:
    aseg = np.array([31, 63, 72, 1001, 2035, 5001, 5002, 9, 48, 27, 62, 30, 78, 79])
    assert L.aseg_to_synthseg(aseg).tolist() == [4, 43, 24, 3, 42, 2, 41, 10, 49, 28, 41, 2, 2, 41]
    with pytest.raises(InputError, match=r"\[258\]"):
        L.aseg_to_synthseg(np.array([0, 2, 258]))


def test_midline_aseg_ids_take_their_nearest_hemisphere() -> None:
    # Left WM on the low-x side, right WM on the high-x side, corpus callosum (251-255) and WM hypo (77) between.
    row = np.array([2, 2, 2, 253, 253, 77, 77, 41, 41, 41])
    out = L.aseg_to_synthseg(row[:, None, None]).ravel()
    assert out.tolist() == [2, 2, 2, 2, 2, 41, 41, 41, 41, 41]


def test_ventricle_mask() -> None:
    ids = np.array(L.LABEL_IDS)
    assert set(ids[L.ventricle_mask(ids)].tolist()) == set(L.VENTRICLE_IDS)

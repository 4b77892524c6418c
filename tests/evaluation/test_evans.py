"""The benchmark's Evans index: one skull per case from the reference, its labels or its image's head mask."""

from __future__ import annotations

import math

import numpy as np
import pytest
from evaluation_heads import head_with_ventricles, image_with_scalp

from nph.data.measures import evans_index
from nph.errors import InputError
from nph.evaluation.casewise import CaseMaps, score_case
from nph.evaluation.evans import case_skull
from nph.evaluation.schemes import builtin_scheme
from nph.io.nifti import Volume

SPACING = (0.9, 1.2, 1.5)
AFFINE = np.diag([*SPACING, 1.0])
SYNTHSEG, BINARY = builtin_scheme("synthseg"), builtin_scheme("binary")


def test_full_brain_reference_gives_the_skull_and_every_method_is_measured_over_it() -> None:
    ref, pred = head_with_ventricles(4.5), head_with_ventricles(7.5)
    skull = case_skull(Volume(ref, AFFINE), SYNTHSEG)
    # voxel spans: horns from 30-4 to 50+4 (29 voxels), skull 40±35 (71 voxels)
    assert skull.source == "labels" and skull.flag == ""
    assert skull.width_mm == pytest.approx(71 * 0.9)
    assert skull.reference == pytest.approx(29 / 71) == evans_index(ref, AFFINE)  # the manifest's number
    assert skull.reference == pytest.approx((10 + 4.5) / 35.5, abs=1 / 71)  # the continuous value, within a voxel
    assert skull.evans_of(SYNTHSEG, pred, AFFINE) == pytest.approx(35 / 71)
    # the method's own skull plays no part: a prediction without any brain label gets the same value
    assert skull.evans_of(SYNTHSEG, np.where(pred == 2, 0, pred), AFFINE) == pytest.approx(35 / 71)
    assert skull.evans_of(SYNTHSEG, np.zeros_like(ref), AFFINE) == 0.0  # finding nothing is an Evans index of 0
    # the same head stored with axes swapped and flipped (PLI order): the same numbers
    turned = np.flip(ref.transpose(1, 0, 2), axis=(0, 1, 2))
    lpi = np.zeros((4, 4))
    lpi[0, 1], lpi[1, 0], lpi[2, 2], lpi[3, 3] = -SPACING[0], -SPACING[1], -SPACING[2], 1.0
    turned_skull = case_skull(Volume(turned, lpi), SYNTHSEG)
    assert turned_skull.width_mm == pytest.approx(skull.width_mm) and turned_skull.reference == skull.reference
    pred_turned = np.flip(pred.transpose(1, 0, 2), axis=(0, 1, 2))
    assert turned_skull.evans_of(SYNTHSEG, pred_turned, lpi) == pytest.approx(35 / 71)


def test_ventricle_only_reference_takes_the_skull_from_the_image_minus_the_scalp() -> None:
    """An image whose head has a 9 mm scalp + bone shell around the intracranial ellipsoid: the head mask is
    (35.5 + 10) × 2 voxels wide; minus 2 × 9 mm it is the inner skull, and the index is the labels' 29/71."""
    shape = (101, 80, 56)
    ids = head_with_ventricles(4.5, shape=shape)
    image = Volume(image_with_scalp(ids, SPACING, shell_mm=9.0), AFFINE)
    reference = Volume(np.isin(ids, (4, 43)).astype(np.uint8), AFFINE)  # ventricles only
    skull = case_skull(reference, BINARY, image, scalp_mm=9.0)
    assert skull.source == "image" and skull.flag == "skull_from_image"
    assert skull.width_mm == pytest.approx(91 * 0.9 - 18.0) == pytest.approx(71 * 0.9)
    assert skull.reference == pytest.approx(29 / 71) == pytest.approx(evans_index(ids, AFFINE))
    # without the scalp correction the head is taken for the skull: the index is biased low
    assert case_skull(reference, BINARY, image, scalp_mm=0.0).reference == pytest.approx(29 / 91)
    # an image on another grid (2× finer in x) is resampled onto the reference's grid first
    fine_affine = np.diag([0.45, *SPACING[1:], 1.0])
    fine_affine[0, 3] = -0.225
    fine = Volume(np.repeat(image.data, 2, axis=0), fine_affine)
    assert case_skull(reference, BINARY, fine, scalp_mm=9.0).reference == pytest.approx(29 / 71, abs=0.5 / 71)


def test_no_skull_and_no_head() -> None:
    ids = head_with_ventricles(4.5)
    reference = Volume(np.isin(ids, (4, 43)).astype(np.uint8), AFFINE)
    skull = case_skull(reference, BINARY)  # ventricle-only, no image
    assert skull.flag == "no_skull" and math.isnan(skull.reference)
    assert math.isnan(skull.evans_of(BINARY, reference.data, AFFINE))
    image = Volume(image_with_scalp(ids, SPACING, shell_mm=0.0), AFFINE)  # 71 voxels × 0.9 mm = 63.9 mm
    with pytest.raises(InputError, match=r"s\.nii: the head is 63\.9 mm wide .* evans\.scalp_mm=40"):
        case_skull(reference, BINARY, image, scalp_mm=40.0, source="s.nii")
    empty_labels = case_skull(Volume(np.zeros_like(ids), AFFINE), SYNTHSEG)  # a full-brain map with nothing in it
    assert empty_labels.flag == "no_skull" and math.isnan(empty_labels.reference)
    with pytest.raises(InputError, match=r"scan\.nii\.gz: no head found"):
        case_skull(reference, BINARY, Volume(np.zeros(ids.shape, np.float32), AFFINE), source="scan.nii.gz")


def test_reference_value_is_the_same_in_every_method_row() -> None:
    ids = head_with_ventricles(4.5)
    ref = Volume(ids, AFFINE)
    skull = case_skull(ref, SYNTHSEG)
    bigger = head_with_ventricles(7.5)
    predictions = {
        "labels": (CaseMaps(bigger, []), SYNTHSEG),
        "no_brain": (CaseMaps(np.where(np.isin(bigger, (4, 43)), bigger, 0).astype(np.int16), []), SYNTHSEG),
        "binary": (CaseMaps(np.isin(bigger, (4, 43)).astype(np.uint8), []), BINARY),
        "empty": (CaseMaps(np.zeros_like(ids), ["missing"]), SYNTHSEG),
    }
    rows = {
        m: score_case("c", m, ref, SYNTHSEG, maps, scheme, tolerance_mm=1.0, skull=skull)[0]
        for m, (maps, scheme) in predictions.items()
    }
    assert len({r["evans_reference"] for r in rows.values()}) == 1  # bit-identical in every row
    assert rows["labels"]["evans_reference"] == pytest.approx(29 / 71)
    assert [rows[m]["evans_predicted"] for m in ("labels", "no_brain", "binary")] == [pytest.approx(35 / 71)] * 3
    assert rows["empty"]["evans_predicted"] == 0.0 and rows["empty"]["abs_evans_error"] == pytest.approx(29 / 71)
    assert score_case("c", "x", ref, SYNTHSEG, CaseMaps(bigger, []), SYNTHSEG, tolerance_mm=1.0)[0][
        "evans_reference"
    ] == pytest.approx(29 / 71)  # without a skull given, the reference's labels give it

"""Label schemes (labels.json), their ventricle structures, per-case rows, grid handling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from evaluation_heads import head_with_ventricles

from nph.errors import InputError
from nph.evaluation.casewise import load_prediction, score_case
from nph.evaluation.schemes import (
    VENTRICLE_NAMES,
    WHOLE,
    builtin_scheme,
    open_label_folder,
    read_prediction_scheme,
    write_prediction_folder_labels,
)
from nph.io.nifti import Volume, save_volume


def test_labels_json_round_trip_and_structures(tmp_path) -> None:
    write_prediction_folder_labels(tmp_path, "synthseg")
    scheme = read_prediction_scheme(tmp_path)
    assert scheme.scheme.value == "synthseg" and scheme.full_brain
    assert list(scheme.structures()) == [WHOLE, *VENTRICLE_NAMES]
    assert sorted(scheme.structures()[WHOLE]) == [4, 5, 14, 15, 43, 44]
    contiguous = builtin_scheme("contiguous")
    assert contiguous.structures()["left lateral ventricle"] == (3,)  # index of id 4 in the 33-label table
    binary = builtin_scheme("binary")
    assert list(binary.structures()) == [WHOLE] and not binary.full_brain
    custom_dir = tmp_path / "custom"
    write_prediction_folder_labels(custom_dir, "custom", {"background": 0, "Left Lateral Ventricle": 7, "brain": 1})
    custom = read_prediction_scheme(custom_dir)
    assert custom.structures() == {WHOLE: (7,), "left lateral ventricle": (7,)} and custom.full_brain


def test_nnunet_dataset_json_is_a_contiguous_scheme(tmp_path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "ventricles": 1}}))
    scheme = read_prediction_scheme(tmp_path)
    assert scheme.scheme.value == "contiguous" and scheme.structures() == {WHOLE: (1,)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"scheme": "custom", "labels": {"background": 0, "liver": 1}}, "no ventricle label"),
        ({"scheme": "hexadecimal"}, "unknown scheme"),
        ({"labels": {"ventricles": 1}}, "lacks the key 'scheme'"),
        ({"scheme": "custom"}, "needs a 'labels' table"),
        ({"scheme": "custom", "labels": {"ventricles": [1, 2]}}, "expected one integer"),
    ],
)
def test_unmappable_schemes_are_input_errors(tmp_path, content, message) -> None:
    (tmp_path / "labels.json").write_text(json.dumps(content))
    with pytest.raises(InputError, match=message):
        read_prediction_scheme(tmp_path)


def test_folder_without_scheme_or_maps(tmp_path) -> None:
    with pytest.raises(InputError, match=r"neither labels\.json nor dataset\.json"):
        read_prediction_scheme(tmp_path)
    write_prediction_folder_labels(tmp_path, "binary")
    with pytest.raises(InputError, match="holds no label maps"):
        open_label_folder(tmp_path, name="predictions.x")


def test_score_case_rows_for_a_binary_prediction_and_a_missing_case() -> None:
    affine = np.diag([0.9, 1.2, 1.5, 1.0])
    ref = Volume(head_with_ventricles(4.5), affine)
    synthseg, binary = builtin_scheme("synthseg"), builtin_scheme("binary")
    voxel_ml = 0.9 * 1.2 * 1.5 / 1000
    rows = score_case("c", "bin", ref, synthseg, load_prediction(None, ref, binary), binary, tolerance_mm=1.0)
    assert [r["structure"] for r in rows] == [WHOLE]  # a binary map has no per-ventricle rows
    row = rows[0]
    assert row["flag"] == "missing,prediction_empty,worst_case_distance" and row["dice"] == 0.0
    assert row["predicted_ml"] == 0.0
    diagonal = math.sqrt((81 * 0.9) ** 2 + (60 * 1.2) ** 2 + (40 * 1.5) ** 2)  # the reference's field of view
    assert row["hd95_mm"] == pytest.approx(diagonal) and row["assd_mm"] == pytest.approx(diagonal)
    assert row["reference_ml"] == pytest.approx(np.isin(ref.data, (4, 43)).sum() * voxel_ml)
    assert row["abs_volume_error_ml"] == pytest.approx(row["reference_ml"]) and row["rel_volume_error_pct"] == -100


def test_prediction_on_another_grid_is_resampled(tmp_path) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    ids = head_with_ventricles(4.5, shape=(81, 60, 40))
    ref = Volume(ids, affine)
    fine = np.repeat(np.repeat(np.repeat(ids, 2, 0), 2, 1), 2, 2)  # 1 mm, same field of view
    fine_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    fine_affine[:3, 3] = -0.5
    save_volume(tmp_path / "c.nii.gz", fine, fine_affine, dtype=np.int16)
    maps = load_prediction(tmp_path / "c.nii.gz", ref, builtin_scheme("synthseg"))
    assert maps.flags == ["resampled"] and np.array_equal(maps.data, ids)
    save_volume(tmp_path / "bad.nii.gz", np.full((4, 4, 4), 99, np.int16), affine, dtype=np.int16)
    with pytest.raises(InputError, match=r"bad.nii.gz: values \[99\]"):
        load_prediction(tmp_path / "bad.nii.gz", ref, builtin_scheme("synthseg"))

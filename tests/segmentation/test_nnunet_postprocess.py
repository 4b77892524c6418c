"""nnU-Net's post-processing, decided with nnU-Net's own determine_postprocessing on validation predictions
that carry a stray component, then applied by nph to a new prediction with one."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from nph.segmentation.nnunet_predict_postprocess import (
    PP_FUNCTION,
    apply_rules,
    determine_rules,
    record,
    rules_from_json,
)

# The keys of nnU-Net's plans that its post-processing reads (reader/writer, label manager).
PLANS = {
    "dataset_name": "Dataset001_T",
    "plans_name": "nnUNetPlans",
    "image_reader_writer": "NibabelIO",
    "label_manager": "LabelManager",
    "configurations": {},
    "original_median_spacing_after_transp": [1, 1, 1],
    "original_median_shape_after_transp": [24, 24, 24],
    "transpose_forward": [0, 1, 2],
    "transpose_backward": [0, 1, 2],
    "experiment_planner_used": "ExperimentPlanner",
    "foreground_intensity_properties_per_channel": {},
}
DATASET = {
    "labels": {"background": 0, "lateral": 1, "third": 2},
    "file_ending": ".nii.gz",
    "channel_names": {"0": "FLAIR"},
    "numTraining": 3,
}


def _truth(shift: int) -> np.ndarray:
    seg = np.zeros((24, 24, 24), np.uint8)
    seg[6 + shift : 14 + shift, 6:14, 6:14] = 1
    seg[10 + shift : 12 + shift, 15:17, 8:10] = 2  # touches nothing of label 1's stray
    return seg


def _with_stray(seg: np.ndarray) -> np.ndarray:
    out = seg.copy()
    out[20:23, 20:23, 20:23] = 1  # a speck far from the ventricles
    return out


def _save(path: Path, seg: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(path))


@pytest.mark.slow  # nnU-Net starts a process pool per candidate step: ~1-2 min on 2 shared cores
def test_stray_component_is_removed_as_decided_on_validation(tmp_path: Path) -> None:
    validation, gt = tmp_path / "fold_0" / "validation", tmp_path / "gt_segmentations"
    validation.mkdir(parents=True)
    gt.mkdir()
    for i in range(3):
        _save(gt / f"c{i}.nii.gz", _truth(i))
        _save(validation / f"c{i}.nii.gz", _with_stray(_truth(i)))
    (tmp_path / "plans.json").write_text(json.dumps(PLANS))
    (tmp_path / "dataset.json").write_text(json.dumps(DATASET))
    source = determine_rules(validation, gt, tmp_path / "plans.json", tmp_path / "dataset.json", processes=1)
    rules = rules_from_json(source)
    # the whole foreground as one region would drop label 2 (a separate blob): nnU-Net rejects that, keeps label 1's
    assert rules == [[1]]
    assert determine_rules(validation, gt, tmp_path / "plans.json", tmp_path / "dataset.json", 1) == source

    new = _with_stray(_truth(1))
    cleaned = apply_rules(new, rules)
    assert np.array_equal(cleaned, _truth(1))  # the speck is gone, both structures kept
    assert (new[20:23, 20:23, 20:23] == 1).all()  # the input is not modified
    rec = record(rules, source)
    assert rec["applied"] == [{"function": PP_FUNCTION, "labels": [1]}]
    assert rec["validation_dice_after"] == 1.0 and rec["validation_dice_before"] < 1.0
    assert record([], None)["applied"] == []

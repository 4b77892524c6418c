"""nnU-Net's post-processing: decided on validation predictions that carry a stray component, applied to a new
prediction with one, recorded; and the same decision as nnU-Net's own determine_postprocessing makes."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

from nph.segmentation.nnunet_predict_postprocess import (
    DECISION_FILE,
    PP_FUNCTION,
    apply_rules,
    decide,
    determine_rules,
    record,
    rules_from_json,
)


def _truth(shift: int) -> np.ndarray:
    seg = np.zeros((24, 24, 24), np.uint8)
    seg[6 + shift : 14 + shift, 6:14, 6:14] = 1
    seg[10 + shift : 12 + shift, 15:17, 8:10] = 2  # a separate blob: a foreground-wide step would delete it
    return seg


def _with_stray(seg: np.ndarray) -> np.ndarray:
    out = seg.copy()
    out[20:23, 20:23, 20:23] = 1  # a speck far from the ventricles
    return out


def _save(path: Path, seg: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(seg, np.eye(4)), str(path))


def test_stray_component_is_removed_as_decided_on_validation(tmp_path: Path) -> None:
    validation, gt = tmp_path / "fold_0" / "validation", tmp_path / "gt_segmentations"
    validation.mkdir(parents=True)
    gt.mkdir()
    for i in range(3):
        _save(gt / f"c{i}.nii.gz", _truth(i))
        _save(validation / f"c{i}.nii.gz", _with_stray(_truth(i)))
    source = determine_rules(validation, gt, [1, 2])
    assert source == validation / DECISION_FILE
    # the whole foreground as one region would drop label 2 (Dice 1 → 0): rejected; label 1's step raises its Dice
    rules = rules_from_json(source)
    assert rules == [[1]]
    new = _with_stray(_truth(1))
    cleaned = apply_rules(new, rules)
    assert np.array_equal(cleaned, _truth(1))  # the speck is gone, both structures kept
    assert (new[20:23, 20:23, 20:23] == 1).all()  # the input is not modified
    rec = record(rules, source)
    assert rec["applied"] == [{"function": PP_FUNCTION, "labels": [1]}] and rec["validation_cases"] == 3
    assert rec["validation_dice_after"] == 1.0 and rec["validation_dice_before"] < 1.0
    assert record([], None)["applied"] == []
    (validation / "c0.nii.gz").unlink()  # decided once: the file is reused, not recomputed
    assert determine_rules(validation, gt, [1, 2]) == source and json.loads(source.read_text())["cases"] == 3


def test_decisions_follow_nnunet_rules() -> None:
    truths = [_truth(i) for i in range(3)]
    clean = decide(truths, truths, [1, 2])
    assert clean["rules"] == [] and clean["foreground_dice_before"] == clean["foreground_dice_after"] == 1.0
    # one connected foreground (label 2 touching label 1) with a speck: the foreground-wide step is kept first
    touching = []
    for t in truths:
        t = t.copy()
        t[t == 2] = 0
        t[9:11, 14, 8:10] = 2
        touching.append(t)
    decision = decide([_with_stray(t) for t in touching], touching, [1, 2])
    assert decision["rules"] == [[1, 2]] and decision["foreground_dice_after"] == 1.0
    # a label absent from reference and prediction alike is left out of the means (NaN), not counted as 0
    assert decide(truths, truths, [1, 2, 3])["foreground_dice_before"] == 1.0

"""nnU-Net's post-processing, decided on the validation cases the way nnU-Net does it, applied to predictions.

nnU-Net (``determine_postprocessing``) first tries "remove all but the largest connected component" of the
whole foreground and keeps it only if the mean foreground Dice of the validation cases rises and no label's
Dice falls; then, label by label in dataset.json order, keeps the step for a label where that label's mean Dice
rises. nph makes the same decisions in one process with nnU-Net's own step
(``remove_all_but_largest_component_from_segmentation``): nnU-Net's function starts a process pool per candidate
(≈ 70 pools for 33 labels, minutes on 2 cores) and stores its result as a pickle. The decision is written as
JSON beside the validation predictions (``nph_postprocessing.json``, reused on the next predict) and recorded in
each prediction folder (``postprocessing.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nph.io.atomic import write_json
from nph.io.nifti import load_volume

__all__ = [
    "DECISION_FILE",
    "PP_FUNCTION",
    "Rule",
    "apply_rules",
    "decide",
    "determine_rules",
    "record",
    "rules_from_json",
]

log = logging.getLogger(__name__)
PP_FUNCTION = "remove_all_but_largest_component_from_segmentation"
DECISION_FILE = "nph_postprocessing.json"
#: One kept post-processing step: the labels (contiguous ids) whose union keeps only its largest component.
Rule = list[int]


def apply_rules(segmentation: npt.NDArray[np.integer], rules: Sequence[Rule]) -> npt.NDArray[np.integer]:
    """Apply the kept steps in order with nnU-Net's own function (contiguous ids); the input is not modified."""
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    for labels in rules:
        segmentation = remove_all_but_largest_component_from_segmentation(segmentation, list(labels))
    return segmentation


def _dice_per_label(preds: Sequence[npt.NDArray], refs: Sequence[npt.NDArray], labels: Sequence[int]) -> np.ndarray:
    """Mean Dice per label over the cases, NaN-cases (label in neither) left out as nnU-Net does."""
    table = np.full((len(preds), len(labels)), np.nan)
    for i, (pred, ref) in enumerate(zip(preds, refs, strict=True)):
        for j, label in enumerate(labels):
            p, r = pred == label, ref == label
            total = p.sum() + r.sum()
            if total:
                table[i, j] = 2.0 * (p & r).sum() / total
    with np.errstate(invalid="ignore"):
        return np.array([np.nanmean(col) if np.isfinite(col).any() else np.nan for col in table.T])


def decide(preds: Sequence[npt.NDArray], refs: Sequence[npt.NDArray], labels: Sequence[int]) -> dict[str, Any]:
    """nnU-Net's decision on validation predictions ``preds`` against ``refs``: the kept rules and the Dice."""
    labels = list(labels)
    before = _dice_per_label(preds, refs, labels)
    rules: list[Rule] = []
    current, scores = list(preds), before
    candidate = [apply_rules(p, [labels]) for p in current]
    after = _dice_per_label(candidate, refs, labels)
    if np.nanmean(after) > np.nanmean(scores) and not np.any(after < scores):
        rules, current, scores = [labels], candidate, after
    if len(labels) > 1:
        for j, label in enumerate(labels):
            candidate = [apply_rules(p, [[label]]) for p in current]
            after = _dice_per_label(candidate, refs, labels)
            if after[j] > scores[j]:
                rules, current, scores = [*rules, [label]], candidate, after
    return {
        "function": PP_FUNCTION,
        "rules": rules,
        "labels": labels,
        "cases": len(preds),
        "foreground_dice_before": float(np.nanmean(before)),
        "foreground_dice_after": float(np.nanmean(scores)),
    }


def determine_rules(validation: Path, reference: Path, labels: Sequence[int]) -> Path:
    """Decide on a fold's ``validation/`` predictions against ``reference`` (nnU-Net's gt_segmentations), once."""
    out = validation / DECISION_FILE
    if out.is_file():
        return out
    cases = sorted(p.name for p in validation.glob("*.nii.gz"))
    if not cases:
        raise RuntimeError(
            f"{validation}: no validation predictions to decide post-processing on "
            "(train the fold to its end, or predict with postprocess=none)"
        )
    preds = [load_volume(validation / c, integer=True).data for c in cases]
    refs = [load_volume(reference / c, integer=True).data for c in cases]
    decision = decide(preds, refs, labels)
    log.info(
        "post-processing decided on %d validation cases: %s (foreground Dice %.4f → %.4f)",
        len(cases),
        decision["rules"] or "nothing",
        decision["foreground_dice_before"],
        decision["foreground_dice_after"],
    )
    return write_json(out, decision)


def rules_from_json(path: Path) -> list[Rule]:
    """The kept rules of a decision file; a step other than nnU-Net's largest-component removal is refused."""
    content = json.loads(path.read_text())
    if content.get("function") != PP_FUNCTION:
        raise RuntimeError(f"{path}: unknown post-processing step {content.get('function')!r}")
    return [[int(i) for i in rule] for rule in content["rules"]]


def record(rules: Sequence[Rule], source: Path | None) -> dict[str, Any]:
    """What the prediction folder's ``postprocessing.json`` says: the steps and the validation they came from."""
    if source is None:
        return {"applied": [], "decided_on": None, "note": "post-processing switched off (postprocess=none)"}
    content = json.loads(source.read_text())
    return {
        "applied": [{"function": PP_FUNCTION, "labels": list(r)} for r in rules],
        "decided_on": str(source.parent),
        "validation_cases": content["cases"],
        "validation_dice_before": content["foreground_dice_before"],
        "validation_dice_after": content["foreground_dice_after"],
    }

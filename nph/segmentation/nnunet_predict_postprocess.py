"""nnU-Net's post-processing, decided on the validation cases the way nnU-Net does it, applied to predictions.

nnU-Net keeps "remove all but the largest connected component" for the foreground (and then per label) only
where it raised the validation Dice (``determine_postprocessing``). nph runs that on the trained fold's
``validation/`` folder once, reads back nnU-Net's ``postprocessing.json`` (never its pickle), applies the rules
with nnU-Net's own ``remove_all_but_largest_component_from_segmentation``, and records them in the prediction
folder as ``postprocessing.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PP_FUNCTION", "Rule", "apply_rules", "determine_rules", "record", "rules_from_json"]

log = logging.getLogger(__name__)
PP_FUNCTION = "remove_all_but_largest_component_from_segmentation"
#: One kept post-processing step: the labels (contiguous ids) whose union keeps only its largest component.
Rule = list[int]


def rules_from_json(path: Path) -> list[Rule]:
    """The steps nnU-Net's ``postprocessing.json`` kept; anything but its largest-component step is refused."""
    content = json.loads(path.read_text())
    rules: list[Rule] = []
    for name, kwargs in zip(content["postprocessing_fns"], content["postprocessing_kwargs"], strict=True):
        if name != PP_FUNCTION:
            raise RuntimeError(f"{path}: unknown post-processing step {name!r} (nph applies only {PP_FUNCTION})")
        labels = kwargs["labels_or_regions"]
        items = labels if isinstance(labels, list) else [labels]
        if any(isinstance(i, list) for i in items):
            raise RuntimeError(f"{path}: region-based post-processing ({labels}) is not used by nph's schemes")
        rules.append([int(i) for i in items])
    return rules


def determine_rules(validation: Path, reference: Path, plans: Path, dataset_json: Path, processes: int) -> Path:
    """Run nnU-Net's ``determine_postprocessing`` on a fold's validation predictions (once); its JSON's path."""
    out = validation / "postprocessing.json"
    if out.is_file():
        return out
    if not any(validation.glob("*.nii.gz")):
        raise RuntimeError(
            f"{validation}: no validation predictions to decide post-processing on "
            "(train the fold to its end, or predict with postprocess=none)"
        )
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing

    determine_postprocessing(
        str(validation),
        str(reference),
        str(plans),
        str(dataset_json),
        num_processes=max(1, processes),
        keep_postprocessed_files=False,
    )
    return out


def apply_rules(segmentation: npt.NDArray[np.integer], rules: list[Rule]) -> npt.NDArray[np.integer]:
    """Apply the kept steps in nnU-Net's order with nnU-Net's own function (contiguous ids)."""
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation,
    )

    for labels in rules:
        segmentation = remove_all_but_largest_component_from_segmentation(
            segmentation, labels if len(labels) > 1 else labels[0]
        )
    return segmentation


def record(rules: list[Rule], source: Path | None) -> dict[str, Any]:
    """What the prediction folder's ``postprocessing.json`` says: the steps and the validation they came from."""
    if source is None:
        return {"applied": [], "decided_on": None, "note": "post-processing switched off (postprocess=none)"}
    content = json.loads(source.read_text())
    return {
        "applied": [{"function": PP_FUNCTION, "labels": r} for r in rules],
        "decided_on": str(source.parent),
        "validation_dice_before": content["input_folder"]["foreground_mean"].get("Dice"),
        "validation_dice_after": content["postprocessed"]["foreground_mean"].get("Dice"),
    }

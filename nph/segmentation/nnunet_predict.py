"""nnU-Net prediction into a prediction folder: stage inputs, run the trained model, check and label the output."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from nph.data.dataset import FILE_ENDING
from nph.evaluation.schemes import write_prediction_folder_labels
from nph.io.atomic import write_json
from nph.io.nifti import load_volume
from nph.segmentation.nnunet_curve import write_fold_curve
from nph.segmentation.nnunet_predict_postprocess import Rule, apply_rules, determine_rules, record, rules_from_json
from nph.segmentation.nnunet_run import predict_command
from nph.segmentation.prediction import find_images, save_prediction, stage_inputs
from nph.segmentation.process import run_logged

__all__ = ["predict_to_folder"]

log = logging.getLogger(__name__)


def predict_to_folder(
    model: Path,
    input_dir: Path,
    out_dir: Path,
    *,
    fold: str,
    device: str,
    threads: int,
    processes: int,
    env: Mapping[str, str],
    log_file: Path,
    postprocess_reference: Path | None = None,
) -> list[str]:
    """Predict every image of ``input_dir`` with the nnU-Net ``model`` folder into the prediction folder ``out_dir``.

    Each output has its reference image's shape and affine (RAS+); ``labels.json`` records the model's scheme.
    With ``postprocess_reference`` (the training labels nnU-Net preprocessed, ``gt_segmentations``), nnU-Net's
    post-processing is decided on the fold's validation cases and applied; ``postprocessing.json`` says what was.
    ``training_curve.csv`` holds the fold's learning curve from nnU-Net's record (:mod:`.nnunet_curve`).
    Returns the predicted case ids.
    """
    images = find_images(input_dir)
    info = json.loads((model / "dataset.json").read_text())
    foreground = sorted(int(v) for v in info["labels"].values() if int(v) != 0)
    rules, source = _postprocessing(model, fold, postprocess_reference, foreground)
    staging = out_dir / ".nph-staging"
    try:
        stage_inputs(images, staging / "in")
        cmd = predict_command(staging / "in", staging / "out", model, fold, device, threads, processes)
        run_logged(cmd, env, log_file, "nnU-Net predict")
        for case, path in images.items():
            _collect(staging / "out" / f"{case}{FILE_ENDING}", path, case, out_dir, len(info["labels"]), rules)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_fold_curve(model / f"fold_{fold}", out_dir)
    write_json(out_dir / "postprocessing.json", record(rules, source))
    scheme = info.get("nph", {}).get("scheme", "all33")  # labels.json last: it marks the folder complete (make)
    write_prediction_folder_labels(out_dir, "binary" if scheme == "ventricles1" else "contiguous", info["labels"])
    log.info("predicted %d cases into %s (post-processing: %s)", len(images), out_dir, rules or "none")
    return list(images)


def _postprocessing(
    model: Path, fold: str, reference: Path | None, labels: list[int]
) -> tuple[list[Rule], Path | None]:
    """The kept steps and the decision file they came from; none when switched off."""
    if reference is None:
        return [], None
    source = determine_rules(model / f"fold_{fold}" / "validation", reference, labels)
    return rules_from_json(source), source


def _collect(raw: Path, reference_path: Path, case: str, out_dir: Path, n_classes: int, rules: list[Rule]) -> None:
    """Check one nnU-Net output against its reference image and write it into the prediction folder."""
    if not raw.is_file():
        raise RuntimeError(f"{raw}: nnU-Net wrote no prediction for case {case}")
    predicted = load_volume(raw, integer=True)
    reference = load_volume(reference_path)
    if not np.allclose(predicted.affine, reference.affine, atol=1e-3):
        raise RuntimeError(f"{raw}: prediction affine differs from its reference {reference_path}")
    if predicted.data.max(initial=0) >= n_classes:
        raise RuntimeError(f"{raw}: class {predicted.data.max()} outside the model's {n_classes} labels")
    save_prediction(out_dir, case, apply_rules(predicted.data, rules), reference, source=raw)

"""``nph evaluate`` through the command line: the Hydra dict syntax, the benchmark folder, and every bad input
ending with one line and exit status 2 while an earlier benchmark folder stays intact."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from scipy import ndimage

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.labels import VENTRICLE_IDS, contiguous_to_ids, ids_to_contiguous
from nph.data.phantoms import make_phantom
from nph.evaluation.curves import write_curve
from nph.evaluation.schemes import write_prediction_folder_labels
from nph.io.nifti import load_volume, save_volume

SHAPE, SPACING = (32, 48, 32), (5.0, 4.667, 5.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """4 phantom cases; ``nnunet`` exact but lacking case c3; ``synthseg`` with lateral ventricles eroded."""
    root = tmp_path_factory.mktemp("cli_eval")
    paths, rows, maps = DatasetPaths(root / "reference"), [], {}
    for i in range(4):
        p = make_phantom(i, shape=SHAPE, spacing=SPACING, enlargement=i / 3, contrast="t1")
        rows.append(write_case(paths, f"c{i}", p.label_ids, p.affine, p.image))
        maps[f"c{i}"] = (p.label_ids, p.affine)
    finalize(paths, rows)
    for case, (ids, affine) in maps.items():
        if case != "c3":
            save_volume(root / "nnunet" / f"{case}.nii.gz", ids_to_contiguous(ids), affine, dtype=np.uint8)
        eroded = ids.copy()
        lateral = np.isin(ids, (4, 43))
        eroded[lateral & ~ndimage.binary_erosion(lateral)] = 2
        save_volume(root / "synthseg" / f"{case}.nii.gz", eroded, affine, dtype=np.int16)
    write_prediction_folder_labels(root / "nnunet", "contiguous")
    write_prediction_folder_labels(root / "synthseg", "synthseg")
    return root


def _args(root, out, **overrides):
    predictions = f"{{nnunet: {root / 'nnunet'}, synthseg: {root / 'synthseg'}}}"
    base = {"reference": root / "reference", "predictions": predictions, "out": out, "bootstrap.n": 200}
    base.update(overrides)
    return ["experiment=tiny", *[f"{k}={v}" for k, v in base.items()]]


def test_evaluate_writes_the_benchmark(run_nph, inputs, tmp_path) -> None:
    out = tmp_path / "bench"
    result = run_nph("evaluate", *_args(inputs, out))
    assert result.status == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["methods"] == ["nnunet", "synthseg"] and summary["baseline"] == "synthseg"
    whole = summary["structures"]["ventricles"]
    assert whole["nnunet"]["n_missing"] == 1 and whole["nnunet"]["metrics"]["dice"]["median"] == 1.0
    assert whole["synthseg"]["bland_altman_ml"]["bias"] < 0  # eroded: always too small
    assert whole["nnunet"]["metrics"]["dice"]["n"] == 4  # the missing case is scored (Dice 0), not dropped
    assert "synthseg" in (out / "report.md").read_text() and "versions:" in (out / "report.md").read_text()
    assert (out / "report.html").stat().st_size > 10_000 and (out / "per_case.csv").read_text().count("\n") > 8


def _bench_dir(tmp_path):
    """A folder holding an earlier benchmark, to show that a failing run leaves it alone."""
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "summary.json").write_text('{"earlier": true}\n')
    return out


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"baseline": "fastsurfer"}, "baseline: 'fastsurfer' is not one of predictions"),
        ({"predictions": "nowhere"}, "predictions: expected {name: DIR, ...}"),
        ({"schemes": "{other: binary}"}, "schemes: ['other'] name no prediction"),
        ({"reference_scheme": "octal"}, "unknown scheme 'octal'"),
        ({"tolerance_mm": -1}, "tolerance_mm: must be ≥ 0"),
        ({"evans.scalp_mm": -2}, "evans.scalp_mm: must be ≥ 0"),
    ],
)
def test_bad_settings_exit_2(run_nph, inputs, tmp_path, overrides, message) -> None:
    out = _bench_dir(tmp_path)
    result = run_nph("evaluate", *_args(inputs, out, **overrides))
    assert result.status == 2 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert (out / "summary.json").read_text() == '{"earlier": true}\n' and not (out / "per_case.csv").exists()


def test_no_overlapping_cases_exit_2(run_nph, inputs, tmp_path) -> None:
    other = tmp_path / "other"
    save_volume(other / "zz.nii.gz", np.zeros(SHAPE, np.uint8), np.eye(4), dtype=np.uint8)
    write_prediction_folder_labels(other, "binary")
    out = _bench_dir(tmp_path)
    predictions = f"{{nnunet: {other}, synthseg: {inputs / 'synthseg'}}}"
    result = run_nph("evaluate", *_args(inputs, out, predictions=predictions))
    assert result.status == 2 and "predictions.nnunet" in result.err and "shares no case id" in result.err
    assert (out / "summary.json").read_text() == '{"earlier": true}\n'


def test_unmappable_scheme_exit_2(run_nph, inputs, tmp_path) -> None:
    organs = tmp_path / "organs"
    save_volume(organs / "c0.nii.gz", np.zeros(SHAPE, np.uint8), np.eye(4), dtype=np.uint8)
    (organs / "labels.json").write_text(json.dumps({"scheme": "custom", "labels": {"background": 0, "liver": 1}}))
    result = run_nph("evaluate", *_args(inputs, tmp_path / "o", predictions=f"{{organs: {organs}}}", baseline="null"))
    assert result.status == 2 and "no ventricle label" in result.err and str(organs / "labels.json") in result.err


def test_corrupt_prediction_exit_2(run_nph, inputs, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for case in ("c0", "c1"):
        (broken / f"{case}.nii.gz").write_bytes((inputs / "synthseg" / f"{case}.nii.gz").read_bytes())
    (broken / "c2.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    write_prediction_folder_labels(broken, "synthseg")
    out = _bench_dir(tmp_path)
    result = run_nph("evaluate", *_args(inputs, out, predictions=f"{{synthseg: {broken}}}"))
    assert result.status == 2 and str(broken / "c2.nii.gz") in result.err and "cannot read" in result.err
    assert (out / "summary.json").read_text() == '{"earlier": true}\n'


def _ventricle_reference(inputs, root):
    """The reference as a ventricle-only dataset (ingest's label_scheme=ventricles): 0/1 maps, images kept."""
    shutil.copytree(inputs / "reference" / "imagesTr", root / "imagesTr")
    for path in sorted((inputs / "synthseg").glob("*.nii.gz")):
        volume = load_volume(inputs / "reference" / "labelsTr" / path.name, integer=True)
        mask = np.isin(contiguous_to_ids(volume.data), VENTRICLE_IDS).astype(np.uint8)
        save_volume(root / "labelsTr" / path.name, mask, volume.affine, dtype=np.uint8)
    labels = {"background": 0, "ventricles": 1}
    (root / "dataset.json").write_text(json.dumps({"labels": labels, "nph": {"label_scheme": "ventricles"}}))
    return root


def test_ventricle_only_reference(run_nph, inputs, tmp_path) -> None:
    reference = _ventricle_reference(inputs, tmp_path / "vref")
    out = tmp_path / "bench"
    result = run_nph("evaluate", *_args(inputs, out, reference=reference, **{"evans.scalp_mm": 0}))
    assert result.status == 0, result.err
    per_case = (out / "per_case.csv").read_text().splitlines()
    assert len(per_case) == 1 + 4 * 2 and all("skull_from_image" in line for line in per_case[1:])  # whole only
    summary = json.loads((out / "summary.json").read_text())
    assert summary["structures"]["ventricles"]["nnunet"]["bland_altman_evans"]["n"] == 4
    assert summary["provenance"]["settings"]["evans_skull"] == "image head mask − 2 × 0.0 mm"
    missing = run_nph("evaluate", *_args(inputs, _bench_dir(tmp_path), reference=reference, images=tmp_path / "no"))
    assert missing.status == 2 and f"{tmp_path / 'no'}: input folder not found" in missing.err
    assert len(missing.err.strip().splitlines()) == 1


def test_learning_curves_reach_the_report_and_summary(run_nph, inputs, tmp_path) -> None:
    """A prediction folder with training_curve.csv (as `nph nnunet predict` writes it) adds the figure and numbers;
    the SynthSeg folder has none and is simply left out of them."""
    nnunet = tmp_path / "nnunet"
    shutil.copytree(inputs / "nnunet", nnunet)
    write_curve(nnunet, {"train_loss": [0.9, math.nan, 0.31], "val_loss": [1.1, 0.8, 0.52],
                         "pseudo_dice": [0.2, 0.5, 0.71], "ema_pseudo_dice": [0.2, 0.23, 0.278]})  # fmt: skip
    out = tmp_path / "bench"
    predictions = f"{{synthseg: {inputs / 'synthseg'}, nnunet: {nnunet}}}"
    result = run_nph("evaluate", *_args(inputs, out, predictions=predictions))
    assert result.status == 0, result.err
    training = json.loads((out / "summary.json").read_text())["training"]
    assert training == {"nnunet": {"epochs": 3, "final_train_loss": 0.31, "final_val_loss": 0.52,
                                   "final_pseudo_dice": 0.71, "final_ema_pseudo_dice": 0.278,
                                   "non_finite_loss_epochs": [1]}}  # fmt: skip
    html = (out / "report.html").read_text()
    assert "<img alt='learning_curves' src='data:image/png;base64," in html and '<table id="training">' in html
    assert "<td>nnunet</td><td>3</td><td>0.31</td><td>0.52</td><td>0.71</td><td>0.278</td>" in html
    assert "nnunet: non-finite training or validation loss in epoch(s) 1" in html
    markdown = (out / "report.md").read_text()
    assert "![learning_curves](figures/learning_curves.png)" in markdown and "| nnunet | 3 | 0.31 |" in markdown
    assert (out / "figures" / "learning_curves.png").read_bytes().startswith(b"\x89PNG")
    plain = tmp_path / "plain"
    assert run_nph("evaluate", *_args(inputs, plain)).status == 0  # no curve anywhere: no figure, empty entry
    assert json.loads((plain / "summary.json").read_text())["training"] == {}
    assert "learning_curves" not in (plain / "report.html").read_text()


def test_bad_learning_curve_exit_2(run_nph, inputs, tmp_path) -> None:
    nnunet = tmp_path / "nnunet"
    shutil.copytree(inputs / "nnunet", nnunet)
    (nnunet / "training_curve.csv").write_text("epoch,loss\n0,0.5\n")
    out = _bench_dir(tmp_path)
    result = run_nph("evaluate", *_args(inputs, out, predictions=f"{{nnunet: {nnunet}}}", baseline="null"))
    assert result.status == 2 and f"{nnunet / 'training_curve.csv'}: columns ['epoch', 'loss']" in result.err
    assert len(result.err.strip().splitlines()) == 1 and (out / "summary.json").read_text() == '{"earlier": true}\n'

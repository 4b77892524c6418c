"""``nph evaluate`` through the command line: the Hydra dict syntax, the benchmark folder, and every bad input
ending with one line and exit status 2 while an earlier benchmark folder stays intact."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import ndimage

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.labels import VENTRICLE_IDS, contiguous_to_ids, ids_to_contiguous
from nph.data.phantoms import make_phantom
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

"""The SynthSeg runner: command building, 1 mm → reference-grid resampling, table parsing, the prediction folder.

SynthSeg itself cannot be installed here (no weights): `mri_synthseg` is played by tests/segmentation/
synthseg_double.py, a TEST DOUBLE that writes the true labels on a 1 mm LIA grid plus SynthSeg-format tables.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from toy_heads import write_toy_dataset

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABELS, VENTRICLE_IDS, label_id_table
from nph.data.measures import measure
from nph.errors import InputError
from nph.evaluation.schemes import read_prediction_scheme
from nph.io.nifti import Volume, load_volume
from nph.segmentation.synthseg import SynthSegOptions, build_command, resample_nearest, run_synthseg

DOUBLE = Path(__file__).with_name("synthseg_double.py")


def install_double(bin_dir: Path, labels_dir: Path, log: Path) -> dict[str, str]:
    """Put the TEST DOUBLE on a PATH as `mri_synthseg`; return the environment the runner should get."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    exe = bin_dir / "mri_synthseg"
    exe.write_text(f"#!{sys.executable}\n" + DOUBLE.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "SYNTHSEG_DOUBLE_LABELS": str(labels_dir), "SYNTHSEG_DOUBLE_LOG": str(log)}


def test_command_lines(tmp_path: Path) -> None:
    env = install_double(tmp_path / "bin", tmp_path, tmp_path / "log")
    i, o, v, q = (tmp_path / n for n in ("in", "out", "v.csv", "q.csv"))
    cmd = build_command(SynthSegOptions(threads=4), i, o, v, q, env)
    assert cmd == [str(tmp_path / "bin" / "mri_synthseg"), "--i", str(i), "--o", str(o), "--robust",
                   "--vol", str(v), "--qc", str(q), "--threads", "4", "--cpu"]
    script = tmp_path / "SynthSeg_predict.py"
    script.write_text("")
    cmd = build_command(SynthSegOptions(flavour="standalone", executable=str(script), python=sys.executable,
                                        robust=False, vol=False, qc=False, cpu=False, parc=True), i, o, v, q, env)
    assert cmd == [sys.executable, str(script), "--i", str(i), "--o", str(o), "--parc", "--threads", "1"]
    image = tmp_path / "synthseg.sif"
    image.write_text("")
    (tmp_path / "bin" / "apptainer").write_text("#!/bin/sh\n")  # TEST DOUBLE: only its presence on PATH matters
    (tmp_path / "bin" / "apptainer").chmod(0o755)
    cmd = build_command(SynthSegOptions(container=str(image), cpu=False), i, o, v, q, env)
    assert cmd[:6] == [str(tmp_path / "bin" / "apptainer"), "exec", "--nv", "--bind", str(tmp_path), str(image)]
    assert cmd[6:9] == ["mri_synthseg", "--i", str(i)]
    with pytest.raises(InputError, match=r"'mri_synthseg' not found.*FreeSurfer"):
        build_command(SynthSegOptions(), i, o, v, q, {"PATH": str(tmp_path / "nowhere")})
    with pytest.raises(InputError, match=r"container=.*no such image"):
        build_command(SynthSegOptions(container=str(tmp_path / "missing.sif")), i, o, v, q, env)
    with pytest.raises(InputError, match="flavour='fs8'"):
        build_command(SynthSegOptions(flavour="fs8"), i, o, v, q, env)


def test_resample_nearest_is_exact_for_a_reoriented_grid() -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5, (4, 6, 5)).astype(np.int16)
    ras = np.diag([2.0, 3.0, 1.5, 1.0])
    ras[:3, 3] = [-4, -9, -3]
    flip = np.eye(4)  # the same grid stored with axis 0 reversed (an LAS file)
    flip[0, 0], flip[0, 3] = -1, 3
    source = Volume(data[::-1].copy(), ras @ flip)
    assert np.array_equal(resample_nearest(source, Volume(data, ras)), data)
    shifted = ras.copy()
    shifted[0, 3] += 2.0 * 10  # a reference entirely outside the source: background
    assert not resample_nearest(source, Volume(data, shifted)).any()


def test_run_synthseg_with_test_double(tmp_path: Path) -> None:
    toy_real = write_toy_dataset(tmp_path / "real", 2, seed=4)
    log = tmp_path / "argv.jsonl"
    env = install_double(tmp_path / "bin", toy_real / "labelsTr", log)
    out = tmp_path / "pred"
    cases = run_synthseg(SynthSegOptions(threads=2, parc=True), toy_real, out, env)
    ds = LabelledDataset(toy_real)
    assert cases == ds.case_ids
    argv = json.loads(log.read_text().splitlines()[0])
    assert argv[argv.index("--threads") + 1] == "2" and "--robust" in argv and "--parc" in argv
    volumes = pd.read_csv(out / "volumes.csv").set_index("case_id")
    for case in cases:
        truth = ds.label(case)
        predicted = load_volume(out / f"{case}.nii.gz", integer=True)
        assert predicted.shape == truth.shape and np.allclose(predicted.affine, truth.affine)
        assert np.array_equal(predicted.data, truth.data)  # parcels folded back to cortex, grid recovered exactly
        hard = measure(truth.data, truth.affine).ventricle_ml
        soft_total = sum(volumes.loc[case, f"soft {label.name}"] for label in LABELS if label.id in VENTRICLE_IDS)
        assert volumes.loc[case, "ventricle_ml"] == pytest.approx(hard, rel=0.03)  # 1 mm vs 5 mm voxels
        assert soft_total == pytest.approx(1.05 * volumes.loc[case, "ventricle_ml"], rel=1e-3)  # mm³ → mL
    qc = pd.read_csv(out / "qc.csv").set_index("case_id")
    assert list(qc.index) == cases and qc["general white matter"].eq(0.9).all()
    labels = json.loads((out / "labels.json").read_text())
    assert labels["scheme"] == "synthseg" and labels["labels"] == label_id_table()
    assert read_prediction_scheme(out).structures()["ventricles"] == (4, 5, 14, 15, 43, 44)  # the evaluation reads it
    assert not (out / ".nph-synthseg").exists()

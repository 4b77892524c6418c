"""`nph synthseg` through the CLI with the SynthSeg TEST DOUBLE on PATH (weights cannot be installed here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "segmentation"))
from test_synthseg import install_double
from toy_heads import write_toy_dataset

from nph.data.dataset import LabelledDataset
from nph.io.nifti import load_volume


def test_synthseg_cli(run_nph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_toy_dataset(tmp_path / "data", 1, seed=7)
    log = tmp_path / "argv.jsonl"
    for key, value in install_double(tmp_path / "bin", data / "labelsTr", log).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    result = run_nph("synthseg", f"input={data}", f"out={tmp_path / 'pred'}", "robust=false", "qc=false")
    assert result.status == 0, result.err
    argv = json.loads(log.read_text())
    assert argv[argv.index("--threads") + 1] == "3" and "--robust" not in argv and "--qc" not in argv
    truth = LabelledDataset(data).label("case000")
    assert np.array_equal(load_volume(tmp_path / "pred" / "case000.nii.gz", integer=True).data, truth.data)
    assert json.loads((tmp_path / "pred" / "labels.json").read_text())["scheme"] == "synthseg"
    assert (tmp_path / "pred" / "volumes.csv").is_file() and not (tmp_path / "pred" / "qc.csv").exists()


def test_synthseg_cli_bad_input(run_nph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_toy_dataset(tmp_path / "data", 1, seed=7)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = run_nph("synthseg", f"input={data}", f"out={tmp_path / 'pred'}")
    assert result.status == 2 and "'mri_synthseg' not found" in result.err and "FreeSurfer" in result.err
    result = run_nph("synthseg", f"input={tmp_path / 'missing'}", f"out={tmp_path / 'pred'}")
    assert result.status == 2 and "missing: input folder not found" in result.err
    (tmp_path / "empty").mkdir()
    result = run_nph("synthseg", f"input={tmp_path / 'empty'}", f"out={tmp_path / 'pred'}")
    assert result.status == 2 and "no .nii/.nii.gz images" in result.err
    result = run_nph("synthseg", f"input={data}", f"out={tmp_path / 'pred'}", "flavour=standalone",
                     f"executable={tmp_path / 'SynthSeg_predict.py'}")
    assert result.status == 2 and "SynthSeg_predict.py not found" in result.err
    assert not any((tmp_path / "pred").glob("*.nii.gz"))

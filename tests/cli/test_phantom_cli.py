"""``nph phantom`` end to end: a valid labelled dataset on the experiment grid, one-line errors with exit 2."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABEL_IDS


@pytest.fixture(autouse=True)
def _info_logs(caplog):
    """The command logs at INFO (pytest's log capture, not stderr, receives it in tests)."""
    caplog.set_level(logging.INFO)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_a_labelled_dataset_on_the_tiny_grid(run_nph, tmp_path, caplog) -> None:
    result = run_nph("phantom", f"out={tmp_path}/ph", "n=3", "seed=4", "experiment=tiny")
    assert result.status == 0, result.err
    assert "3/3" in result.err and "case/s" in result.err  # progress bar with a rate
    assert "experiment: tiny" in caplog.text and "cases/s" in caplog.text  # config printed, final rate
    dataset = LabelledDataset(tmp_path / "ph")
    assert dataset.case_ids == ["phantom_0000", "phantom_0001", "phantom_0002"] and dataset.has_images
    assert dataset.info["channel_names"] == {"0": "FLAIR"} and dataset.info["numTraining"] == 3
    manifest = dataset.manifest
    assert list(manifest["index"]) == [0, 1, 2] and set(manifest["seed"]) == {4}
    assert manifest["enlargement"].between(0.0, 1.0).all() and manifest["enlargement"].nunique() == 3
    assert manifest["ventricle_fraction"].between(0.01, 0.16).all()
    low, high = manifest.loc[manifest["enlargement"].idxmin()], manifest.loc[manifest["enlargement"].idxmax()]
    if high["enlargement"] - low["enlargement"] > 0.3:  # different subjects: only a clear gap must show
        assert high["ventricle_fraction"] > low["ventricle_fraction"]
    for case_id in dataset.case_ids:
        label, image = dataset.label(case_id), dataset.image(case_id)
        assert label.shape == (32, 48, 32) and label.spacing == pytest.approx((5.0, 4.667, 5.0))
        assert set(np.unique(label.data)) <= set(LABEL_IDS) and image.data.max() == 1.0


def test_scalar_ventricles_and_t1(run_nph, tmp_path) -> None:
    result = run_nph("phantom", f"out={tmp_path}/t1", "n=2", "ventricles=0.8", "contrast=t1", "experiment=tiny")
    assert result.status == 0, result.err
    dataset = LabelledDataset(tmp_path / "t1")
    assert dataset.info["channel_names"] == {"0": "T1"}
    assert list(dataset.manifest["enlargement"]) == [0.8, 0.8] and set(dataset.manifest["contrast"]) == {"t1"}


@pytest.mark.parametrize(
    ("override", "key"),
    [("n=0", "n"), ("n=abc", "n"), ("n=1.5", "n"), ("contrast=pd", "contrast"), ("shape=[32,48]", "shape"),
     ("spacing=[5.0,0,5.0]", "spacing"), ("ventricles=[1.0,0.2]", "ventricles"), ("ventricles=abc", "ventricles"),
     ("workers=0", "workers"), ("seed=-3", "seed"), ("overwrite=maybe", "overwrite")],
)
def test_bad_settings_exit_2_with_one_line_and_write_nothing(run_nph, tmp_path, override, key) -> None:
    result = run_nph("phantom", f"out={tmp_path}/ph", "n=1", "experiment=tiny", override)
    assert result.status == 2
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nph phantom: error: {key}: "), result.err
    assert "Traceback" not in result.err
    assert not (tmp_path / "ph").exists()


def test_another_dataset_in_out_is_refused_and_kept_unless_overwrite(run_nph, tmp_path) -> None:
    out = tmp_path / "ph"
    assert run_nph("phantom", f"out={out}", "n=2", "seed=1", "experiment=tiny").status == 0
    before = _files(out)
    result = run_nph("phantom", f"out={out}", "n=2", "seed=2", "experiment=tiny")
    assert result.status == 2 and result.err.strip().splitlines() == [
        f"nph phantom: error: out: {out} already holds a different dataset; choose another folder or set overwrite=true"
    ]
    assert _files(out) == before
    assert run_nph("phantom", f"out={out}", "n=2", "seed=2", "experiment=tiny", "overwrite=true").status == 0
    assert _files(out) != before and len(LabelledDataset(out)) == 2


def test_missing_out_through_the_installed_command(tmp_path) -> None:
    """The real console script: no ``out`` → one line naming it, exit status 2."""
    nph = Path(sys.executable).with_name("nph")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([str(nph), "phantom", "n=1"], capture_output=True, text=True, env=env, cwd=tmp_path,
                            check=False, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == ["nph phantom: error: nph phantom: required setting(s) missing: out=..."]
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []

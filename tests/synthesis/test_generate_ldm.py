"""`nph generate` with real (tiny) mask and image LDMs: sharding, a killed run resumed, and bad settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from phantom_sampler import image_array, label_bytes

from nph.data.dataset import LabelledDataset
from nph.data.labels import LABEL_IDS

pytestmark = pytest.mark.slow

GRID = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]
N = 6


def _generate(run_nph, models: Path, out: Path, *extra: str) -> None:
    result = run_nph("generate", f"models={models}", f"n={N}", f"out={out}", "seed=3", "steps=8", *GRID, *extra)
    assert result.status == 0, result.err


def test_one_shard_equals_three_shards(run_nph, ldm_models: Path, tmp_path: Path) -> None:
    _generate(run_nph, ldm_models, tmp_path / "one", "batch_size=4")
    for k in range(3):
        _generate(run_nph, ldm_models, tmp_path / "three", f"shard={k}/3", "batch_size=1")
    status = run_nph("generate-status", f"out={tmp_path / 'three'}")
    assert status.status == 0 and f"{N}/{N} samples done" in status.out and "shard 2/3: 2/2" in status.out
    assert run_nph("generate-merge", f"out={tmp_path / 'three'}").status == 0
    one, three = LabelledDataset(tmp_path / "one"), LabelledDataset(tmp_path / "three")
    assert one.case_ids == three.case_ids == [f"synth_{i:07d}" for i in range(N)]
    for case in one.case_ids:
        assert label_bytes(one.paths.root, case) == label_bytes(three.paths.root, case)
        assert np.allclose(image_array(one.paths.root, case), image_array(three.paths.root, case), atol=1e-4)
        labels = one.label(case).data
        assert set(np.unique(labels).tolist()) <= set(LABEL_IDS) and labels.shape == (16, 24, 16)
        image = one.image(case).data
        assert np.isfinite(image).all() and image.min() >= 0.0 and image.max() <= 1.0
        assert float(np.abs(image[labels == 0]).max()) == 0.0
    manifest = one.manifest
    assert manifest["requested_condition"].between(0.0, 1.2).all()
    assert {"mask_ae", "mask_dm", "image_ae", "image_dm", "seed", "index"} <= set(manifest.columns)
    assert manifest["index"].tolist() == list(range(N)) and (manifest["seed"] == 3).all()


def test_killed_run_resumes_to_the_same_dataset(run_nph, ldm_models: Path, tmp_path: Path) -> None:
    _generate(run_nph, ldm_models, tmp_path / "reference", "batch_size=1")
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "nph", "generate", f"models={ldm_models}", f"n={N}", f"out={out}", "seed=3",
            "steps=8", "batch_size=1", *GRID]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    records = out / ".nph" / "records"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(records.glob("*.json"))) < 2 and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert 2 <= len(done_before) < N, "the kill should land mid-run"
    assert not (out / "manifest.csv").exists()
    _generate(run_nph, ldm_models, out, "batch_size=2")
    assert all(records.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in done_before.items())
    assert not list(out.rglob(".tmp-*"))
    reference, resumed = LabelledDataset(tmp_path / "reference"), LabelledDataset(out)
    assert reference.case_ids == resumed.case_ids
    for case in reference.case_ids:
        assert label_bytes(reference.paths.root, case) == label_bytes(out, case)


@pytest.mark.parametrize(
    ("override", "message"),
    [("n=-1", "n=-1: must be at least 1"), ("shard=3/3", "shard=3/3"), ("conditions.kind=wide", "conditions.kind")],
)
def test_bad_settings_are_one_line_errors(run_nph, ldm_models: Path, tmp_path: Path, override, message) -> None:
    n = [] if override.startswith("n=") else [f"n={N}"]
    result = run_nph("generate", f"models={ldm_models}", f"out={tmp_path / 'x'}", *n, *GRID, override)
    assert result.status == 2 and message in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_missing_bundle_is_an_error(run_nph, ldm_models: Path, tmp_path: Path) -> None:
    partial = tmp_path / "models"
    partial.mkdir()
    (partial / "mask_ae").symlink_to(ldm_models / "mask_ae")
    result = run_nph("generate", f"models={partial}", f"out={tmp_path / 'x'}", "n=2", *GRID)
    assert result.status == 2 and "mask_dm" in result.err and not (tmp_path / "x").exists()

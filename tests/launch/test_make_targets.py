"""The Makefile's cluster workflow: `make submit-train` chains its stages, `make submit-generate` runs for real on
the loopback SLURM (array + a merge job that waits on it), and missing settings stop make at once."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from launch.records import FAILED_STATES, LaunchPaths, read_jobs, read_record, task_states
from nph.data.dataset import LabelledDataset

REPO = Path(__file__).resolve().parents[2]
GRID = "grid.shape=[16,24,16] grid.spacing=[10.0,9.333,10.0]"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="the Makefile tests need GNU make")


def _make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`make` in the repository; never reinstalls the venv (-o), so a touched pyproject.toml cannot trigger pip."""
    argv = ["make", "--no-print-directory", "-C", str(REPO), "-o", ".venv/.installed", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env or dict(os.environ), timeout=300)


def _launch_lines(text: str) -> list[str]:
    """The launcher command lines make prints (continuation lines joined; echo lines left out)."""
    lines = text.replace("\\\n", " ").splitlines()
    return [" ".join(line.split()) for line in lines if re.match(r"\S*python\S* -m launch \w", line)]


def _after(line: str) -> str:
    """The line's ``after=...`` (the last thing on it), or ``""``."""
    return line[line.find("after=") :].rstrip() if "after=" in line else ""


def _stage(line: str) -> str:
    return re.search(r"stage=(\w+)", line).group(1)


def test_submit_train_chains_each_diffusion_stage_on_its_autoencoder(tmp_path: Path) -> None:
    result = _make("-n", "submit-train", "CLUSTER=slurm", f"OUT={tmp_path}", "DATA=/data/real", "AFTER=900")
    assert result.returncode == 0, result.stderr
    lines = _launch_lines(result.stdout)
    assert [_stage(line) for line in lines] == ["mask_ae", "mask_dm", "image_ae", "image_dm"]
    chain = f"after=$(cat {tmp_path}/launch/last_job_ids)"
    # an autoencoder waits for AFTER only; its diffusion model for the job submitted just before it
    assert [_after(line) for line in lines] == ["after=900", chain, "after=900", chain]
    for line in lines:
        assert f"cluster=slurm launch_dir={tmp_path}/launch experiment=thesis" in line
        assert f"data=/data/real models={tmp_path}/models" in line
    assert f"model bundles: {tmp_path}/models/" in result.stdout and f"LAUNCH_DIR={tmp_path}/launch" in result.stdout


def test_local_cluster_runs_the_stages_in_order_without_job_ids(tmp_path: Path) -> None:
    result = _make("-n", "submit-train", "CLUSTER=local", f"OUT={tmp_path}", "DATA=/d")
    lines = _launch_lines(result.stdout)
    assert len(lines) == 4 and not any("after=" in line for line in lines)  # the local profile waits per stage


def test_submit_nnunet_chains_export_plan_train_predict(tmp_path: Path) -> None:
    result = _make("-n", "submit-nnunet", f"OUT={tmp_path}", "TEST=/data/test", "NNUNET_DATA=/s /r", "DATASET_ID=7")
    assert result.returncode == 0, result.stderr
    lines = _launch_lines(result.stdout)
    assert [line.split(" -m launch nnunet ")[1].split()[0] for line in lines] == ["export", "plan", "train", "predict"]
    assert "data=[/s,/r]" in lines[0] and "after=" not in lines[0]
    assert all(line.endswith(f"after=$(cat {tmp_path}/launch/last_job_ids)") for line in lines[1:])
    assert f"input=/data/test out={tmp_path}/pred_nnunet" in lines[3]


@pytest.mark.parametrize(("target", "missing"), [("submit-train", "DATA"), ("submit-nnunet", "TEST")])
def test_missing_setting_stops_before_anything_is_submitted(tmp_path: Path, target: str, missing: str) -> None:
    result = _make(target, f"OUT={tmp_path}", "CLUSTER=local", "TEST=", "DATA=")
    assert result.returncode == 2
    assert f"make {target}: {missing}= is required" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _wait_all(paths: LaunchPaths, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = [r.state for r in task_states(paths)]
        assert not set(states) & FAILED_STATES, f"a task failed: {states} (logs under {paths.folder})"
        if states == ["COMPLETED"] * count:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s: {[r.state for r in task_states(paths)]}")


@pytest.mark.slurm
@pytest.mark.slow
def test_submit_generate_on_loopback_slurm(slurm_env: Path, ldm_models: Path, tmp_path: Path) -> None:
    synth = tmp_path / "synthetic"
    env = {**os.environ, "SLURM_CONF": str(slurm_env), "OMP_NUM_THREADS": "1"}
    result = _make(
        "submit-generate",
        "CLUSTER=loopback",
        "CONTAINER_SIF=",
        "EXPERIMENT=tiny",
        f"OUT={tmp_path}",
        f"MODELS={ldm_models}",
        "N=6",
        "SHARDS=2",
        "SEED=5",
        "GENERATE_ARGS=steps=8",
        f"ARGS={GRID}",
        env=env,
    )
    assert result.returncode == 0, result.stderr
    paths = LaunchPaths(tmp_path / "launch")
    generate, merge = read_jobs(paths)["submissions"]
    assert generate["command"][0] == "generate" and [t["argv"][-1] for t in generate["tasks"]] == [
        "shard=0/2",
        "shard=1/2",
    ]
    assert merge["command"][0] == "generate-merge" and merge["after"] == generate["arrays"]
    assert merge["profile"]["gpus_per_task"] == 0
    assert f"synthetic dataset: {synth}" in result.stdout and f"as job(s) {generate['arrays'][0]}" in result.stdout
    _wait_all(paths, 3, 240)
    ended = max(read_record(Path(t["record"]))["ended"] for t in generate["tasks"])
    assert read_record(Path(merge["tasks"][0]["record"]))["started"] >= ended  # the merge waited for both shards
    data = LabelledDataset(synth)
    assert data.case_ids == [f"synth_{i:07d}" for i in range(6)] and data.has_images
    assert sorted(data.manifest["index"]) == list(range(6)) and list(data.manifest["seed"].unique()) == [5]
    assert data.label(data.case_ids[0]).data.shape == (16, 24, 16)
    status = _make("status", f"OUT={tmp_path}", env=env)
    assert status.returncode == 0 and "total: 3 completed" in status.stdout


def test_submit_synthseg_binds_the_licence_and_asks_for_no_gpu(tmp_path: Path) -> None:
    sif, licence = "/img/synthseg.sif", tmp_path / "license.txt"
    result = _make(
        "-n",
        "submit-synthseg",
        "CLUSTER=slurm",
        f"OUT={tmp_path}",
        "TEST=/t",
        f"SYNTHSEG_SIF={sif}",
        f"FS_LICENSE={licence}",
    )
    assert result.returncode == 0, result.stderr
    text = result.stdout.replace("\\\n", " ")
    assert f"APPTAINER_BIND={licence}:/opt/fs-license/license.txt" in text  # where synthseg.def's FS_LICENSE points
    (line,) = [" ".join(x.split()) for x in text.splitlines() if " -m launch synthseg " in x]
    assert line.endswith("cluster.gpus_per_task=0") and f"++container={sif}" in line
    missing = _make("submit-synthseg", "CLUSTER=local", f"OUT={tmp_path}", "TEST=/t", f"SYNTHSEG_SIF={sif}")
    assert missing.returncode == 2 and "make submit-synthseg: FS_LICENSE= is required" in missing.stderr


def test_container_torch_is_cuda_12_by_default_and_a_variable(tmp_path: Path) -> None:
    default = _make("-n", "container", f"CONTAINER_SIF={tmp_path}/n.sif")
    assert 'TORCH_CUDA="cu128"' in default.stdout and "download.pytorch.org/whl/cu128" in default.stdout
    other = _make("-n", "container", "TORCH_CUDA=cu130", f"CONTAINER_SIF={tmp_path}/n.sif")
    assert "download.pytorch.org/whl/cu130" in other.stdout
    definition = (REPO / "containers" / "nph.def").read_text()
    assert "From: nvidia/cuda:12." in definition and "whl/cu128" in definition
    assert 'TORCH_CUDA="${TORCH_CUDA:-cu128}"' in (REPO / "containers" / "build.sh").read_text()

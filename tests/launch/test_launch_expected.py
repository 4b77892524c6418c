"""Rendered sbatch scripts and container command lines, kept as expected-output files under expected/.

When a change to them is intended, regenerate: NPH_REGENERATE_EXPECTED=1 pytest tests/launch/test_launch_expected.py
and review the diff of tests/launch/expected/ (the submitit pattern: a mismatch is shown as a diff).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from pathlib import Path

import pytest

from launch.profiles import load_profile, render_sbatch
from launch.request import writer_job_name

EXPECTED = Path(__file__).resolve().parent / "expected"


def _compare(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("NPH_REGENERATE_EXPECTED") == "1" or not path.is_file():
        path.write_text(text)
        if not os.environ.get("NPH_REGENERATE_EXPECTED"):
            pytest.fail(f"{path} did not exist and was written now: review it, then re-run")
        return
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), str(path), "rendered"))
        pytest.fail(f"rendered output differs from {path} (set NPH_REGENERATE_EXPECTED=1 if intended):\n{diff}")


def test_sbatch_of_the_generic_slurm_profile() -> None:
    profile = load_profile(
        "slurm",
        {
            "partition": "gpu",
            "account": "proj42",
            "qos": "normal",
            "additional_parameters": {"constraint": "a100"},
            "setup": ["module load apptainer", "export WANDB_MODE=offline"],
        },
    )
    text = render_sbatch(profile, Path("/cluster/fs/run/launch/submitit/%j"), "nph-generate", 100, python="/opt/py")
    assert "#SBATCH --array=0-99%64" in text and "#SBATCH --gres=gpu:1" in text and "#SBATCH --mem=32GB" in text
    assert "#SBATCH --signal=USR2@120" in text and "#SBATCH --time=720" in text
    assert "#SBATCH --requeue" in text and "#SBATCH --dependency=singleton" in text
    _compare("sbatch_slurm_array100.sh", text)


def test_sbatch_of_a_single_ddp_job() -> None:
    profile = load_profile("slurm", {"gpus_per_task": 1, "tasks_per_node": 4, "nodes": 2, "mem_gb": 1.5})
    text = render_sbatch(profile, Path("/cluster/fs/models/launch/submitit/%j"), "nph-train", 1, python="/opt/py")
    assert "--array" not in text and "#SBATCH --ntasks-per-node=4" in text and "#SBATCH --nodes=2" in text
    assert "#SBATCH --mem=1536MB" in text and "#SBATCH --gpus-per-node=4" in text
    _compare("sbatch_slurm_ddp.sh", text)


def test_sbatch_of_a_dependant_job() -> None:
    profile = load_profile("slurm", {"gpus_per_task": 0})
    text = render_sbatch(profile, Path("/fs/out/launch/submitit/%j"), "nph-out-1234abcd", 1, "/opt/py", ["17", "18_2"])
    assert "#SBATCH --dependency=afterok:17:18_2,singleton" in text and "#SBATCH --kill-on-invalid-dep=yes" in text
    assert "gpu" not in text  # a CPU stage (merge, export, plan, evaluate, SynthSeg) asks for no GPU
    _compare("sbatch_slurm_after.sh", text)


def test_no_expected_script_uses_the_shape_slurm_23_11_refuses() -> None:
    """Slurm 23.11: "--gpus-per-task or --tres-per-task used without either --gpus or -n/--ntasks is not allowed"."""
    texts = {p.name: p.read_text() for p in sorted(EXPECTED.iterdir())}
    assert {"sbatch_slurm_array100.sh", "sbatch_slurm_ddp.sh", "sbatch_slurm_after.sh"} <= set(texts)
    for name, text in texts.items():
        assert "--gpus-per-task" not in text and "--tres-per-task" not in text, name


def test_dry_run_with_a_container(run_launch, fake_apptainer: Path, tmp_path: Path) -> None:
    image = tmp_path / "nph.sif"
    image.write_bytes(b"")
    (tmp_path / "data").mkdir()
    result = run_launch(
        "phantom",
        "cluster=loopback",
        f"out={tmp_path}/data/run_{{k}}",
        "seed={k}",
        "shards=3",
        "shard_arg=",
        "n=4",
        f"container={image}",
        f"apptainer={fake_apptainer}",
        "dry_run=true",
        "max_array_size=2",
    )
    assert result.status == 0, result.err
    text = result.out.replace(str(tmp_path), "<tmp>").replace(str(fake_apptainer), "<apptainer>")
    text = text.replace(sys.executable, "<python>")
    assert f"--job-name={writer_job_name([f'out={tmp_path}/data/run_{{k}}'])}" in text  # one writer per folder
    text = re.sub(r"nph-data-[0-9a-f]{8}", "nph-data-<sha256 of the folder>", text)
    assert "3 task(s) in 2 array(s) of at most 2" in text
    assert not (tmp_path / "data" / "launch").exists()  # a dry run submits and writes nothing
    _compare("dry_run_container.txt", text)

"""GPU requests against the loopback SLURM with fake GPUs (scripts/slurm_local.sh, NPH_SLURM_GPUS=2).

Every sbatch script the Makefile's submit-* targets would submit is rendered by the launcher (dry run) and
validated by the real slurmctld with ``sbatch --test-only``; a real array then shows Slurm binding one GPU
per task. Slurm 22.05 here still accepts ``--gpus-per-task`` alone; 23.11 does not, which
tests/launch/test_launch_expected.py keeps out of every rendered script.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from waiting import wait_until

from launch.records import LaunchPaths, read_jobs, read_record

REPO = Path(__file__).resolve().parents[2]
#: The generic slurm profile, fitted to the loopback node (2 CPUs, little memory, partition debug).
SITE = "cluster.partition=debug cluster.account=nph cluster.mem_gb=null cluster.cpus_per_task=1"

pytestmark = [pytest.mark.slurm, pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")]


def _make_lines(target: str, tmp_path: Path, *variables: str) -> list[list[str]]:
    """The launcher argument lists `make -n <target>` would run (after= dropped: --test-only cannot wait)."""
    argv = ["make", "--no-print-directory", "-C", str(REPO), "-o", ".venv/.installed", "-n", target]
    argv += ["CLUSTER=slurm", "CONTAINER_SIF=", f"OUT={tmp_path}", f"ARGS={SITE}", *variables]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.replace("\\\n", " ").splitlines()]
    lines = [re.sub(r" after=\$\(cat [^)]*\)", "", line) for line in lines]
    launches = [line for line in lines if re.match(r"\S*python\S* -m launch \w", line)]
    commands = [shlex.split(line.split(" -m launch ", 1)[1]) for line in launches]
    return [[a for a in args if not a.startswith("after=")] for args in commands]


def _test_only(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "job.sh"
    path.write_text(script)
    return subprocess.run(["sbatch", "--test-only", str(path)], capture_output=True, text=True, timeout=60)


def _dry_run_script(run_launch, args: list[str]) -> str:
    result = run_launch(*args, "dry_run=true")
    assert result.status == 0, result.err
    return result.out[result.out.index("#!/bin/bash") :]


def _gpu_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if re.match(r"#SBATCH --(gres|gpus|ntasks-per-node|nodes)", line)]


TARGETS = {  # target, its variables, and per launcher line the GPU request it must carry
    "submit-generate": (
        ["N=30", "SHARDS=3"],
        [
            ["#SBATCH --gres=gpu:1", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"],  # generate: array
            ["#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"],  # generate-merge: no GPU
        ],
    ),
    "submit-train": (  # DDP: 1 node x 2 GPUs, one process per GPU
        ["DATA=/data/real", "TRAIN_ARGS=cluster.tasks_per_node=2"],
        [["#SBATCH --gpus-per-node=2", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=2"]] * 4,
    ),
    "submit-nnunet": (
        ["TEST=/data/test"],
        [["#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"]] * 2  # export, plan: CPU
        + [["#SBATCH --gres=gpu:1", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"]] * 2,  # train, predict
    ),
    "submit-synthseg": (["TEST=/data/test"], [["#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"]]),
    "submit-benchmark": (["TEST=/data/test"], [["#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1"]]),
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_submit_script_is_accepted_by_slurmctld(slurm_env: Path, run_launch, tmp_path: Path, target) -> None:
    variables, requests = TARGETS[target]
    lines = _make_lines(target, tmp_path, *variables)
    assert len(lines) == len(requests)
    for args, expected in zip(lines, requests, strict=True):
        script = _dry_run_script(run_launch, args)
        assert _gpu_lines(script) == expected, args[:2]
        assert "--gpus-per-task" not in script
        test = _test_only(script, tmp_path)
        assert test.returncode == 0 and re.search(r"Job \d+ to start at .* on nodes \S+", test.stderr), test.stderr


def test_loopback_refuses_more_gpus_than_the_node_has(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    """The fake GPUs are real GRES to slurmctld: 3 on a 2-GPU node is refused, as on a real cluster."""
    args = ["phantom", "cluster=slurm", *SITE.split(), f"out={tmp_path}/p", "cluster.gpus_per_task=3"]
    script = _dry_run_script(run_launch, args)
    assert "#SBATCH --gres=gpu:3" in script
    test = _test_only(script, tmp_path)
    assert test.returncode != 0 and "Requested node configuration is not available" in test.stderr


def test_array_tasks_each_get_one_gpu_bound_by_slurm(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    result = run_launch(
        "phantom",
        "cluster=loopback",
        "experiment=tiny",
        "cluster.gpus_per_task=1",
        f"out={tmp_path}/g_{{k}}",
        "seed={k}",
        "n=1",
        "shards=2",
        "shard_arg=",
        "wait=true",
    )
    assert result.status == 0, result.err
    tasks = read_jobs(LaunchPaths(tmp_path / "launch"))["submissions"][0]["tasks"]
    gpus = [read_record(Path(t["record"]))["gpus"] for t in tasks]
    # SLURM_JOB_GPUS as Slurm set it: one fake GPU each (0 or 1), never both, never none
    assert all(g in ("0", "1") for g in gpus), gpus
    wait_until(lambda: all((tmp_path / f"g_{k}" / "dataset.json").is_file() for k in range(2)), 30, "datasets")


def test_device_auto_refuses_the_gpu_slurm_bound_but_torch_cannot_see(slurm_env: Path, run_launch, tmp_path) -> None:
    """The loopback's GPUs are device files with no GPU behind them: torch sees none, so auto must refuse."""
    (tmp_path / "models").mkdir()
    result = run_launch(
        "generate",
        "cluster=loopback",
        "cluster.gpus_per_task=1",
        f"models={tmp_path}/models",
        "n=1",
        f"out={tmp_path}/synth",
        "wait=true",
        "experiment=tiny",
    )
    assert result.status == 1  # the task failed
    task = read_jobs(LaunchPaths(tmp_path / "synth" / "launch"))["submissions"][0]["tasks"][0]
    record = read_record(Path(task["record"]))
    assert (record["state"], record["returncode"], record["gpus"]) == ("failed", 2, "0")
    log = Path(task["stderr"]).read_text()
    assert (
        "device=auto: a GPU was assigned to this job (SLURM_STEP_GPUS=0, SLURM_JOB_GPUS=0, SLURM_GPUS_ON_NODE=1" in log
    )
    assert not (tmp_path / "synth" / "dataset.json").exists()

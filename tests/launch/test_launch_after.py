"""``after=JOBID,...``: a submission that waits in the queue for others (sbatch --dependency=afterok), and
``<launch_dir>/last_job_ids``, the machine-readable job ids a Makefile chains with."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from launch.profiles import dependency, load_profile, render_sbatch
from launch.records import FAILED_STATES, LaunchPaths, read_jobs, read_record, task_states
from launch.request import parse_request
from nph.data.dataset import LabelledDataset

TINY = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]


def test_after_parses_arrays_and_array_tasks(tmp_path: Path) -> None:
    req = parse_request(["phantom", "cluster=loopback", "out=o", "after=123, 124_0,", "n=1"], cwd=tmp_path)
    assert req.after == ["123", "124_0"] and req.nph_args == [f"out={tmp_path}/o", "n=1"]
    assert parse_request(["phantom", "out=o"], cwd=tmp_path).after == []
    assert parse_request(["phantom", "out=o", "after="], cwd=tmp_path).after == []
    assert dependency(["123", "124_0"]) == "afterok:123:124_0" and dependency([]) is None
    assert dependency(["5"], singleton=True) == "afterok:5,singleton" and dependency([], True) == "singleton"


def test_dependency_lands_in_the_sbatch_script() -> None:
    profile = load_profile("loopback")
    text = render_sbatch(profile, Path("/r/launch/submitit/%j"), "nph-train", 1, python="/py", after=["41", "42"])
    assert "#SBATCH --dependency=afterok:41:42,singleton\n" in text and "#SBATCH --kill-on-invalid-dep=yes\n" in text
    alone = render_sbatch(profile, Path("/r/launch/submitit/%j"), "nph-train", 1, python="/py")
    assert "#SBATCH --dependency=singleton\n" in alone  # one writer per output folder, even without after=


def test_dry_run_shows_the_dependency(run_launch, tmp_path: Path) -> None:
    result = run_launch(
        "phantom",
        "cluster=loopback",
        f"out={tmp_path}/p",
        "n=1",
        "after=7,9",
        "dry_run=true",
        "max_array_size=10",
        "shards=3",
        "shard_arg=",
        "experiment=tiny",
    )
    assert result.status == 0, result.err
    assert result.out.count("#SBATCH --dependency=afterok:7:9,singleton\n") == 1
    assert "#SBATCH --array=0-2%3" in result.out
    assert not (tmp_path / "p").exists()  # a dry run submits and writes nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["after=12x"], "after=12x: not a SLURM job id: 12x (expected e.g. after=1234,1235_0)"),
        (["after=1,2;rm"], "after=1,2;rm: not a SLURM job id: 2;rm"),
        (["after=55", "cluster=local"], "after=55: cluster=local runs tasks on this machine, which cannot wait"),
    ],
)
def test_bad_after_is_one_line_and_exit_2(run_launch, tmp_path: Path, args: list[str], message: str) -> None:
    before = {"keep.txt": "mine"}
    (tmp_path / "keep.txt").write_text("mine")
    result = run_launch("phantom", "cluster=loopback", f"out={tmp_path}", "n=1", "experiment=tiny", *args)
    assert result.status == 2 and result.out == ""
    lines = result.err.strip().splitlines()
    assert lines[-1].startswith("launch: error: ") and message in lines[-1]
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # nothing written, nothing damaged


def test_last_job_ids_names_the_latest_submission(run_launch, tmp_path: Path) -> None:
    out = tmp_path / "p"
    result = run_launch("phantom", "cluster=local", f"out={out}", "n=1", "seed=3", *TINY)
    assert result.status == 0, result.err
    paths = LaunchPaths(out / "launch")
    submission = read_jobs(paths)["submissions"][0]
    assert paths.last_job_ids.read_text() == ",".join(submission["arrays"]) + "\n" and submission["after"] == []
    assert f"job ids: {paths.last_job_ids}" in result.out
    assert submission["arrays"] == [submission["tasks"][0]["job_id"]]  # local: the task's process id
    assert len(LabelledDataset(out)) == 1


def _wait_until(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def _all_completed(paths: LaunchPaths, count: int) -> bool:
    states = [r.state for r in task_states(paths)]
    assert not set(states) & FAILED_STATES, f"a task failed: {states} (logs under {paths.folder})"
    return states == ["COMPLETED"] * count


def _squeue(job: str, fmt: str) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", fmt], capture_output=True, text=True).stdout.strip()


@pytest.mark.slurm
def test_second_job_starts_after_the_first_completed(slurm_env, run_launch, tmp_path: Path) -> None:
    second = tmp_path / "second"
    common = ["phantom", "cluster=loopback", f"launch_dir={tmp_path}/launch", "wait=false", *TINY]
    assert run_launch(*common, f"out={tmp_path}/first_{{k}}", "n=3", "shards=2", "shard_arg=", "seed={k}").status == 0
    paths = LaunchPaths(tmp_path / "launch")
    first_ids = paths.last_job_ids.read_text().strip()
    result = run_launch(*common, f"out={second}", "n=1", f"after={first_ids}")
    assert result.status == 0, result.err
    a, b = read_jobs(paths)["submissions"]
    assert a["id"] != b["id"]  # two launches in one second from one process keep separate task records
    assert b["after"] == a["arrays"] == [first_ids] and paths.last_job_ids.read_text().strip() == b["arrays"][0]
    _wait_until(lambda: _all_completed(paths, 3), 240, "all three tasks")
    ended = max(read_record(Path(t["record"]))["ended"] for t in a["tasks"])
    started = read_record(Path(b["tasks"][0]["record"]))["started"]
    assert started >= ended  # the dependency held the second job back until both array tasks had finished
    assert len(LabelledDataset(second)) == 1


@pytest.mark.slurm
def test_failed_first_job_cancels_the_second(slurm_env, run_launch, tmp_path: Path) -> None:
    """--kill-on-invalid-dep=yes: a dependant of a failed job is cancelled, not left pending forever."""
    (tmp_path / "a_file").write_text("not a folder")
    common = ["phantom", "cluster=loopback", f"launch_dir={tmp_path}/launch", "wait=false", *TINY]
    assert run_launch(*common, f"out={tmp_path}/a_file/sub", "n=1").status == 0  # the task fails: no such folder
    paths = LaunchPaths(tmp_path / "launch")
    bad = paths.last_job_ids.read_text().strip()
    assert run_launch(*common, f"out={tmp_path}/never", "n=1", f"after={bad}").status == 0
    waiting = paths.last_job_ids.read_text().strip()
    try:
        _wait_until(lambda: task_states(paths)[0].state == "FAILED", 120, "the first job to fail")
        # SLURM re-evaluates the dependency a moment after the failed job ended, then cancels the dependant
        row = _wait_until(lambda: task_states(paths)[1].state == "CANCELLED" and task_states(paths)[1], 60, "cancel")
        assert row.job_id == waiting and row.attempts == 0 and _squeue(waiting, "%T") == ""
        assert not (tmp_path / "never").exists()
        status = run_launch("status", f"launch_dir={tmp_path}/launch")
        assert "total: 1 cancelled, 1 failed" in status.out
    finally:
        subprocess.run(["scancel", waiting], check=False)

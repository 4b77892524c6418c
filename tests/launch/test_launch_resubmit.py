"""Submitting a sharded run again runs only its missing or failed shards; another shard count is explained."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from waiting import wait_until

from launch.records import LaunchPaths, read_jobs, task_states
from launch.resubmit import _ranges
from nph.data.dataset import LabelledDataset

TINY = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]


def test_ranges() -> None:
    assert (_ranges([5, 0, 1, 2]), _ranges([3]), _ranges([])) == ("0-2,5", "3", "")


def test_only_failed_shards_are_resubmitted_and_other_counts_refused(run_launch, tmp_path: Path) -> None:
    blocker = tmp_path / "s_1"
    blocker.write_text("a file where shard 1's folder should go")  # shard 1 fails, shards 0 and 2 complete
    argv = ["phantom", "cluster=local", f"out={tmp_path}/s_{{k}}", "seed={k}", "n=1", "shards=3", "shard_arg=", *TINY]
    first = run_launch(*argv)
    assert first.status == 1 and "failed: task 1" in first.err
    paths = LaunchPaths(tmp_path / "launch")
    assert [r.state for r in task_states(paths)] == ["COMPLETED", "FAILED", "COMPLETED"]

    other = run_launch(*argv[:-4], "shards=2", "shard_arg=", *TINY)  # another K for an unfinished run
    assert other.status == 2 and other.out == ""
    message = other.err.strip().splitlines()[-1]
    assert "shards=2:" in message and "unfinished run of the same command with shards=3" in message
    assert "shard(s) 1 not completed" in message and "resubmit with shards=3" in message
    assert len(read_jobs(paths)["submissions"]) == 1  # nothing submitted

    blocker.unlink()
    again = run_launch(*argv)
    assert again.status == 0, again.err
    second = read_jobs(paths)["submissions"][1]
    assert [t["index"] for t in second["tasks"]] == [1]  # only the failed shard ran again
    assert "shards: 1 of 3 shard(s) to submit; 2 completed earlier (skipped: 0,2)" in again.out
    assert [LabelledDataset(tmp_path / f"s_{k}").manifest["seed"].tolist() for k in range(3)] == [[0], [1], [2]]

    idle = run_launch(*argv)  # idempotent: everything completed
    assert idle.status == 0 and "nothing to submit" in idle.out
    assert len(read_jobs(paths)["submissions"]) == 2 and paths.last_job_ids.read_text() == "\n"


@pytest.mark.slurm
def test_shards_still_queued_are_not_submitted_twice(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    hold = subprocess.run(  # occupies the node's 2 CPUs so the shards stay queued
        ["sbatch", "--parsable", "-A", "nph", "-n", "2", "--wrap", "sleep 60"], capture_output=True, text=True
    ).stdout.strip()
    try:
        argv = ["phantom", "cluster=loopback", f"out={tmp_path}/q_{{k}}", "n=1", "shards=2", "shard_arg=", *TINY]
        assert run_launch(*argv, "wait=false").status == 0
        paths = LaunchPaths(tmp_path / "launch")
        (array,) = read_jobs(paths)["submissions"][0]["arrays"]
        again = run_launch(*argv, "wait=false")
        assert again.status == 0 and "nothing to submit" in again.out
        assert paths.last_job_ids.read_text() == f"{array}_0,{array}_1\n"  # what the next stage must wait on
        assert len(read_jobs(paths)["submissions"]) == 1
    finally:
        subprocess.run(["scancel", hold], check=False)
    wait_until(lambda: [r.state for r in task_states(paths)] == ["COMPLETED"] * 2, 120, "both shards", interval=1.0)

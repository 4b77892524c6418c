"""The launcher with submitit's LocalExecutor (cluster=local): the same tasks, records and status, no SLURM."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from launch.records import LaunchPaths, read_jobs, task_states
from launch.task import NphTask
from nph.data.dataset import LabelledDataset


def test_local_array_runs_and_records(run_launch, tmp_path: Path) -> None:
    result = run_launch(
        "phantom",
        "cluster=local",
        f"out={tmp_path}/l_{{k}}",
        "seed={k}",
        "n=1",
        "shards=2",
        "shard_arg=",
        "experiment=tiny",
        "contrast=t1",
    )
    assert result.status == 0, result.err  # local profile waits by default
    sub = read_jobs(LaunchPaths(tmp_path / "launch"))["submissions"][0]
    assert (sub["executor"], sub["cluster"], sub["shards"]) == ("local", "local", 2)
    assert sub["profile"]["wait"] is True and len(sub["tasks"]) == 2
    for k in range(2):
        data = LabelledDataset(tmp_path / f"l_{k}")
        assert data.manifest[["seed", "contrast"]].values.tolist() == [[k, "t1"]]
    rows = task_states(LaunchPaths(tmp_path / "launch"))
    assert [(r.state, r.attempts, r.returncode) for r in rows] == [("COMPLETED", 1, 0)] * 2
    status = run_launch("status", f"out={tmp_path}/l_{{k}}")
    assert "total: 2 completed" in status.out


def test_failing_task_is_reported(run_launch, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the dataset folder should go")
    result = run_launch(
        "phantom", "cluster=local", f"out={tmp_path}/taken", "n=1", "experiment=tiny", f"launch_dir={tmp_path}/records"
    )
    assert result.status == 1  # the command failed in its task: not a launcher input error
    assert "failed: task 0" in result.err and "FAILED" in result.err
    row = task_states(LaunchPaths(tmp_path / "records"))[0]
    assert (row.state, row.returncode) == ("FAILED", 2)  # nph's exit status for bad input
    assert "exists and is not a folder" in Path(row.stdout).with_suffix(".err").read_text()
    assert (tmp_path / "taken").read_text() == "a file where the dataset folder should go"


def test_container_wrapping_locally(
    fake_apptainer: Path, run_launch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NPH_TEST_HOST_ONLY", "1")
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.delenv("TRITON_CACHE_DIR", raising=False)
    image = tmp_path / "nph.sif"
    image.write_bytes(b"test double image")
    (tmp_path / "data").mkdir()
    result = run_launch(
        "phantom",
        "cluster=local",
        f"out={tmp_path}/data/c",
        "n=1",
        "experiment=tiny",
        f"container={image}",
        f"apptainer={fake_apptainer}",
        f"launch_dir={tmp_path}/data/records",
    )
    assert result.status == 0, result.err
    (call,) = [json.loads(line) for line in Path(f"{image}.calls.jsonl").read_text().splitlines()]
    assert call["argv"][1:7] == ["exec", "--nv", "--cleanenv", "--bind", str(tmp_path / "data"), str(image)]
    assert call["argv"][7:] == ["nph", "phantom", f"out={tmp_path}/data/c", "n=1", "experiment=tiny"]
    cache = tmp_path / "data" / "records" / "cache"
    assert call["env"]["TRITON_CACHE_DIR"] == str(cache / "triton") and call["env"]["MPLCONFIGDIR"] == str(
        cache / "matplotlib"
    )
    assert "NPH_TEST_HOST_ONLY" not in call["env"]  # --cleanenv: the host's other variables stay outside
    assert LabelledDataset(tmp_path / "data" / "c").case_ids == ["phantom_0000"]


def test_checkpoint_requeues_the_same_command(tmp_path: Path) -> None:
    task = NphTask(["nph", "phantom", "n=1"], tmp_path / "r.json", 3)
    again = task.checkpoint()
    assert isinstance(again.function, NphTask) and again.function is not task
    assert (again.function.argv, again.function.record, again.function.index) == (task.argv, task.record, 3)


def test_task_records_attempts_and_failure(tmp_path: Path) -> None:
    record = tmp_path / "r.json"
    record.write_text(json.dumps({"attempt": 1, "state": "running"}))  # a previous, interrupted attempt
    with pytest.raises(RuntimeError, match="exited with status 3"):
        NphTask(["sh", "-c", "exit 3"], record, 0)()
    data = json.loads(record.read_text())
    assert (data["attempt"], data["state"], data["returncode"]) == (2, "failed", 3)


def test_ddp_ranks_keep_separate_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The variables submitit's local executor gives the second of two processes of one task.
    for key, value in {
        "SUBMITIT_EXECUTOR": "local",
        "SUBMITIT_LOCAL_JOB_ID": "77",
        "SUBMITIT_LOCAL_NTASKS": "2",
        "SUBMITIT_LOCAL_GLOBALID": "1",
        "SUBMITIT_LOCAL_LOCALID": "1",
    }.items():
        monkeypatch.setenv(key, value)
    record = tmp_path / "sub-00000.json"
    before = dict(os.environ)
    ranked = 'test "$SUBMITIT_LOCAL_GLOBALID" = 1 && test "$RANK" = 1 && test "$WORLD_SIZE" = 2'
    assert NphTask(["sh", "-c", ranked], record, 0)() == 0  # rank and rendezvous visible to the command
    assert dict(os.environ) == before  # ... but not left in this process: a later training here is no DDP rank
    assert not record.exists()  # rank 0 owns the task's record
    data = json.loads((tmp_path / "sub-00000.rank1.json").read_text())
    assert (data["rank"], data["job_id"], data["state"]) == (1, "77", "completed")

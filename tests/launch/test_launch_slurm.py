"""The launcher against the real loopback SLURM (scripts/slurm_local.sh): arrays, records, status, cancel, split."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from waiting import wait_until

from launch.records import FAILED_STATES, LaunchPaths, TaskState, read_jobs, task_states
from launch.submit import max_array_size
from nph.data.dataset import LabelledDataset

pytestmark = pytest.mark.slurm

PHANTOM = ["phantom", "experiment=tiny", "cluster=loopback"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_array_of_four_phantom_tasks(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    result = run_launch(
        *PHANTOM, f"out={tmp_path}/task_{{k}}", "seed={k}", "n=2", "shards=4", "shard_arg=", "wait=true"
    )
    assert result.status == 0, result.err
    jobs = read_jobs(LaunchPaths(tmp_path / "launch"))["submissions"]
    assert len(jobs) == 1 and jobs[0]["executor"] == "slurm" and jobs[0]["cluster"] == "loopback"
    array = jobs[0]["arrays"][0]
    assert f"as job(s) {array}" in result.out and str(tmp_path / "launch" / "jobs.json") in result.out
    assert [t["job_id"] for t in jobs[0]["tasks"]] == [f"{array}_{k}" for k in range(4)]
    for k, task in enumerate(jobs[0]["tasks"]):
        assert task["argv"][3:] == ["phantom", "experiment=tiny", f"out={tmp_path}/task_{k}", f"seed={k}", "n=2"]
        assert "[nph] " in Path(task["stderr"]).read_text()  # the command's own log reached submitit's log
    digests = set()
    for k in range(4):
        data = LabelledDataset(tmp_path / f"task_{k}")  # checks dataset.json, manifest, label table
        assert len(data) == 2 and data.has_images
        assert list(data.manifest["seed"]) == [k, k]
        assert data.label(data.case_ids[0]).data.shape == (32, 48, 32)  # experiment=tiny's grid
        digests.add(_digest(data.paths.label(data.case_ids[0])))
    assert len(digests) == 4  # four seeds, four different heads
    rows = task_states(LaunchPaths(tmp_path / "launch"), query_scheduler=False)  # from disk alone
    assert [(r.index, r.state, r.attempts, r.returncode) for r in rows] == [(k, "COMPLETED", 1, 0) for k in range(4)]
    status = run_launch("status", f"out={tmp_path}/task_{{k}}")
    assert status.status == 0 and "total: 4 completed" in status.out

    def sacct_states() -> list[str]:
        cmd = ["sacct", "-n", "-X", "-P", "-j", array, "-o", "State"]
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()

    # accounting (which lags the job's end by a moment) agrees with the records on disk
    wait_until(lambda: sacct_states() == ["COMPLETED"] * 4, 30, "sacct to report 4 COMPLETED")


def test_cancelled_task_shows_in_status(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    result = run_launch(*PHANTOM, f"out={tmp_path}/big", "n=5000", "wait=false", f"launch_dir={tmp_path}/records")
    assert result.status == 0, result.err
    paths = LaunchPaths(tmp_path / "records")
    task = read_jobs(paths)["submissions"][0]["tasks"][0]
    # the phantom command itself is running (its dataset folder appeared), not just the job
    wait_until(lambda: (tmp_path / "big" / "labelsTr").is_dir(), 90, "the phantom command to start writing")
    subprocess.run(["scancel", task["job_id"]], check=True)
    row = wait_until(
        lambda: next((r for r in task_states(paths) if r.state in FAILED_STATES), None), 60, "the cancellation to show"
    )
    assert row.state == "CANCELLED" and row.job_id == task["job_id"]
    status = run_launch("status", f"launch_dir={tmp_path}/records")
    assert " CANCELLED " in status.out and "total: 1 cancelled" in status.out
    record = json.loads(Path(task["record"]).read_text())
    assert record["state"] in ("running", "interrupted") and record["returncode"] != 0  # never reported as completed


def test_more_shards_than_max_array_size_split_into_arrays(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    conf_value = next(
        int(line.split("=")[1]) for line in slurm_env.read_text().splitlines() if line.startswith("MaxArraySize=")
    )
    assert max_array_size() == conf_value  # read from `scontrol show config`, not assumed
    result = run_launch(
        *PHANTOM,
        f"out={tmp_path}/s_{{k}}",
        "seed={k}",
        "n=1",
        "shards=5",
        "shard_arg=",
        "max_array_size=2",
        "wait=true",
    )
    assert result.status == 0, result.err
    sub = read_jobs(LaunchPaths(tmp_path / "launch"))["submissions"][0]
    assert len(sub["arrays"]) == 3  # 2 + 2 + 1 tasks
    a, b, c = sub["arrays"]
    assert [t["job_id"] for t in sub["tasks"]] == [f"{a}_0", f"{a}_1", f"{b}_0", f"{b}_1", f"{c}"]
    assert [LabelledDataset(tmp_path / f"s_{k}").manifest["seed"].tolist() for k in range(5)] == [[k] for k in range(5)]


def test_container_wrapping_through_slurm(slurm_env: Path, fake_apptainer: Path, run_launch, tmp_path: Path) -> None:
    image = tmp_path / "images" / "nph.sif"
    image.parent.mkdir()
    image.write_bytes(b"test double image")
    result = run_launch(
        *PHANTOM,
        f"out={tmp_path}/c",
        "n=1",
        f"container={image}",
        f"apptainer={fake_apptainer}",
        "wait=true",
        f"launch_dir={tmp_path}/records",
    )
    assert result.status == 0, result.err
    calls = [json.loads(line) for line in Path(f"{image}.calls.jsonl").read_text().splitlines()]
    assert len(calls) == 1 and calls[0]["slurm_job_id"]  # ran inside the SLURM job, SLURM_* kept visible
    argv = calls[0]["argv"]
    assert argv[1:6] == ["exec", "--nv", "--cleanenv", "--bind", str(tmp_path)]
    assert argv[6:9] == [str(image), "nph", "phantom"]
    env = calls[0]["env"]  # inside the image: SLURM's variables crossed --cleanenv by name, caches under the run
    assert env["SLURM_JOB_ID"] == calls[0]["slurm_job_id"] and env["SLURM_CPUS_PER_TASK"] == "1"
    assert env["XDG_CACHE_HOME"] == str(tmp_path / "records" / "cache" / "xdg")
    assert LabelledDataset(tmp_path / "c").case_ids == ["phantom_0000"]


def test_preempted_task_requeues_and_resumes(slurm_env: Path, run_launch, tmp_path: Path) -> None:
    result = run_launch(*PHANTOM, f"out={tmp_path}/p", "n=40", "wait=false", f"launch_dir={tmp_path}/records")
    assert result.status == 0, result.err
    paths = LaunchPaths(tmp_path / "records")
    job_id = read_jobs(paths)["submissions"][0]["tasks"][0]["job_id"]
    wait_until(lambda: (tmp_path / "p" / "labelsTr").is_dir(), 90, "the phantom command to start writing")
    # What SLURM sends signal_delay_s before a time limit or on preemption: submitit checkpoints and requeues.
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    wait_until(lambda: task_states(paths)[0].state == "PENDING", 60, "the requeued task to wait in the queue")

    def finished() -> TaskState | None:
        # The requeued job waits out cred_expire (10 s on the loopback) before it may start again. Starting it
        # earlier (scontrol update StartTime=now) makes slurmd refuse it: "Job credential revoked", FAILED.
        row = task_states(paths)[0]
        return row if row.state == "COMPLETED" else None

    row = wait_until(finished, 240, "the requeued task to finish", interval=2.0)
    assert (row.attempts, row.returncode) == (2, 0)
    data = LabelledDataset(tmp_path / "p")
    assert len(data) == 40 and list(data.manifest["seed"].unique()) == [0]

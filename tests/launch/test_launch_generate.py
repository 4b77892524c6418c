"""`nph generate` as a SLURM job array on the loopback cluster: generate + merge, and a cancelled task resubmitted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from waiting import wait_until

from launch.records import FAILED_STATES, LaunchPaths, read_jobs, task_states
from nph.data.dataset import LabelledDataset
from nph.synthesis.merge import progress
from nph.synthesis.records import SynthesisPaths

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GRID = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]


def test_four_task_array_generates_and_merges(slurm_env, run_launch, run_nph, ldm_models: Path, tmp_path) -> None:
    out = tmp_path / "synth"
    result = run_launch(
        "generate",
        "cluster=loopback",
        f"models={ldm_models}",
        f"out={out}",
        "n=8",
        "seed=5",
        "steps=8",
        "shards=4",
        "wait=true",
        *GRID,
    )
    assert result.status == 0, result.err
    submission = read_jobs(LaunchPaths(out / "launch"))["submissions"][0]
    assert [t["argv"][-1] for t in submission["tasks"]] == [f"shard={k}/4" for k in range(4)]
    rows = task_states(LaunchPaths(out / "launch"), query_scheduler=False)
    assert [(r.state, r.returncode) for r in rows] == [("COMPLETED", 0)] * 4
    assert [(p.done, p.total) for p in progress(SynthesisPaths(out))] == [(2, 2)] * 4
    assert run_nph("generate-merge", f"out={out}").status == 0
    data = LabelledDataset(out)
    assert data.case_ids == [f"synth_{i:07d}" for i in range(8)] and data.has_images
    assert sorted(data.manifest["index"]) == list(range(8))


def test_cancelled_task_resubmitted_finishes_only_what_was_missing(
    slurm_env, run_launch, run_nph, ldm_models: Path, tmp_path
) -> None:
    out, records = tmp_path / "synth", tmp_path / "synth" / ".nph" / "records"
    argv = [
        "generate",
        "cluster=loopback",
        f"models={ldm_models}",
        f"out={out}",
        "n=24",
        "seed=5",
        "steps=50",
        "batch_size=1",
        "shards=2",
        f"launch_dir={tmp_path / 'records'}",
        *GRID,
    ]
    assert run_launch(*argv, "wait=false").status == 0
    paths = LaunchPaths(tmp_path / "records")
    victim = read_jobs(paths)["submissions"][0]["tasks"][1]["job_id"]
    # shard 1/2 owns the odd indices: cancel it once it has written some but not all of them
    wait_until(lambda: len(list(records.glob("synth_*[13579].json"))) >= 2, 300, "shard 1 to make two samples")
    subprocess.run(["scancel", victim], check=True)
    wait_until(lambda: task_states(paths)[1].state in FAILED_STATES, 60, "the cancellation to show")
    wait_until(lambda: task_states(paths)[0].state == "COMPLETED", 300, "shard 0 to finish")
    shard_one = progress(SynthesisPaths(out))[1]
    assert 2 <= shard_one.done < shard_one.total == 12
    before = {p.name: p.stat().st_mtime_ns for p in records.glob("*.json")}
    assert run_launch(*argv, "wait=true").status == 0  # the same submission again: every task resumes
    assert all(records.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in before.items())
    assert [(p.done, p.total) for p in progress(SynthesisPaths(out))] == [(12, 12), (12, 12)]
    assert not list(out.rglob(".tmp-*"))
    assert run_nph("generate-merge", f"out={out}").status == 0
    assert len(LabelledDataset(out)) == 24

"""Submitting a launch request: check everything, split into arrays SLURM accepts, record, optionally wait."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import as_completed

from launch.container import bind_folders, task_argv
from launch.profiles import ClusterProfile, check_after, load_profile, make_executor, render_sbatch
from launch.records import LaunchPaths, add_submission, read_jobs, task_states
from launch.request import LaunchRequest
from launch.resubmit import Resubmission, shards_to_submit
from launch.task import NphTask, grace_for
from nph.cli.config import compose_config
from nph.cli.registry import SUBCOMMANDS
from nph.io.atomic import write_text
from nph.progress import progress

__all__ = ["DEFAULT_MAX_ARRAY_SIZE", "Plan", "Submission", "chunks", "max_array_size", "plan", "submit", "wait"]

log = logging.getLogger(__name__)

#: SLURM's default MaxArraySize (highest array index + 1), used when ``scontrol`` cannot tell.
DEFAULT_MAX_ARRAY_SIZE = 1001


def max_array_size(config_text: str | None = None) -> int:
    """MaxArraySize from ``scontrol show config`` (or from ``config_text``), else SLURM's default 1001."""
    if config_text is None:
        scontrol = shutil.which("scontrol")
        if scontrol is None:
            return DEFAULT_MAX_ARRAY_SIZE
        result = subprocess.run(
            [scontrol, "show", "config"], env=dict(os.environ), capture_output=True, text=True, check=False, timeout=60
        )
        config_text = result.stdout if result.returncode == 0 else ""
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return DEFAULT_MAX_ARRAY_SIZE


def chunks(count: int, size: int) -> list[range]:
    """Task indices ``0..count-1`` in consecutive arrays of at most ``size`` tasks."""
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


@dataclass(frozen=True)
class Plan:
    """Everything decided before submission: a dry run prints it, a submission executes it."""

    request: LaunchRequest
    profile: ClusterProfile
    paths: LaunchPaths
    argvs: list[list[str]]  # every task's command line, by task index
    arrays: list[list[int]]  # the task indices to submit now, one list per sbatch array
    resubmission: Resubmission | None = None  # sharded runs: what earlier submissions already cover

    @property
    def indices(self) -> list[int]:
        return [k for array in self.arrays for k in array]

    def render(self) -> str:
        largest = max((len(a) for a in self.arrays), default=0)
        lines = [
            f"# cluster '{self.profile.name}' ({self.profile.executor}); {len(self.indices)} task(s) in "
            f"{len(self.arrays)} array(s) of at most {largest}"
        ]
        if self.resubmission is not None and self.request.shards is not None:
            lines.append(f"# {self.resubmission.describe(self.request.shards)}")
        lines += [f"task {k}: {shlex.join(self.argvs[k])}" for k in self.indices]
        if self.profile.executor == "slurm" and self.arrays:
            first = len(self.arrays[0])
            lines += [
                "",
                render_sbatch(
                    self.profile, self.paths.submitit, self.request.job_name, first, after=self.request.after
                ),
            ]
        return "\n".join(lines)


def _check_config(request: LaunchRequest) -> None:
    """Compose task 0's config here, so a typo in an override fails now and not in the queue."""
    args = request.task_args(0)[1:]
    if request.command in SUBCOMMANDS:
        args = [f"action={args[0]}", *args[1:]]
    compose_config(request.command, args)


def plan(request: LaunchRequest) -> Plan:
    """Check the request and work out every task's command line and the arrays."""
    profile = load_profile(request.cluster, request.cluster_overrides)
    check_after(profile, request.after)
    _check_config(request)
    paths = LaunchPaths(request.launch_dir)
    tasks = [request.task_args(k) for k in range(request.num_tasks)]
    binds: list[Path] = []
    if request.container is not None:
        binds = bind_folders([a for t in tasks for a in t], extra=[paths.folder], cwd=Path.cwd())
    argvs = [task_argv(t, request.container, binds, request.apptainer) for t in tasks]
    resubmission = None
    indices = list(range(len(tasks)))
    if request.shards is not None:  # sharded: only what no earlier submission completed or still runs
        resubmission = shards_to_submit(paths, [request.command, *request.nph_args], request.shards)
        indices = resubmission.todo
    limit = request.max_array_size or (max_array_size() if profile.executor == "slurm" else max(len(indices), 1))
    arrays = [indices[r.start : r.stop] for r in chunks(len(indices), limit)]
    return Plan(request, profile, paths, argvs, arrays, resubmission)


@dataclass(frozen=True)
class Submission:
    """What was submitted: its record in ``jobs.json`` and the submitit jobs (to wait on)."""

    record: dict[str, Any]
    jobs: list[submitit.Job[Any]]
    jobs_json: Path


def submit(the_plan: Plan) -> Submission:
    """Submit every array of ``the_plan`` and append the submission to ``jobs.json`` (atomically).

    ``last_job_ids`` names the new arrays and the earlier tasks still queued or running, so a stage that
    waits on it (after=) waits for every shard.
    """
    request, paths = the_plan.request, the_plan.paths
    submission_id = _new_submission_id(paths)
    executor = make_executor(the_plan.profile, paths.submitit, request.job_name, request.after)
    jobs: list[submitit.Job[Any]] = []
    for array in the_plan.arrays:  # one sbatch --array per chunk of at most MaxArraySize tasks
        grace = grace_for(the_plan.profile.signal_delay_s)
        in_image = request.container is not None
        tasks = [
            NphTask(the_plan.argvs[k], paths.record(submission_id, k), k, grace, paths.cache, in_image) for k in array
        ]
        jobs.extend(executor.submit_array(tasks))
    arrays = sorted({j.job_id.split("_")[0] for j in jobs}, key=_job_order)
    in_flight = list(the_plan.resubmission.in_flight.values()) if the_plan.resubmission else []
    record: dict[str, Any] = {
        "id": submission_id,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [request.command, *request.nph_args],
        "cluster": the_plan.profile.name,
        "executor": the_plan.profile.executor,
        "profile": the_plan.profile.to_dict(),
        "container": None if request.container is None else str(request.container),
        "shards": request.shards,
        "after": list(request.after),
        "arrays": arrays,
        "submitit_folder": str(paths.submitit),
        "tasks": [
            {
                "index": k,
                "job_id": job.job_id,
                "argv": the_plan.argvs[k],
                "record": str(paths.record(submission_id, k)),
                "stdout": str(job.paths.stdout),
                "stderr": str(job.paths.stderr),
            }
            for k, job in zip(the_plan.indices, jobs, strict=True)
        ],
    }
    jobs_json = add_submission(paths, record)
    write_text(paths.last_job_ids, ",".join(arrays + in_flight) + "\n")  # for scripts: after=$(cat ...)
    log.info("submitted %d task(s) as %s; records in %s", len(jobs), ", ".join(arrays), jobs_json)
    return Submission(record, jobs, jobs_json)


def _new_submission_id(paths: LaunchPaths) -> str:
    """``<time>-<pid>``, suffixed ``.2``, ``.3``... when this process already launched into the folder this second
    (the task records ``tasks/<id>-<k>.json`` of two submissions must never share a name)."""
    base = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    taken = {str(sub.get("id")) for sub in read_jobs(paths)["submissions"]}
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}.{n}"
    return candidate


def _job_order(job_id: str) -> tuple[int, str]:
    return (int(job_id), job_id) if job_id.isdigit() else (0, job_id)


def wait(submission: Submission, paths: LaunchPaths) -> list[str]:
    """Block until every task ended, with a progress bar; returns the failed tasks' descriptions."""
    start = time.monotonic()
    with progress(total=len(submission.jobs), unit="task", desc="tasks") as bar:
        for _ in as_completed(submission.jobs, poll_frequency=1):
            bar.update(1)
            bar.set_postfix(tasks_per_s=f"{bar.n / max(time.monotonic() - start, 1e-9):.2f}")
    ours = {t["job_id"] for t in submission.record["tasks"]}
    return [
        f"task {s.index} ({s.job_id}): {s.state}, log {s.stdout}"
        for s in task_states(paths)
        if s.job_id in ours and s.state != "COMPLETED"
    ]

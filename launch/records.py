"""What the launcher keeps on disk: ``<out>/launch/jobs.json`` and one JSON record per task attempt.

``python -m launch status out=DIR`` reads only these files (plus, for unfinished SLURM tasks, the
scheduler's word on whether they were cancelled or killed), so progress survives the login session.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nph.errors import InputError
from nph.io.atomic import write_json

__all__ = ["LaunchPaths", "TaskState", "add_submission", "read_jobs", "read_record", "task_states", "write_record"]

log = logging.getLogger(__name__)

#: Scheduler states that end a task without success (sacct's words; "CANCELLED by 0" is cut to its first word).
FAILED_STATES = frozenset(
    {"CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}
)


class LaunchPaths:
    """Where the launcher's files for one output folder live."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    @property
    def jobs_json(self) -> Path:
        return self.folder / "jobs.json"

    @property
    def last_job_ids(self) -> Path:
        """The job ids (arrays, comma-separated) of the latest submission, for ``after=`` in scripts and Makefiles."""
        return self.folder / "last_job_ids"

    @property
    def submitit(self) -> Path:
        """submitit's job files and logs (``%j`` is the job id)."""
        return self.folder / "submitit" / "%j"

    @property
    def cache(self) -> Path:
        """Triton/Inductor/matplotlib/W&B/XDG caches of the tasks (instead of ``$HOME``)."""
        return self.folder / "cache"

    @property
    def records(self) -> Path:
        return self.folder / "tasks"

    def record(self, submission: str, index: int) -> Path:
        return self.records / f"{submission}-{index:05d}.json"


def read_jobs(paths: LaunchPaths) -> dict[str, Any]:
    """The submissions recorded so far (an empty list when none)."""
    if not paths.jobs_json.is_file():
        return {"submissions": []}
    try:
        data = json.loads(paths.jobs_json.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{paths.jobs_json}: not valid JSON ({err.msg}, line {err.lineno})") from err
    if not isinstance(data, dict) or not isinstance(data.get("submissions"), list):
        raise InputError(f"{paths.jobs_json}: expected {{'submissions': [...]}}, written by python -m launch")
    return data


def add_submission(paths: LaunchPaths, submission: dict[str, Any]) -> Path:
    """Append one submission to ``jobs.json`` (rewritten atomically: a reader never sees half of it)."""
    data = read_jobs(paths)
    data["submissions"].append(submission)
    return write_json(paths.jobs_json, data)


def read_record(path: Path) -> dict[str, Any] | None:
    """A task's record, or None before the task started (or if the file is unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_record(path: Path, record: dict[str, Any]) -> None:
    write_json(path, record)


@dataclass(frozen=True)
class TaskState:
    """One row of ``launch status``."""

    submission: str
    index: int
    job_id: str
    state: str  # PENDING RUNNING COMPLETED FAILED CANCELLED TIMEOUT ... (SLURM's words)
    attempts: int
    returncode: int | None
    stdout: str


def _scheduler_states(executor: str, job_ids: list[str], folder: str) -> dict[str, str]:
    """The scheduler's state of unfinished tasks: sacct through submitit on SLURM, the PID on this machine."""
    if not job_ids:
        return {}
    if executor == "local":
        return {j: ("RUNNING" if _pid_alive(j) else "INTERRUPTED") for j in job_ids}
    if shutil.which("sacct") is None:
        return {}
    import submitit  # only status of SLURM jobs needs it

    jobs: list[submitit.SlurmJob[Any]] = [submitit.SlurmJob(folder=folder, job_id=j) for j in job_ids]
    return {job.job_id: str(job.state).split()[0] for job in jobs}


def _pid_alive(job_id: str) -> bool:
    try:
        os.kill(int(job_id), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _combine(record: dict[str, Any] | None, scheduler: str | None) -> str:
    """The task's own record wins when it says completed; a scheduler verdict of failure beats the rest."""
    state = None if record is None else record.get("state")
    if state == "completed":
        return "COMPLETED"
    if scheduler in FAILED_STATES:
        return str(scheduler)
    if state in ("running", "interrupted") and scheduler in ("PENDING", "REQUEUED"):
        return "PENDING"  # requeued after a timeout or preemption, waiting to resume
    if state in (None, "running") and scheduler == "INTERRUPTED":
        return "INTERRUPTED"  # the local process is gone without a word
    if state is not None:
        return str(state).upper()
    return scheduler if scheduler and scheduler not in ("UNKNOWN", "COMPLETED") else "PENDING"


def task_states(paths: LaunchPaths, query_scheduler: bool = True) -> list[TaskState]:
    """Every task of every submission recorded in ``paths``, with its state."""
    rows: list[TaskState] = []
    for sub in read_jobs(paths)["submissions"]:
        tasks = sub.get("tasks", [])
        records = {t["index"]: read_record(Path(t["record"])) for t in tasks}
        unfinished = [t["job_id"] for t in tasks if (records[t["index"]] or {}).get("state") != "completed"]
        scheduler = _scheduler_states(sub["executor"], unfinished, sub["submitit_folder"]) if query_scheduler else {}
        for task in tasks:
            record = records[task["index"]]
            rows.append(
                TaskState(
                    submission=sub["id"],
                    index=task["index"],
                    job_id=task["job_id"],
                    state=_combine(record, scheduler.get(task["job_id"])),
                    attempts=int((record or {}).get("attempt", 0)),
                    returncode=(record or {}).get("returncode"),
                    stdout=task["stdout"],
                )
            )
    return rows

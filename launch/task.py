"""One array task: run an ``nph`` command line as a subprocess and record how it went.

It is submitit-checkpointable: on a timeout or preemption submitit calls :meth:`checkpoint`, which
requeues the same command line. nph commands resume from what they already wrote, so nothing is redone.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from launch.records import read_record, write_record

__all__ = ["NphTask"]

log = logging.getLogger(__name__)


class NphTask(Checkpointable):
    """Runs ``argv`` (an argument list, no shell) and keeps ``record`` (JSON) up to date.

    Args:
        argv: the full command, e.g. ``[python, -m, nph, phantom, out=..]`` or ``[apptainer, exec, .., nph, ..]``.
        record: JSON file holding state (running/completed/failed), attempt, return code, host, times.
        index: the task's place in the submission (shard ``index``/``count``).
    """

    def __init__(self, argv: list[str], record: Path, index: int) -> None:
        self.argv = list(argv)
        self.record = Path(record)
        self.index = index

    def __call__(self) -> int:
        job_id, rank = _job_rank()
        # DDP (tasks_per_node/nodes > 1): every rank runs the command; rank 0 keeps the task's record.
        record = self.record if rank == 0 else self.record.with_name(f"{self.record.stem}.rank{rank}.json")
        previous = read_record(record) or {}
        attempt = int(previous.get("attempt", 0)) + 1
        info = {
            "index": self.index,
            "argv": self.argv,
            "attempt": attempt,
            "host": socket.gethostname(),
            "job_id": job_id,
            "rank": rank,
            "gpus": os.environ.get("SLURM_JOB_GPUS") or os.environ.get("CUDA_VISIBLE_DEVICES"),  # what SLURM bound
            "started": time.time(),
        }
        write_record(record, {**info, "state": "running", "returncode": None})
        log.info("task %d (attempt %d): %s", self.index, attempt, " ".join(self.argv))
        # The environment is passed whole on purpose: SLURM_*, CUDA_VISIBLE_DEVICES and the DDP rank variables
        # submitit sets must reach the command (and the container, which keeps the host environment).
        returncode = subprocess.run(self.argv, env=dict(os.environ), check=False).returncode
        state = "completed" if returncode == 0 else "failed"
        write_record(record, {**info, "state": state, "returncode": returncode, "ended": time.time()})
        if returncode != 0:
            raise RuntimeError(f"task {self.index}: {self.argv[0]} exited with status {returncode}")
        return returncode

    def checkpoint(self, *args: object, **kwargs: object) -> DelayedSubmission:
        """Requeue the same command line; the command resumes from its own output."""
        log.info("task %d: requeued after a timeout or preemption", self.index)
        return DelayedSubmission(NphTask(self.argv, self.record, self.index))


def _job_rank() -> tuple[str | None, int]:
    """The submitit job id and this process's global rank (None, 0 outside a submitit job)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # called outside a submitit job (tests calling the task directly)
        return None, 0
    return str(env.job_id), env.global_rank

"""One array task: run an ``nph`` command line as a subprocess and record how it went.

It is submitit-checkpointable: on a timeout or preemption SLURM sends USR2 (``signal_delay_s`` before the
limit). The task forwards USR2 and TERM to the command, waits up to its grace time for the command to save
its checkpoint and stop, records the attempt as interrupted, and only then lets submitit requeue the same
command line (:meth:`checkpoint`). nph commands resume from what they already wrote, so nothing is redone.
An interrupted attempt never counts as completed: the job is requeued, or it fails, so ``afterok`` means
"the artifact exists".
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission, TorchDistributedEnvironment

from launch.container import cache_environment, container_environment
from launch.records import read_record, write_record

__all__ = ["REQUEUE_MARGIN_S", "STOP_SIGNALS", "NphTask", "grace_for"]

log = logging.getLogger(__name__)

#: USR2: SLURM's warning before a time limit or on preemption (submitit requeues); TERM: scancel, preemption.
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
#: Seconds of ``signal_delay_s`` kept for submitit to pickle the task and requeue it after the command stopped.
REQUEUE_MARGIN_S = 10


def grace_for(signal_delay_s: float) -> float:
    """How long the command may take to checkpoint after the signal: ``signal_delay_s`` less the requeue margin."""
    return max(1.0, float(signal_delay_s) - REQUEUE_MARGIN_S)


class NphTask(Checkpointable):
    """Runs ``argv`` (an argument list, no shell) and keeps ``record`` (JSON) up to date.

    Args:
        argv: the full command, e.g. ``[python, -m, nph, phantom, out=..]`` or ``[apptainer, exec, .., nph, ..]``.
        record: JSON file holding state (running/completed/failed/interrupted), attempt, return code, host, times.
        index: the task's place in the submission (shard ``index``/``count``).
        grace_s: after a forwarded USR2/TERM, how long the command may take to save and stop before it is killed.
        cache_dir: where Triton/Inductor/matplotlib/W&B/XDG caches go (instead of ``$HOME``), unless already set.
        container: ``argv`` is ``apptainer exec --cleanenv``: pass the variables the command needs by name.
    """

    def __init__(
        self,
        argv: list[str],
        record: Path,
        index: int,
        grace_s: float = grace_for(120),
        cache_dir: Path | None = None,
        container: bool = False,
    ) -> None:
        self.argv = list(argv)
        self.record = Path(record)
        self.index = index
        self.grace_s = float(grace_s)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.container = container

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
        noted, rendezvous = _rendezvous()
        info.update(noted)
        write_record(record, {**info, "state": "running", "returncode": None})
        log.info("task %d (attempt %d): %s", self.index, attempt, " ".join(self.argv))
        child = subprocess.Popen(self.argv, env=self._environment(rendezvous))
        received: list[int] = []
        handlers = _forward_signals(child, received)
        try:
            returncode = self._wait(child, received)
        finally:
            for signum, old in handlers.items():
                signal.signal(signum, old)
        if received:
            return self._interrupted(record, info, returncode, received[0], handlers[received[0]])
        state = "completed" if returncode == 0 else "failed"
        write_record(record, {**info, "state": state, "returncode": returncode, "ended": time.time()})
        if returncode != 0:
            raise RuntimeError(f"task {self.index}: {self.argv[0]} exited with status {returncode}")
        return returncode

    def _environment(self, rendezvous: dict[str, str]) -> dict[str, str]:
        """SLURM_*, CUDA_VISIBLE_DEVICES and the DDP variables must reach the command: on the host the environment
        is passed whole; into the image (``--cleanenv``) by name. Caches go under the launch folder."""
        env = {**os.environ, **rendezvous}
        if self.cache_dir is not None:
            env.update(cache_environment(self.cache_dir, env))
        if self.container:
            env.update(container_environment(env))
        return env

    def _wait(self, child: subprocess.Popen[bytes], received: list[int]) -> int:
        """The command's exit status; after a stop signal, at most ``grace_s`` more, then it is killed."""
        deadline: float | None = None
        while True:
            try:
                return child.wait(timeout=0.5)  # short waits: a signal handler never blocks on Popen's lock
            except subprocess.TimeoutExpired:
                pass
            if received and deadline is None:
                deadline = time.monotonic() + self.grace_s
            if deadline is not None and time.monotonic() > deadline:
                log.warning(
                    "task %d: the command did not stop %.0f s after the signal; killing it", self.index, self.grace_s
                )
                child.kill()
                return child.wait()

    def _interrupted(self, record: Path, info: dict[str, Any], returncode: int, signum: int, handler: Any) -> int:
        """Record the attempt as interrupted, then hand the signal to submitit (USR2: checkpoint and requeue).

        Raises:
            RuntimeError: nobody requeued the task (TERM, or no submitit handler): the stage did not finish.
        """
        name = signal.Signals(signum).name
        write_record(
            record, {**info, "state": "interrupted", "returncode": returncode, "signal": name, "ended": time.time()}
        )
        log.warning("task %d: interrupted by %s; the command stopped with status %d", self.index, name, returncode)
        if callable(handler):
            handler(signum, None)  # submitit on USR2: checkpoint() + requeue + exit; it returns on other ranks
        raise RuntimeError(f"task {self.index}: interrupted by {name} before the command finished (not completed)")

    def checkpoint(self, *args: object, **kwargs: object) -> DelayedSubmission:
        """Requeue the same command line (the command already saved and stopped); it resumes from its output."""
        log.info("task %d: requeued after a timeout or preemption", self.index)
        again = NphTask(self.argv, self.record, self.index, self.grace_s, self.cache_dir, self.container)
        return DelayedSubmission(again)


def _forward_signals(child: subprocess.Popen[bytes], received: list[int]) -> dict[int, Any]:
    """Install handlers that pass USR2/TERM on to ``child`` and note them; returns the handlers they replace."""

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        if child.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it ended in between
                os.kill(child.pid, signum)

    return {signum: signal.signal(signum, forward) for signum in STOP_SIGNALS}


def _rendezvous() -> tuple[dict[str, str], dict[str, str]]:
    """Several processes per job (DDP): MASTER_ADDR (first host of the node list), MASTER_PORT (derived from the
    job id), RANK, WORLD_SIZE, LOCAL_RANK from submitit's TorchDistributedEnvironment, for the command
    (nph.training.distributed reads them); CUDA_VISIBLE_DEVICES stays as SLURM bound it. Returns (what the record
    notes, the variables for the command). submitit writes them into ``os.environ``; that is restored, so this
    process (and a test calling the task in-process) never turns into a rank of someone else's job."""
    try:
        if submitit.JobEnvironment().num_tasks <= 1:
            return {}, {}
    except RuntimeError:  # not inside a submitit job
        return {}, {}
    saved = dict(os.environ)
    try:
        env = TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        variables = {k: v for k, v in os.environ.items() if saved.get(k) != v}
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"master": f"{env.master_addr}:{env.master_port}", "world_size": str(env.world_size)}, variables


def _job_rank() -> tuple[str | None, int]:
    """The submitit job id and this process's global rank (None, 0 outside a submitit job)."""
    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # called outside a submitit job (tests calling the task directly)
        return None, 0
    return str(env.job_id), env.global_rank

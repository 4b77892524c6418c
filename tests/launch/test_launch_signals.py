"""USR2/TERM reach the command, which gets time to checkpoint; an interrupted attempt never counts as completed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import submitit
from waiting import wait_until

from launch.task import NphTask, grace_for

CHILD = Path(__file__).resolve().parent / "saving_child.py"


def _signal_when_ready(folder: Path, signum: int) -> threading.Thread:
    """Send ``signum`` to this process (the task's) once the child wrote ``ready``."""

    def send() -> None:
        wait_until(lambda: (folder / "ready").exists(), 60, "the child to start")
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_grace_leaves_time_to_requeue() -> None:
    assert (grace_for(120), grace_for(30), grace_for(5)) == (110.0, 20.0, 1.0)


@pytest.mark.parametrize("signum", [signal.SIGUSR2, signal.SIGTERM])
def test_signal_is_forwarded_and_the_command_may_finish_saving(tmp_path: Path, signum: int) -> None:
    record = tmp_path / "r.json"
    task = NphTask([sys.executable, str(CHILD), str(tmp_path), "1.5"], record, 0, grace_s=20)
    before = signal.getsignal(signum)
    thread = _signal_when_ready(tmp_path, signum)
    with pytest.raises(RuntimeError, match=f"interrupted by {signal.Signals(signum).name} before the command finished"):
        task()  # no submitit handler here: nobody requeues, so the task must fail
    thread.join()
    assert (tmp_path / "checkpoint").read_text() == signal.Signals(signum).name  # saved after 1.5 s, not killed
    data = json.loads(record.read_text())
    assert (data["state"], data["returncode"], data["signal"]) == ("interrupted", 0, signal.Signals(signum).name)
    assert signal.getsignal(signum) == before  # the task's forwarding handler is gone again


def test_a_command_that_does_not_stop_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    record = tmp_path / "r.json"
    task = NphTask([sys.executable, str(CHILD), str(tmp_path), "60"], record, 0, grace_s=1)
    thread = _signal_when_ready(tmp_path, signal.SIGUSR2)
    with pytest.raises(RuntimeError, match="interrupted by SIGUSR2"):
        task()
    thread.join()
    data = json.loads(record.read_text())
    assert (data["state"], data["returncode"]) == ("interrupted", -signal.SIGKILL)
    assert not (tmp_path / "checkpoint").exists()


@pytest.mark.slurm
def test_preemption_waits_for_the_checkpoint_then_requeues(slurm_env: Path, tmp_path: Path) -> None:
    """Real SLURM: USR2 reaches the command through submitit's job, which saves for 3 s; the requeued attempt
    resumes from the checkpoint, and only that second attempt completes the job."""
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit" / "%j", max_num_timeout=1)
    executor.update_parameters(
        partition="debug", account="nph", time=10, signal_delay_s=30, additional_parameters={"requeue": True}
    )
    task = NphTask([sys.executable, str(CHILD), str(tmp_path), "3"], tmp_path / "r.json", 0, grace_s=grace_for(30))
    job = executor.submit(task)
    wait_until(lambda: (tmp_path / "ready").exists(), 90, "the command to start")
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True)
    wait_until(lambda: (tmp_path / "done").exists(), 120, "the requeued attempt to resume", interval=1.0)
    assert job.result() == 0 and (tmp_path / "done").read_text() == "resumed from SIGUSR2"
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["attempt"], data["state"]) == (2, "completed")


@pytest.mark.slurm
def test_terminated_task_fails_so_afterok_is_never_satisfied(slurm_env: Path, tmp_path: Path) -> None:
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit" / "%j", max_num_timeout=1)
    executor.update_parameters(partition="debug", account="nph", time=10, signal_delay_s=30)
    task = NphTask([sys.executable, str(CHILD), str(tmp_path), "1"], tmp_path / "r.json", 0, grace_s=20)
    job = executor.submit(task)
    wait_until(lambda: (tmp_path / "ready").exists(), 90, "the command to start")
    subprocess.run(["scancel", "--signal=TERM", job.job_id], check=True)  # the step's tasks, not the batch shell
    wait_until(lambda: job.done(), 60, "the job to end")
    assert (tmp_path / "checkpoint").read_text() == "SIGTERM"  # the command saved and exited 0...
    data = json.loads((tmp_path / "r.json").read_text())
    assert (data["state"], data["returncode"]) == ("interrupted", 0)
    with pytest.raises(submitit.core.utils.FailedJobError, match="interrupted by SIGTERM"):
        job.result()  # ...yet the job failed: a dependant's afterok is never satisfied
    wait_until(lambda: job.state == "FAILED", 30, "sacct to say FAILED")

"""Resubmitting a sharded run: only the shards that are missing or failed, never one twice at a time.

The same command line (same values, same ``shards=K``) submitted again into the same launch folder skips the
tasks an earlier submission completed and those still queued or running (the next stage waits on those), and
submits the rest. A different K for a run that has not finished is refused with the reason: shard k of K and
shard k of K' cover different samples, so the two submissions would neither skip nor wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from launch.records import LaunchPaths, TaskState, read_jobs, task_states
from nph.errors import InputError

__all__ = ["IN_FLIGHT", "Resubmission", "shards_to_submit"]

#: Scheduler states of a task that will still run or is running: neither redone nor forgotten.
IN_FLIGHT = frozenset({"PENDING", "RUNNING", "REQUEUED", "SUSPENDED", "CONFIGURING", "COMPLETING", "RESIZING"})


@dataclass(frozen=True)
class Resubmission:
    """Which task indices to submit now, and what earlier submissions already cover."""

    todo: list[int]
    completed: list[int] = field(default_factory=list)
    in_flight: dict[int, str] = field(default_factory=dict)  # index → job id still queued or running

    def describe(self, shards: int) -> str:
        parts = [f"{len(self.todo)} of {shards} shard(s) to submit"]
        if self.completed:
            parts.append(f"{len(self.completed)} completed earlier (skipped: {_ranges(self.completed)})")
        if self.in_flight:
            parts.append(f"{len(self.in_flight)} still queued or running (waited on: {_ranges(list(self.in_flight))})")
        return "; ".join(parts)


def shards_to_submit(paths: LaunchPaths, command: Sequence[str], shards: int) -> Resubmission:
    """The shards of ``command`` split ``shards`` ways that no earlier submission completed or still runs.

    Raises:
        InputError: the same command was submitted with another shard count and that run has not finished.
    """
    earlier = [s for s in read_jobs(paths)["submissions"] if s.get("command") == list(command) and s.get("shards")]
    if not earlier:
        return Resubmission(list(range(shards)))
    rows = task_states(paths)
    by_submission: dict[str, list[TaskState]] = {}
    for row in rows:
        by_submission.setdefault(row.submission, []).append(row)
    for sub in earlier:
        unfinished = [r.index for r in by_submission.get(sub["id"], []) if r.state != "COMPLETED"]
        if sub["shards"] != shards and unfinished:
            raise InputError(
                f"shards={shards}: {paths.jobs_json} holds an unfinished run of the same command with "
                f"shards={sub['shards']} (submission {sub['id']}: shard(s) {_ranges(unfinished)} not completed). "
                f"Shard k of {sub['shards']} covers other samples than shard k of {shards}, so the two runs would "
                f"neither skip nor wait for each other: resubmit with shards={sub['shards']} (only its missing "
                "shards run), or cancel it (scancel) and use a new out="
            )
    completed: set[int] = set()
    in_flight: dict[int, str] = {}
    for sub in earlier:
        if sub["shards"] != shards:
            continue
        for row in by_submission.get(sub["id"], []):
            if row.state == "COMPLETED":
                completed.add(row.index)
            elif row.state in IN_FLIGHT:
                in_flight[row.index] = row.job_id
    in_flight = {k: v for k, v in sorted(in_flight.items()) if k not in completed}
    todo = [k for k in range(shards) if k not in completed and k not in in_flight]
    return Resubmission(todo, sorted(completed), in_flight)


def _ranges(indices: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` → ``0-2,5``."""
    values, parts = sorted(indices), []
    start = prev = None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            parts.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = v
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(parts)

"""``python -m launch``: submit an nph command (``<command> ...``) or show progress (``status out=DIR``)."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from launch.records import LaunchPaths, task_states
from launch.request import LAUNCH_DEFAULTS, OUTPUT_KEYS, launch_folder, parse_request
from launch.submit import plan, submit, wait
from nph.errors import InputError
from nph.io.atomic import write_text

__all__ = ["main"]

log = logging.getLogger("launch")

EXIT_FAILED, EXIT_USAGE = 1, 2

USAGE = """usage: python -m launch <nph command> [action] [cluster=local|slurm|<profile>] [container=IMAGE.sif]
                        [shards=K] [wait=true|false] [cluster.<key>=value ...] [dry_run=true]
                        [after=JOBID[,JOBID...]] key=value ...
       python -m launch status out=DIR | launch_dir=DIR

Runs `nph <command> key=value ...` through submitit, once, or as K array tasks each given shard=k/K.
`{k}` and `{K}` in the command's values become the task index and count. Profiles: configs/cluster/*.yaml.
after=: start only once those SLURM jobs completed OK; the new job ids go to <launch_dir>/last_job_ids.
Launcher keys (defaults): """ + ", ".join(f"{k}={v}" for k, v in LAUNCH_DEFAULTS.items())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher; returns the exit status (0 ok, 1 a task failed while waiting, 2 bad input)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[launch] %(message)s", stream=sys.stderr)
    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if args else EXIT_USAGE
    try:
        if args[0] == "status":
            return _status(args[1:])
        return _launch(args)
    except InputError as err:
        print(f"launch: error: {err}", file=sys.stderr)
        return EXIT_USAGE


def _launch(args: list[str]) -> int:
    request = parse_request(args)
    the_plan = plan(request)
    profile = {k: v for k, v in the_plan.profile.to_dict().items() if v not in (None, [], {})}
    log.info("cluster profile %s", json.dumps(profile))
    if request.dry_run:
        print(the_plan.render())
        return 0
    if the_plan.resubmission is not None and request.shards is not None:
        print(f"shards: {the_plan.resubmission.describe(request.shards)}")
    if not the_plan.indices:  # every shard completed or still queued: nothing new; the next stage waits on those
        waiting = list(the_plan.resubmission.in_flight.values()) if the_plan.resubmission else []
        write_text(the_plan.paths.last_job_ids, ",".join(waiting) + "\n")
        print(f"nothing to submit: every shard of `nph {request.command}` completed or is still queued")
        print(f"job ids: {the_plan.paths.last_job_ids}")
        return 0
    submission = submit(the_plan)
    arrays = ", ".join(submission.record["arrays"])
    print(
        f"submitted {len(submission.jobs)} task(s) of `nph {request.command}` to cluster "
        f"'{the_plan.profile.name}' as job(s) {arrays}"
    )
    print(f"job records: {submission.jobs_json}")
    print(f"job ids: {the_plan.paths.last_job_ids}")
    print(f"logs: {Path(submission.record['tasks'][0]['stdout']).parent.parent}/<job id>/")
    print(f"follow: python -m launch status launch_dir={the_plan.paths.folder}")
    if not (request.wait if request.wait is not None else the_plan.profile.wait):
        return 0
    failed = wait(submission, the_plan.paths)
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def _status(args: list[str]) -> int:
    explicit, outs = None, []
    for item in args:
        key, _, value = item.partition("=")
        if key == "launch_dir" and value:
            explicit = value
        elif key in OUTPUT_KEYS and value:
            outs.append(item)
        else:
            raise InputError(f"'{item}': status takes out=DIR (as given to the command) or launch_dir=DIR")
    if explicit is None and not outs:
        raise InputError("status needs out=DIR (the command's output folder) or launch_dir=DIR")
    folder = launch_folder(explicit, outs, Path.cwd())
    paths = LaunchPaths(folder)
    if not paths.jobs_json.is_file():
        raise InputError(f"{paths.jobs_json}: no job records (nothing launched into {folder})")
    rows = task_states(paths)
    print(f"{'submission':<24} {'task':>5} {'job id':<14} {'state':<12} {'attempts':>8} {'rc':>4}  log")
    for r in rows:
        rc = "-" if r.returncode is None else str(r.returncode)
        print(f"{r.submission:<24} {r.index:>5} {r.job_id:<14} {r.state:<12} {r.attempts:>8} {rc:>4}  {r.stdout}")
    counts = Counter(r.state for r in rows)
    print("total: " + ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items())))
    return 0

"""Cluster profiles (``configs/cluster/<name>.yaml``) and the submitit executors built from them.

A profile names the executor (``local`` or ``slurm``) and the resources of one task. Every key is checked
against :data:`PROFILE_DEFAULTS` before anything is submitted, so a typo fails at once, not in the queue.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import submitit
import yaml
from submitit.slurm import slurm as submitit_slurm

from nph.cli.config import config_dir
from nph.errors import InputError

__all__ = [
    "EXECUTORS",
    "PROFILE_DEFAULTS",
    "ClusterProfile",
    "check_after",
    "dependency",
    "gpu_request",
    "load_profile",
    "make_executor",
    "render_sbatch",
]

log = logging.getLogger(__name__)

EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class ClusterProfile:
    """Where and with what resources each task runs; field names are the keys of a profile file."""

    name: str = "local"
    executor: str = "local"  # local: submitit's LocalExecutor on this machine; slurm: sbatch job arrays
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    array_parallelism: int = 256  # tasks of one array running at once (sbatch --array=0-N%P)
    nodes: int = 1
    tasks_per_node: int = 1  # >1: one process per GPU for DDP training; submitit sets the rank variables
    signal_delay_s: int = 120  # USR2 this long before the time limit: the task requeues and resumes
    max_num_timeout: int = 3  # requeues after a timeout or preemption before giving up
    wait: bool = False  # block until every task ended (the command line's wait= overrides it)
    additional_parameters: dict[str, Any] = field(default_factory=dict)  # extra #SBATCH lines
    setup: list[str] = field(default_factory=list)  # shell lines before the task: module loads, exports

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Every key a profile may set, with its default (the ``name`` comes from the file name).
PROFILE_DEFAULTS: dict[str, Any] = {k: v for k, v in ClusterProfile().to_dict().items() if k != "name"}

#: ``NAME=value`` for a name that looks like a secret, with a literal value (``$(cat file)``/``$VAR`` are fine).
_SECRET = re.compile(r"\b([A-Za-z_]*(?:KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)[A-Za-z_]*)=(?![\s$]|$)", re.I)

#: sbatch options a profile may not pass through additional_parameters (see :func:`gpu_request`).
_REFUSED_OPTIONS = frozenset({"gpus_per_task", "tres_per_task"})

_POSITIVE = ("cpus_per_task", "timeout_min", "array_parallelism", "nodes", "tasks_per_node", "max_num_timeout")


def profile_dir() -> Path:
    return config_dir() / "cluster"


def load_profile(name: str, overrides: Mapping[str, Any] | None = None) -> ClusterProfile:
    """Read ``configs/cluster/<name>.yaml``, apply ``overrides`` (``cluster.<key>=`` on the command line), check.

    Raises:
        InputError: no such profile, a key that is not in :data:`PROFILE_DEFAULTS`, or a bad value.
    """
    path = profile_dir() / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in profile_dir().glob("*.yaml"))
        raise InputError(f"{path}: no cluster profile '{name}' (known: {', '.join(known)})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: a profile is a mapping of key: value, got {type(data).__name__}")
    _check_keys(data, str(path))
    _check_keys(dict(overrides or {}), "cluster.<key>=")
    values = {**PROFILE_DEFAULTS, **data, **dict(overrides or {})}
    return _checked(ClusterProfile(name=name, **values), str(path))


def _check_keys(values: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(values) - set(PROFILE_DEFAULTS))
    if unknown:
        valid = ", ".join(f"{k} (default {v!r})" for k, v in PROFILE_DEFAULTS.items())
        raise InputError(f"{where}: unknown cluster key(s) {', '.join(unknown)}; valid keys: {valid}")


def _checked(profile: ClusterProfile, where: str) -> ClusterProfile:
    if profile.executor not in EXECUTORS:
        raise InputError(f"{where}: executor must be one of {', '.join(EXECUTORS)}, got {profile.executor!r}")
    for key in _POSITIVE:
        value = getattr(profile, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "max_num_timeout" else 1):
            raise InputError(f"{where}: {key} must be a positive integer, got {value!r}")
    gpus = profile.gpus_per_task
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
        raise InputError(f"{where}: gpus_per_task must be an integer ≥ 0, got {gpus!r}")
    if profile.mem_gb is not None and (not isinstance(profile.mem_gb, int | float) or profile.mem_gb <= 0):
        raise InputError(f"{where}: mem_gb must be a positive number or null, got {profile.mem_gb!r}")
    if not isinstance(profile.wait, bool):
        raise InputError(f"{where}: wait must be true or false, got {profile.wait!r}")
    if not isinstance(profile.additional_parameters, dict):
        raise InputError(f"{where}: additional_parameters must be a mapping of sbatch option: value")
    refused = sorted(k for k in profile.additional_parameters if str(k).replace("-", "_") in _REFUSED_OPTIONS)
    if refused:
        raise InputError(
            f"{where}: additional_parameters {', '.join(refused)}: Slurm 23.11 refuses --gpus-per-task/"
            "--tres-per-task without --ntasks; set gpus_per_task (and tasks_per_node for DDP) instead"
        )
    if not isinstance(profile.setup, list) or not all(isinstance(s, str) for s in profile.setup):
        raise InputError(f"{where}: setup must be a list of shell lines")
    for number, line in enumerate(profile.setup, 1):
        secret = _SECRET.search(line)
        if secret:  # the value is never echoed: this message goes to logs too
            raise InputError(
                f"{where}: setup line {number} sets {secret.group(1)} to a literal value, which would be stored in "
                "the sbatch script, jobs.json and the logs; keep it in a file only you can read and load it "
                "there instead (e.g. setup: ['source ~/.nph-secrets'])"
            )
    if profile.executor == "local" and profile.nodes != 1:
        raise InputError(f"{where}: the local executor runs on one node, got nodes={profile.nodes}")
    for key in ("partition", "account", "qos"):
        value = getattr(profile, key)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}: {key} must be a string or null, got {value!r}")
    return profile


def dependency(after: Sequence[str], singleton: bool = False) -> str | None:
    """sbatch ``--dependency``: every job in ``after`` completed OK (an array: all its tasks) and, with
    ``singleton``, no earlier job of the same name (one writer per output folder) is still there."""
    parts = (["afterok:" + ":".join(after)] if after else []) + (["singleton"] if singleton else [])
    return ",".join(parts) or None


def gpu_request(profile: ClusterProfile) -> dict[str, Any]:
    """The GPU request as submitit parameters, in a shape Slurm 22.05 and 23.11+ both accept.

    Never ``--gpus-per-task``: Slurm 23.11 refuses it without ``--ntasks``/``--gpus``. One task per job
    (array tasks): ``--gres=gpu:N``, the oldest spelling every site understands. Several tasks (DDP):
    ``--ntasks-per-node`` with ``--gpus-per-node`` = tasks x GPUs each; the ranks of a node then see all its
    GPUs and each takes ``cuda:<local rank>`` (nph.training.distributed.local_device).
    """
    gpus = profile.gpus_per_task
    if not gpus:
        return {}
    if profile.nodes == 1 and profile.tasks_per_node == 1:
        return {"gres": f"gpu:{gpus}"}
    return {"gpus_per_node": gpus * profile.tasks_per_node}


def check_after(profile: ClusterProfile, after: Sequence[str]) -> None:
    """Refuse ``after=`` where no scheduler can hold the tasks back (the local executor starts them at once).

    Raises:
        InputError: ``after`` given for a profile whose executor is not slurm.
    """
    if after and profile.executor != "slurm":
        raise InputError(
            f"after={','.join(after)}: cluster={profile.name} runs tasks on this machine, which cannot wait on "
            "job ids; run the stages one after the other (the local profile waits for each) or use a SLURM profile"
        )


def _slurm_parameters(profile: ClusterProfile, job_name: str, after: Sequence[str] = ()) -> dict[str, Any]:
    """The profile as sbatch parameters, named as submitit's ``_make_sbatch_string`` names them.

    Always ``--requeue`` (a preempted or timed-out task comes back) and ``--dependency=singleton`` (the job
    name is derived from the output folder: one writer at a time); with ``after``, ``--kill-on-invalid-dep``
    so a failed dependency cancels its dependants instead of leaving them pending forever.
    """
    extra = {"requeue": True, "kill_on_invalid_dep": "yes", **dict(profile.additional_parameters)}
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": profile.timeout_min,
        "nodes": profile.nodes,
        "ntasks_per_node": profile.tasks_per_node,
        "cpus_per_task": profile.cpus_per_task,
        "array_parallelism": profile.array_parallelism,
        "signal_delay_s": profile.signal_delay_s,
        "partition": profile.partition,
        "account": profile.account,
        "qos": profile.qos,
        **gpu_request(profile),
        "setup": list(profile.setup) or None,
        "additional_parameters": extra,
        "dependency": dependency(after, singleton=True),
    }
    if profile.mem_gb is not None:
        params["mem"] = submitit_slurm._convert_mem(profile.mem_gb)
    return {k: v for k, v in params.items() if v is not None}


def make_executor(profile: ClusterProfile, folder: Path, job_name: str, after: Sequence[str] = ()) -> submitit.Executor:
    """A submitit executor for ``profile`` whose job files and logs go to ``folder``.

    ``after``: SLURM job ids that must complete OK before these tasks start (sbatch ``--dependency=afterok``).

    Raises:
        InputError: ``executor: slurm`` where no ``srun``/``sbatch`` is installed, parameters sbatch refuses,
            or ``after`` with the local executor (which has no scheduler to wait on).
    """
    check_after(profile, after)
    if profile.executor == "local":
        executor: submitit.Executor = submitit.LocalExecutor(folder=folder, max_num_timeout=profile.max_num_timeout)
        executor.update_parameters(
            timeout_min=profile.timeout_min,
            tasks_per_node=profile.tasks_per_node,
            gpus_per_node=profile.gpus_per_task * profile.tasks_per_node,
            signal_delay_s=profile.signal_delay_s,
            setup=list(profile.setup),
        )
        return executor
    if submitit.SlurmExecutor.affinity() < 0:
        raise InputError(f"cluster={profile.name}: no SLURM here (srun not found); use cluster=local")
    slurm = submitit.SlurmExecutor(folder=folder, max_num_timeout=profile.max_num_timeout)
    try:
        slurm.update_parameters(**_slurm_parameters(profile, job_name, after))
    except ValueError as err:
        raise InputError(f"cluster={profile.name}: {' '.join(str(err).split())}") from err
    return slurm


def render_sbatch(
    profile: ClusterProfile,
    folder: Path,
    job_name: str,
    array_size: int,
    python: str | None = None,
    after: Sequence[str] = (),
) -> str:
    """The sbatch script submitit writes for an array of ``array_size`` tasks (for dry runs and reviews)."""
    python = python or shlex.quote(sys.executable)
    command = " ".join([python, "-u -m submitit.core._submit", shlex.quote(str(folder))])
    return submitit_slurm._make_sbatch_string(
        command=command,
        folder=folder,
        map_count=array_size if array_size > 1 else None,
        **_slurm_parameters(profile, job_name, after),
    )

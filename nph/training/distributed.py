"""Multi-process training setup: who am I (rank), how many are we, and where is rank 0.

Launchers set the environment: ``torchrun`` exports RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT, and
so does ``python -m launch`` (submitit's TorchDistributedEnvironment); a plain ``srun`` exports
SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID/SLURM_JOB_NODELIST/SLURM_JOB_ID, from which rank 0's host (the first
of the node list) and a port derived from the job id follow. :func:`dist_env_from_environ` is the one place
that reads those variables; :func:`local_device` picks the GPU from what SLURM bound.
"""

from __future__ import annotations

import datetime
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nph.errors import InputError

__all__ = [
    "DistEnv",
    "dist_env_from_environ",
    "first_host",
    "init_distributed",
    "local_device",
    "port_for_job",
    "shutdown_distributed",
]

log = logging.getLogger(__name__)
DEFAULT_PORT = 29511


@dataclass(frozen=True)
class DistEnv:
    """Position of this process in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """The first host of SLURM's compact node list, as ``scontrol show hostnames`` lists it first.

    ``gpu[07-08,10],cpu01`` → ``gpu07``; ``rack[2-3]-n[01-04]`` → ``rack2-n01``; ``node5`` → ``node5``.
    """
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):  # the first entry ends at the first comma outside brackets
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    first = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split(",")[0].split("-")[0], nodelist[:end].strip())
    if not first or any(c in first for c in "[],"):
        raise InputError(f"distributed environment: cannot read a host from SLURM_JOB_NODELIST={nodelist!r}")
    return first


def port_for_job(job_id: str) -> int:
    """A rendezvous port in 20000..59999 from the job id: every rank of a job agrees, two jobs rarely collide."""
    return 20000 + int(job_id) % 40000 if job_id.isdigit() else DEFAULT_PORT


def dist_env_from_environ(environ: Mapping[str, str]) -> DistEnv:
    """Read torchrun's variables, else SLURM's (a plain ``srun``), else a single process.

    Under SLURM without MASTER_ADDR/MASTER_PORT, rank 0 is on the first host of SLURM_JOB_NODELIST and the
    port comes from SLURM_JOB_ID, so concurrent jobs on one node do not share a port.
    """
    try:
        if "RANK" in environ and "WORLD_SIZE" in environ:
            rank, world, local = int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0))
        elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
            rank, world = int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
            local = int(environ.get("SLURM_LOCALID", 0))
        else:
            return DistEnv()
        job_port = port_for_job(environ.get("SLURM_JOB_ID", ""))
        port = int(environ.get("MASTER_PORT", job_port))
    except ValueError as err:
        raise InputError(f"distributed environment: non-integer rank/size/port ({err})") from err
    nodes = environ.get("SLURM_JOB_NODELIST", "")
    default_addr = first_host(nodes) if nodes else "127.0.0.1"
    if not 0 <= rank < world:
        raise InputError(f"distributed environment: rank {rank} outside world size {world}")
    return DistEnv(rank, world, local, environ.get("MASTER_ADDR", default_addr), port)


def local_device(env: DistEnv, visible_gpus: int | None = None) -> torch.device:
    """This rank's device from what SLURM bound: ``cuda:<local rank>`` when the rank sees the node's GPUs
    (``--gpus-per-node``), ``cuda:0`` when it sees exactly one (a GPU bound per task), the CPU when it sees none.

    Raises:
        InputError: the rank sees several GPUs but fewer than its local rank needs.
    """
    visible = torch.cuda.device_count() if visible_gpus is None else visible_gpus
    if visible == 0:
        return torch.device("cpu")
    if visible == 1:
        return torch.device("cuda", 0)
    if env.local_rank < visible:
        return torch.device("cuda", env.local_rank)
    raise InputError(
        f"distributed environment: local rank {env.local_rank} sees only {visible} GPUs; "
        "ask for one GPU per task on each node (cluster.gpus_per_task=1, cluster.tasks_per_node=<GPUs per node>)"
    )


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPU) when the run has more than one process."""
    if not env.is_distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend,
        init_method=f"tcp://{env.master_addr}:{env.master_port}",
        rank=env.rank,
        world_size=env.world_size,
        timeout=datetime.timedelta(minutes=30),
    )
    log.info("rank %d/%d joined the %s process group", env.rank, env.world_size, backend)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

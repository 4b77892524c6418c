"""Multi-process training setup: who am I (rank), how many are we, and where is rank 0.

Launchers set the environment: ``torchrun`` exports RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT;
SLURM (and submitit, one task per GPU) exports SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID.
:func:`dist_env_from_environ` is the one place that reads those variables.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nph.errors import InputError

__all__ = ["DistEnv", "dist_env_from_environ", "init_distributed", "shutdown_distributed"]

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


def dist_env_from_environ(environ: Mapping[str, str]) -> DistEnv:
    """Read torchrun's variables, else SLURM's (as submitit's tasks see them), else a single process.

    For SLURM, MASTER_ADDR defaults to the first host of SLURM_JOB_NODELIST when it is a plain
    name (``node01``); bracketed lists need MASTER_ADDR set by the launcher.
    """
    try:
        if "RANK" in environ and "WORLD_SIZE" in environ:
            rank, world, local = int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0))
        elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
            rank, world = int(environ["SLURM_PROCID"]), int(environ["SLURM_NTASKS"])
            local = int(environ.get("SLURM_LOCALID", 0))
        else:
            return DistEnv()
        port = int(environ.get("MASTER_PORT", DEFAULT_PORT))
    except ValueError as err:
        raise InputError(f"distributed environment: non-integer rank/size/port ({err})") from err
    nodes = environ.get("SLURM_JOB_NODELIST", "")
    default_addr = nodes.split(",")[0] if nodes and "[" not in nodes else "127.0.0.1"
    if not 0 <= rank < world:
        raise InputError(f"distributed environment: rank {rank} outside world size {world}")
    return DistEnv(rank, world, local, environ.get("MASTER_ADDR", default_addr), port)


def init_distributed(env: DistEnv, device: torch.device) -> None:
    """Join the process group (NCCL on GPUs, gloo on CPU) when the run has more than one process."""
    if not env.is_distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{env.master_addr}:{env.master_port}", rank=env.rank,
                            world_size=env.world_size, timeout=datetime.timedelta(minutes=30))
    log.info("rank %d/%d joined the %s process group", env.rank, env.world_size, backend)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()

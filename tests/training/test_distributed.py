"""DDP on 2 CPU processes (gloo) against single-process training on the same global batch."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from toy_task import ToyTask, toy_config, toy_dataset

from nph.errors import InputError
from nph.training import Engine
from nph.training.distributed import DistEnv, dist_env_from_environ, shutdown_distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    env = DistEnv(rank=rank, world_size=2, local_rank=rank, master_port=port)
    task = ToyTask()
    task.net[2].p = 0.0  # no dropout: the two runs draw different masks by design (per-rank seeds)
    result = Engine(task, toy_dataset(), toy_config(grad_accum=1, ema_decay=0.0), Path(out) / "run",
                    dist_env=env)()
    save_file(result.weights, Path(out) / f"rank{rank}.safetensors")
    shutdown_distributed()


def test_two_process_ddp_matches_single_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)

    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    single_task = ToyTask()
    single_task.net[2].p = 0.0
    single = Engine(single_task, toy_dataset(), toy_config(grad_accum=1, ema_decay=0.0), tmp_path / "single")()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], single.weights[key], rtol=1e-4, atol=1e-5)
    assert not torch.equal(rank0["0.weight"], ToyTask().net.state_dict()["0.weight"])  # it did train
    assert (tmp_path / "run" / "checkpoint.pt").is_file()


def test_env_from_torchrun_and_slurm():
    torchrun = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "n1", "MASTER_PORT": "1234"}
    assert dist_env_from_environ(torchrun) == DistEnv(1, 4, 1, "n1", 1234)
    slurm = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_JOB_NODELIST": "gpu07,gpu08"}
    env = dist_env_from_environ(slurm)
    assert (env.rank, env.world_size, env.local_rank, env.master_addr) == (3, 4, 1, "gpu07")
    assert dist_env_from_environ({}) == DistEnv() and not DistEnv().is_distributed


@pytest.mark.parametrize("environ", [{"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "2", "WORLD_SIZE": "2"}])
def test_bad_distributed_env(environ):
    with pytest.raises(InputError, match="distributed environment"):
        dist_env_from_environ(environ)

"""DDP from the scheduler: rank 0's host from the node list, a port from the job id, GPUs from what SLURM bound."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
import submitit
import torch

from launch.profiles import gpu_request, load_profile
from launch.task import NphTask
from nph.errors import InputError
from nph.training.distributed import DistEnv, dist_env_from_environ, first_host, local_device, port_for_job

PROBE = Path(__file__).resolve().parent / "ddp_probe.py"


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [
        ("node5", "node5"),
        ("gpu07,gpu08", "gpu07"),
        ("gpu[07-08,10],cpu01", "gpu07"),
        ("gpu[10,07-08]", "gpu10"),
        ("rack[2-3]-n[01-04]", "rack2-n01"),
    ],
)
def test_first_host_of_a_node_list(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


def test_bracketed_node_list_and_job_port_without_master_variables() -> None:
    slurm = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_JOB_NODELIST": "g[03-04]",
        "SLURM_JOB_ID": "123456",
    }
    env = dist_env_from_environ(slurm)
    assert (env.master_addr, env.master_port) == ("g03", 20000 + 123456 % 40000)  # not 127.0.0.1, not a fixed port
    assert port_for_job("123456") != port_for_job("123457")
    with pytest.raises(InputError, match="cannot read a host"):
        first_host("[")


@pytest.mark.parametrize(
    ("local_rank", "visible", "device"),
    [(0, 0, "cpu"), (3, 1, "cuda:0"), (1, 4, "cuda:1"), (3, 4, "cuda:3")],
)
def test_local_device_follows_what_slurm_bound(local_rank: int, visible: int, device: str) -> None:
    assert local_device(DistEnv(local_rank, 8, local_rank), visible_gpus=visible) == torch.device(device)


def test_local_device_refuses_too_few_gpus() -> None:
    with pytest.raises(InputError, match="local rank 2 sees only 2 GPUs"):
        local_device(DistEnv(2, 4, 2), visible_gpus=2)


def test_ddp_profile_asks_for_the_node_gpus() -> None:
    profile = load_profile("slurm", {"tasks_per_node": 4, "gpus_per_task": 1})
    assert gpu_request(profile) == {"gpus_per_node": 4}


@pytest.mark.slurm
def test_two_ranks_rendezvous_through_the_scheduler(slurm_env: Path, tmp_path: Path) -> None:
    """1 node x 2 tasks x 1 GPU each on the loopback (--gpus-per-node=2): submitit's TorchDistributedEnvironment
    exports the rendezvous, both ranks join one gloo group, each sees both bound GPUs and takes its own."""
    executor = submitit.SlurmExecutor(folder=tmp_path / "submitit" / "%j", max_num_timeout=0)
    profile = load_profile("loopback", {"tasks_per_node": 2, "gpus_per_task": 1})
    executor.update_parameters(
        partition="debug", account="nph", time=10, ntasks_per_node=2, cpus_per_task=1, **gpu_request(profile)
    )
    job = executor.submit(NphTask([sys.executable, str(PROBE), str(tmp_path)], tmp_path / "r.json", 0, grace_s=5))
    assert job.results() == [0, 0]
    seen = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    host = socket.gethostname().split(".")[0]
    assert {s["master"] for s in seen} == {seen[0]["master"]} and seen[0]["master"].startswith(f"{host}:")
    assert 20000 <= int(seen[0]["master"].split(":")[1]) <= 60000  # submitit's port, derived from the job id
    assert [s["sum_of_ranks_plus_one"] for s in seen] == [3.0, 3.0]  # 1 + 2: both ranks reduced together
    assert [s["bound"] for s in seen] == [["0", "1"], ["0", "1"]]  # SLURM bound the node's 2 GPUs to the job
    assert [s["device"] for s in seen] == ["cuda:0", "cuda:1"]
    record = json.loads((tmp_path / "r.json").read_text())
    assert (record["state"], record["world_size"], record["master"]) == ("completed", "2", seen[0]["master"])

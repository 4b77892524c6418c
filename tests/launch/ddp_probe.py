"""A stand-in DDP command (test_launch_ddp.py): join the process group as nph's training does, all-reduce the
ranks, and write what this rank saw (rank, master, device from what SLURM bound) to FOLDER/rank<k>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from nph.training.distributed import dist_env_from_environ, init_distributed, local_device, shutdown_distributed

env = dist_env_from_environ(os.environ)
bound = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
init_distributed(env, torch.device("cpu"))  # gloo: the loopback's GPUs are device files only
total = torch.tensor([env.rank + 1.0])
dist.all_reduce(total)
shutdown_distributed()
seen = {
    "rank": env.rank,
    "world_size": env.world_size,
    "local_rank": env.local_rank,
    "master": f"{env.master_addr}:{env.master_port}",
    "sum_of_ranks_plus_one": total.item(),
    "bound": bound,
    "device": str(local_device(env, visible_gpus=len(bound))),
}
(Path(sys.argv[1]) / f"rank{env.rank}.json").write_text(json.dumps(seen))

"""``device=auto``: a GPU when torch sees one, the CPU when none was assigned, an error when one was assigned
(SLURM_*_GPUS, CUDA_VISIBLE_DEVICES) that torch cannot see."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from nph.device import assigned_gpus, auto_device
from nph.errors import InputError


@pytest.mark.parametrize(
    "environ",
    [{}, {"CUDA_VISIBLE_DEVICES": ""}, {"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, {"SLURM_GPUS_ON_NODE": "0"}],
)
def test_nothing_assigned_means_the_cpu(environ: dict[str, str]) -> None:
    assert assigned_gpus(environ) == {}
    assert auto_device(environ, cuda_count=0) == torch.device("cpu")


def test_a_visible_gpu_is_used() -> None:
    assert auto_device({"SLURM_JOB_GPUS": "3"}, cuda_count=1) == torch.device("cuda")
    assert auto_device({}, cuda_count=2) == torch.device("cuda")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}, "SLURM_JOB_GPUS=0, CUDA_VISIBLE_DEVICES=0"),
        ({"SLURM_STEP_GPUS": "1,2"}, "SLURM_STEP_GPUS=1,2"),
        ({"SLURM_GPUS_ON_NODE": "4"}, "SLURM_GPUS_ON_NODE=4"),
        ({"CUDA_VISIBLE_DEVICES": "GPU-5f1c"}, "CUDA_VISIBLE_DEVICES=GPU-5f1c"),
    ],
)
def test_an_assigned_gpu_torch_cannot_see_is_an_error(environ: dict[str, str], named: str) -> None:
    with pytest.raises(InputError) as err:
        auto_device(environ, cuda_count=0)
    message = str(err.value)
    assert message.startswith(f"device=auto: a GPU was assigned to this job ({named}) but torch ")
    assert torch.__version__ in message and "device=cpu" in message and "\n" not in message


def test_the_command_line_refuses_with_one_line_and_status_2(tmp_path) -> None:
    (tmp_path / "models").mkdir()
    # GPU 99 exists nowhere, so torch sees none even on a GPU machine
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "99", "SLURM_JOB_GPUS": "99"}
    argv = [sys.executable, "-m", "nph", "generate", f"models={tmp_path / 'models'}", "n=1", f"out={tmp_path}/o"]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2
    assert "device=auto: a GPU was assigned to this job (SLURM_JOB_GPUS=99, CUDA_VISIBLE_DEVICES=99)" in result.stderr
    assert not (tmp_path / "o").exists()  # refused before writing anything

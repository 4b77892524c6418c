"""Which torch device ``device=auto`` means, and the refusal when a scheduler gave a GPU torch cannot use.

A job that SLURM (or whoever set CUDA_VISIBLE_DEVICES) gave a GPU, run by a torch that sees none (a CPU wheel,
CUDA wheels newer than the driver, a container started without ``--nv``), would otherwise train on the CPU
for days and report nothing wrong. That is an error, named with what was assigned and what torch is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nph.errors import InputError

__all__ = ["GPU_VARIABLES", "assigned_gpus", "auto_device"]

#: Variables through which a scheduler says "this process has GPUs", in the order they are reported.
GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE", "CUDA_VISIBLE_DEVICES")
_NONE = ("", "-1", "none", "nodevfiles")  # "no GPU" spellings (Slurm writes NoDevFiles when it bound none)


def assigned_gpus(environ: Mapping[str, str]) -> dict[str, str]:
    """The GPU assignments in ``environ``: variable → value, for each that names at least one GPU."""
    found = {}
    for name in GPU_VARIABLES:
        value = environ.get(name, "").strip()
        if value.lower() in _NONE or (name == "SLURM_GPUS_ON_NODE" and value == "0"):
            continue
        found[name] = value
    return found


def auto_device(environ: Mapping[str, str], cuda_count: int | None = None) -> torch.device:
    """``cuda`` when torch sees a GPU; ``cpu`` when nobody assigned one; an error when one was assigned but
    torch sees none.

    Raises:
        InputError: SLURM or CUDA_VISIBLE_DEVICES assigned a GPU that torch cannot see.
    """
    count = torch.cuda.device_count() if cuda_count is None else cuda_count
    if count > 0:
        return torch.device("cuda")
    assigned = assigned_gpus(environ)
    if not assigned:
        return torch.device("cpu")
    named = ", ".join(f"{k}={v}" for k, v in assigned.items())
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    raise InputError(
        f"device=auto: a GPU was assigned to this job ({named}) but torch {torch.__version__} ({build}) sees none; "
        "check the driver (nvidia-smi; CUDA 12.x wheels need driver >= 525), apptainer --nv, and the torch wheel, "
        "or pass device=cpu to run on the CPU on purpose"
    )

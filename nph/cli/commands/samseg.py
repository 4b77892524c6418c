"""SAMSEG predictions (FreeSurfer's contrast-adaptive segmenter, in its own venv) on each reference image's grid.

`nph samseg input=DIR out=DIR [threads=N] [spacing_mm=2.5] [shard=k/K]` writes a prediction folder in SynthSeg ids
(labels.json) and samseg_cases.csv (grid, threads, seconds per case); finished cases are skipped on a rerun.
Install SAMSEG with `make install-samseg`; docs/samseg.md has the label table and the measured cost.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig

from nph.errors import InputError
from nph.segmentation.samseg import SamsegOptions, run_samseg
from nph.synthesis.shards import parse_shard

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    """Size threads from the allocation, then segment every image of ``input``."""
    threads = cfg.threads
    if threads is None:
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        threads = int(slurm) if slurm.isdigit() else (os.cpu_count() or 1)
    if int(threads) < 1:
        raise InputError(f"threads={threads}: must be at least 1")
    spacing = None if cfg.spacing_mm is None else float(cfg.spacing_mm)
    if spacing is not None and spacing <= 0:
        raise InputError(f"spacing_mm={cfg.spacing_mm}: must be positive (or null for the image's own grid)")
    opts = SamsegOptions(
        executable=cfg.executable,
        threads=int(threads),
        spacing_mm=spacing,
        extra_args=tuple(str(a) for a in cfg.extra_args),
        shard=parse_shard(cfg.shard),
        container=cfg.container,
        preset=str(cfg.preset),
        container_runtime=str(cfg.container_runtime),
    )
    run_samseg(opts, Path(cfg.input).expanduser().resolve(), Path(cfg.out).expanduser().resolve(), dict(os.environ))

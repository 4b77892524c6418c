"""SynthSeg predictions (where the user has SynthSeg) resampled to each reference image's grid.

`nph synthseg input=DIR out=DIR [robust=true] [container=IMAGE.sif]` writes a prediction folder (SynthSeg ids),
volumes.csv (hard volumes, then SynthSeg's soft ones) and qc.csv. See docs/synthseg.md for what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nph.segmentation.synthseg import options_from, run_synthseg

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    """Build the options, size threads from the allocation, and segment."""
    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)
    if settings.get("threads") is None:
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        settings["threads"] = int(slurm) if slurm.isdigit() else (os.cpu_count() or 1)
    opts = options_from({str(k): v for k, v in settings.items()})
    run_synthseg(opts, Path(cfg.input).expanduser().resolve(), Path(cfg.out).expanduser().resolve(),
                 dict(os.environ))

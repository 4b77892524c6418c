"""Sample label maps with a requested ventricle size from models/mask_ae + models/mask_dm.

    nph sample-masks models=DIR n=N out=DIR seed=S condition=0.5|[0,0.5,1.2]
        [guidance=3.0 guidance_interval=[0.2,0.9] sampler=dpmpp_2m steps=12 | sampling=ddim50]

Writes a labelled dataset folder of masks (no images) whose manifest records seed, index, requested
condition, guidance (scale and interval), sampler, steps and the realised ventricle fraction of every mask.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from nph.cli.options import guidance_interval
from nph.errors import InputError
from nph.sampling.masks import sample_masks

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Sample the masks and write the dataset folder."""
    condition = OmegaConf.to_container(cfg.condition) if OmegaConf.is_config(cfg.condition) else cfg.condition
    for key in ("n", "seed", "steps", "batch_size"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int):
            raise InputError(f"{key}: expected a whole number, got {cfg[key]!r}")
    if not isinstance(cfg.guidance, (int, float)) or isinstance(cfg.guidance, bool):
        raise InputError(f"guidance: expected a number, got {cfg.guidance!r}")
    manifest = sample_masks(
        Path(str(cfg.models)),
        Path(str(cfg.out)),
        cfg.n,
        cfg.seed,
        condition,  # type: ignore[arg-type]
        guidance=float(cfg.guidance),
        sampler=str(cfg.sampler),
        steps=cfg.steps,
        guidance_interval=guidance_interval(cfg),
        batch_size=cfg.batch_size,
    )
    fraction = manifest["ventricle_fraction"] * 100.0
    log.info("%s: %d masks, ventricles %.1f–%.1f %% of ICV", cfg.out, len(manifest), fraction.min(), fraction.max())

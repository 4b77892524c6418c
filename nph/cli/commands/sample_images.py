"""Paint an MRI onto every label map of a labelled dataset folder with the image LDM (a new dataset folder).

    nph sample-images models=DIR masks=DIR out=DIR seed=S [sampler=ddim|ddpm|rflow] [steps=50] [batch_size=4]

Case i of the masks gets noise seed SeedSequence([seed, i]), so batching never changes an image; the manifest
records seed, index, source mask case and the bundle digests; dataset.json holds the mask–image consistency.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from nph.cli.options import flag, integer, path, torch_device
from nph.sampling.diffusion import check_sampler
from nph.sampling.image_samples import sample_images

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Check the options, then generate and write the dataset."""
    sampler = str(cfg.sampler)
    check_sampler(sampler)
    manifest = sample_images(
        path(cfg, "models", must_exist=True), path(cfg, "masks", must_exist=True), path(cfg, "out"),
        seed=integer(cfg, "seed", minimum=0), sampler=sampler, steps=integer(cfg, "steps", minimum=1),
        batch_size=integer(cfg, "batch_size", minimum=1), device=torch_device(cfg),
        overwrite=flag(cfg, "overwrite"))
    log.info("%s: %d images written", cfg.out, len(manifest))

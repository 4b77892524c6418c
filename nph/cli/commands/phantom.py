"""Make NPH-like phantom heads (label map + FLAIR/T1 image) as a labelled dataset folder.

    nph phantom out=DIR n=20 seed=0 [ventricles=[0.0,1.0]] [contrast=flair|t1] [workers=2] [experiment=tiny]

Case i draws its ventricle enlargement (0 healthy … 1 NPH) and anatomy from SeedSequence([seed, i]), so
the same settings write the same bytes. A folder that holds another dataset is refused unless overwrite=true.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nph.cli.options import flag, integer, plain
from nph.data.phantoms import write_phantom_dataset
from nph.errors import InputError

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Write the phantom dataset and log where it went and its ventricle range."""
    manifest = write_phantom_dataset(
        Path(str(cfg.out)),
        integer(cfg, "n"),
        integer(cfg, "seed"),
        shape=plain(cfg, "shape"),
        spacing=plain(cfg, "spacing"),
        enlargement_range=_range(cfg),
        contrast=str(cfg.contrast),
        workers=integer(cfg, "workers"),
        overwrite=flag(cfg, "overwrite"),
    )
    fraction = manifest["ventricle_fraction"] * 100.0
    log.info("%s: %d phantoms, ventricles %.1f–%.1f %% of ICV, Evans index %.2f–%.2f", cfg.out, len(manifest),
             fraction.min(), fraction.max(), manifest["evans_index"].min(), manifest["evans_index"].max())


def _range(cfg: DictConfig) -> list[Any]:
    """``ventricles``: [low, high], or one number for a fixed enlargement."""
    value = plain(cfg, "ventricles")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value, value]
    if not isinstance(value, list):
        raise InputError(f"ventricles: expected [low, high] or one number, got {value!r}")
    return value

"""Make NPH-like phantom heads (label map + FLAIR/T1 image) as a labelled dataset folder.

    nph phantom out=DIR n=20 seed=0 [ventricles=[0.0,1.0]] [contrast=flair|t1] [workers=2] [experiment=tiny]

Case i draws its ventricle enlargement (0 healthy … 1 NPH) and anatomy from SeedSequence([seed, i]), so
the same settings write the same bytes. A folder that holds another dataset is refused unless overwrite=true.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from nph.data.phantoms import write_phantom_dataset
from nph.errors import InputError

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Write the phantom dataset and log where it went and its ventricle range."""
    manifest = write_phantom_dataset(
        Path(str(cfg.out)),
        _integer(cfg, "n"),
        _integer(cfg, "seed"),
        shape=_plain(cfg, "shape"),
        spacing=_plain(cfg, "spacing"),
        enlargement_range=_range(cfg),
        contrast=str(cfg.contrast),
        workers=_integer(cfg, "workers"),
        overwrite=_flag(cfg, "overwrite"),
    )
    fraction = manifest["ventricle_fraction"] * 100.0
    log.info("%s: %d phantoms, ventricles %.1f–%.1f %% of ICV, Evans index %.2f–%.2f", cfg.out, len(manifest),
             fraction.min(), fraction.max(), manifest["evans_index"].min(), manifest["evans_index"].max())


def _plain(cfg: DictConfig, key: str) -> Any:
    value = cfg[key]
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _integer(cfg: DictConfig, key: str) -> int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{key}: expected a whole number, got {value!r}")
    return value


def _flag(cfg: DictConfig, key: str) -> bool:
    value = cfg[key]
    if not isinstance(value, bool):
        raise InputError(f"{key}: expected true or false, got {value!r}")
    return value


def _range(cfg: DictConfig) -> list[Any]:
    """``ventricles``: [low, high], or one number for a fixed enlargement."""
    value = _plain(cfg, "ventricles")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value, value]
    if not isinstance(value, list):
        raise InputError(f"ventricles: expected [low, high] or one number, got {value!r}")
    return value

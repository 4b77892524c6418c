"""Import Ruschke's trained models (monai-generative 0.2.x checkpoints) as nph bundles for `nph generate`.

    nph import-thesis out=DIR checkpoints.mask_ae=F checkpoints.mask_dm=F checkpoints.image_ae=F
        checkpoints.image_dm=F orientation=IPL mask_scale_factor=X image_scale_factor=Y condition.min=A condition.max=B
    (mask and image models trained on different array layouts: mask_orientation=IPL image_orientation=IAR instead)

Every tensor of each checkpoint must be used and every network weight set (else exit 2 naming the keys);
checkpoints are read with torch.load(weights_only=True). Network sizes and grid come from experiment=thesis.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from nph.cli.options import number, path, plain
from nph.errors import InputError
from nph.models.thesis_import import KINDS, ThesisSettings, import_thesis

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Convert the four checkpoints and write the bundles."""
    settings = ThesisSettings(
        networks={kind: plain(cfg[kind], "network") for kind in KINDS},
        noise={kind: plain(cfg[kind], "noise") for kind in ("mask_dm", "image_dm")},
        shape=tuple(int(s) for s in cfg.grid.shape),  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in cfg.grid.spacing),  # type: ignore[arg-type]
        orientation=_orientation(cfg, "orientation"),
        mask_scale_factor=number(cfg, "mask_scale_factor", minimum=0.0),
        image_scale_factor=number(cfg, "image_scale_factor", minimum=0.0),
        condition_min=number(cfg.condition, "min"),
        condition_max=number(cfg.condition, "max"),
        mask_orientation=_orientation(cfg, "mask_orientation"),
        image_orientation=_orientation(cfg, "image_orientation"),
    )
    sources = {kind: path(cfg.checkpoints, kind) for kind in KINDS}  # read_checkpoint names a missing one
    folders = import_thesis(path(cfg, "out"), sources, settings)
    log.info("imported %d thesis networks into %s (nph generate models=%s)", len(folders), cfg.out, cfg.out)


def _orientation(cfg: DictConfig, key: str) -> str | None:
    """Axis codes under ``key``, or None where not given (``orientation`` covers the models without their own)."""
    value = cfg.get(key)
    if value is not None and not isinstance(value, str):
        raise InputError(f"{key}: expected axis codes such as IPL or RAS, got {value!r}")
    return value

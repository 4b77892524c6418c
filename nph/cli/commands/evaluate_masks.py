"""Conditioning fidelity of sampled masks: requested vs realised ventricle fraction (r, MAE, bins, plot).

    nph evaluate-masks masks=DIR [out=DIR]

Writes fidelity.json and fidelity.png; this is the number that says whether "guided" works.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from nph.sampling.fidelity import evaluate_mask_fidelity

__all__ = ["run"]

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> None:
    """Compute and write the fidelity report."""
    result = evaluate_mask_fidelity(Path(str(cfg.masks)), Path(str(cfg.out)))
    log.info("fidelity over %d masks: pearson r %s, MAE %s (normalised units)", result["n"], result["pearson_r"],
             result["mae"])

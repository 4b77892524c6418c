"""Score ventricle segmentations of several methods against reference labels; write the benchmark and report.

    nph evaluate reference=DIR 'predictions={nnunet: DIR, synthseg: DIR}' out=DIR [baseline=synthseg]

Per case, method and ventricle structure: Dice, HD95, ASSD, NSD, volumes and their errors, Evans index;
per method: mean ± SD, median/IQR, volume MAE, Bland–Altman, ICC(2,1), Wilcoxon against the baseline
(Holm-corrected) with bootstrap CIs. Writes OUT/per_case.csv, summary.json, report.html, report.md; prediction
folders holding training_curve.csv (nnU-Net's) add the learning curves.
A method that finds nothing gets the worst-case HD95/ASSD (the field of view's diagonal), not NaN. For a
ventricle-only reference the Evans index's skull width comes from the test images (the reference's imagesTr/
or images=DIR) less evans.scalp_mm of scalp and bone a side (docs/benchmark.md).
"""

from __future__ import annotations

import sys

from omegaconf import DictConfig, OmegaConf

from nph.errors import InputError
from nph.evaluation.benchmark import run_benchmark

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    """Check the settings, then score, summarise and report."""
    predictions = cfg.predictions
    if not OmegaConf.is_dict(predictions):
        raise InputError(f"predictions: expected {{name: DIR, ...}}, got {predictions!r}")
    schemes = cfg.schemes if cfg.schemes is not None else {}
    if not isinstance(schemes, dict) and not OmegaConf.is_dict(schemes):
        raise InputError(f"schemes: expected {{name: scheme, ...}}, got {cfg.schemes!r}")
    tolerance = float(cfg.tolerance_mm)
    if not tolerance >= 0:
        raise InputError(f"tolerance_mm: must be ≥ 0, got {cfg.tolerance_mm}")
    scalp = float(cfg.evans.scalp_mm)
    if not scalp >= 0:
        raise InputError(f"evans.scalp_mm: must be ≥ 0, got {cfg.evans.scalp_mm}")
    if int(cfg.bootstrap.n) < 1:
        raise InputError(f"bootstrap.n: must be ≥ 1, got {cfg.bootstrap.n}")
    run_benchmark(
        cfg.reference,
        {str(k): str(v) for k, v in predictions.items()},
        cfg.out,
        reference_scheme=cfg.reference_scheme,
        schemes={str(k): str(v) for k, v in schemes.items()},
        baseline=None if cfg.baseline is None else str(cfg.baseline),
        tolerance_mm=tolerance,
        images=None if cfg.images is None else str(cfg.images),
        scalp_mm=scalp,
        n_boot=int(cfg.bootstrap.n),
        seed=int(cfg.bootstrap.seed),
        command=["nph", *sys.argv[1:]],
    )

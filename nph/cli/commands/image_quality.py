"""Generation quality of a synthetic dataset against a real one: FID, MMD, MS-SSIM, intensities, fidelity.

    nph image-quality real=DIR synthetic=DIR out=DIR [fid.weights=resnet_50_23dataset.pth]

FID uses MedicalNet 3D ResNet-50 features from fid.weights or $PRETRAINED_MODEL_DIRECTORY — never an
untrained network. Writes OUT/image_quality.json and OUT/intensity_stats.csv.
"""

from __future__ import annotations

import itertools
import os

from omegaconf import DictConfig

from nph.errors import InputError
from nph.evaluation.features import spec_from
from nph.evaluation.image_quality import QualityOptions, image_quality

__all__ = ["run"]

WEIGHTS_DIR_ENV = "PRETRAINED_MODEL_DIRECTORY"


def _positive(cfg: DictConfig, key: str) -> int:
    value = cfg
    for part in key.split("."):
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _normalisation(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    pair = list(value)  # type: ignore[call-overload]
    if len(pair) != 2 or not float(pair[1]) > float(pair[0]):
        raise InputError(f"fidelity.normalisation: expected [lo, hi] with hi > lo, got {pair}")
    return float(pair[0]), float(pair[1])


def _bins(value: object) -> list[float]:
    edges = [float(b) for b in value]  # type: ignore[attr-defined]
    if len(edges) < 2 or any(b <= a for a, b in itertools.pairwise(edges)):
        raise InputError(f"fidelity.bins: expected at least two increasing edges, got {edges}")
    return edges


def run(cfg: DictConfig) -> None:
    """Check the settings, then measure and write."""
    network = cfg.fid.network
    options = QualityOptions(
        weights=cfg.fid.weights, weights_dir=os.environ.get(WEIGHTS_DIR_ENV),
        network=spec_from(str(network.block), list(network.layers), list(network.block_inplanes)),
        max_images=_positive(cfg, "max_images"), ms_ssim_pairs=_positive(cfg, "ms_ssim_pairs"),
        batch_size=_positive(cfg, "fid.batch_size"), seed=int(cfg.seed),
        fidelity_bins=_bins(cfg.fidelity.bins), fidelity_normalisation=_normalisation(cfg.fidelity.normalisation),
    )
    image_quality(cfg.real, cfg.synthetic, cfg.out, options)

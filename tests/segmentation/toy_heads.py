"""Phantom heads on the tiny grid (nph.data.phantoms), written as labelled dataset folders for these tests.

Case ids are ``<prefix><i:03d>``; each case draws its enlargement from ``seed`` so datasets mix healthy and
NPH-like ventricles. ``images=False`` writes label maps only (what the mask model samples).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.phantoms import make_phantom

__all__ = ["SHAPE", "SPACING", "toy_case", "write_toy_dataset"]

SHAPE = (32, 48, 32)
SPACING = (5.0, 4.667, 5.0)


def toy_case(seed: int, enlargement: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label ids, FLAIR image, affine) of one tiny phantom."""
    phantom = make_phantom(seed, shape=SHAPE, spacing=SPACING, enlargement=enlargement, contrast="flair")
    return phantom.label_ids, phantom.image, phantom.affine


def write_toy_dataset(out: Path, n: int, seed: int, *, images: bool = True, prefix: str = "case") -> Path:
    """A labelled dataset folder of ``n`` tiny phantoms, enlargement uniform in [0, 1] from ``seed``."""
    paths = DatasetPaths(out)
    enlargements = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    rows = []
    for i, enlargement in enumerate(enlargements):
        labels, image, affine = toy_case(seed * 1000 + i, float(enlargement))
        rows.append(write_case(paths, f"{prefix}{i:03d}", labels, affine, image if images else None,
                               {"source": "phantom", "seed": seed, "enlargement": float(enlargement)}))
    finalize(paths, rows, modality="FLAIR")
    return out

"""Helpers of the image-model tests (a uniquely named module: every test folder has its own conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nph.cli.main import main

#: Phantoms the tiny image model trains on (experiment=tiny grid, 32×48×32 at ~5 mm).
TRAIN_CASES = 6


@dataclass(frozen=True)
class TrainedImageModel:
    """Paths of the phantom dataset and the models folder holding image_ae/ and image_dm/ bundles."""

    data: Path
    models: Path


def nph(*args: str) -> None:
    """Run ``nph`` in-process and fail the caller with the command line if it does not succeed."""
    status = main(list(args))
    assert status == 0, f"nph {' '.join(args)} exited with {status}"

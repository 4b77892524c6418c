"""Tiny FLAIR-like phantoms and an image LDM trained on them for real, once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_fixtures import TRAIN_CASES, TrainedImageModel, nph


@pytest.fixture(scope="session")
def flair_phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("image") / "phantoms"
    nph("phantom", f"out={data}", f"n={TRAIN_CASES}", "seed=0", "contrast=flair", "experiment=tiny")
    return data


@pytest.fixture(scope="session")
def trained_image_model(flair_phantoms: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedImageModel:
    """``nph train stage=image_ae`` then ``stage=image_dm`` at experiment=tiny, as a user would run them."""
    models = tmp_path_factory.mktemp("image_models")
    for stage in ("image_ae", "image_dm"):
        nph("train", f"stage={stage}", f"data={flair_phantoms}", f"models={models}", "experiment=tiny",
            "wandb.mode=disabled")
    return TrainedImageModel(flair_phantoms, models)

"""Labelled dataset folders for the segmentation tests (built from :mod:`toy_heads`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from toy_heads import write_toy_dataset


@pytest.fixture(scope="session")
def toy_real(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("real") / "real", 6, seed=1)


@pytest.fixture(scope="session")
def toy_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_toy_dataset(tmp_path_factory.mktemp("synth") / "synth", 8, seed=2)

"""A tiny mask LDM trained for real once per session: phantoms → mask_ae → mask_dm (through the CLI).

It is experiment=tiny unchanged (24 phantoms on the 32×48×32 grid; about 2 + 1.5 minutes on 2 idle CPU
cores), so what these tests measure (reconstruction Dice, guidance fidelity) is what a user gets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_mask_ldm import AE, DM, GRID

from nph.cli.main import main


@pytest.fixture(scope="session")
def mask_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/data`` (24 phantoms) and ``root/models/{mask_ae,mask_dm}`` trained on it."""
    root = tmp_path_factory.mktemp("mask_ldm")
    data, models = root / "data", root / "models"
    assert main(["phantom", f"out={data}", "n=24", "seed=0", *GRID]) == 0
    assert main(["train", "stage=mask_ae", f"data={data}", f"models={models}", *GRID, *AE]) == 0
    assert main(["train", "stage=mask_dm", f"data={data}", f"models={models}", *GRID, *DM]) == 0
    return root

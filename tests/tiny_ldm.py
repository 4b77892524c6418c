"""The smallest complete nph generator: four tiny models trained for real on a 16×24×16 phantom grid.

Used by the synthesis and launcher tests, which need trained bundles but not good ones. Overrides only:
the code path is `nph phantom` + `nph train` as a user runs them.
"""

from __future__ import annotations

from pathlib import Path

from nph.cli.main import main

GRID = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]
STAGES = {
    "mask_ae": ["mask_ae.network.channels=[16,32]", "mask_ae.train.max_steps=30"],
    "mask_dm": ["mask_dm.network.channels=[16,32]", "mask_dm.network.attention_levels=[false,true]",
                "mask_dm.train.max_steps=30"],
    "image_ae": ["image_ae.network.channels=[8,16]", "image_ae.train.max_steps=20", "image_ae.loss.adv_start=10"],
    "image_dm": ["image_dm.network.channels=[16,32]", "image_dm.network.attention=[false,true]",
                 "image_dm.network.num_head_channels=[0,16]", "image_dm.train.max_steps=20"],
}


def train_tiny_ldm(root: Path) -> Path:
    """Phantoms in ``root/data``, the four bundles in ``root/models``; returns the models folder."""
    data, models = root / "data", root / "models"
    assert main(["phantom", f"out={data}", "n=12", "seed=0", *GRID]) == 0
    for stage, overrides in STAGES.items():
        argv = ["train", f"stage={stage}", f"data={data}", f"models={models}", "wandb.mode=disabled", *GRID]
        assert main([*argv, *overrides]) == 0, f"nph train stage={stage} failed"
    return models

"""Overrides of the session's tiny mask LDM (see conftest.py), shared by the tests of this folder."""

from __future__ import annotations

GRID = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]
AE = ["mask_ae.network.channels=[16,32]", "mask_ae.train.max_steps=150", "wandb.mode=disabled"]
DM = ["mask_dm.network.channels=[16,32]", "mask_dm.network.attention_levels=[false,true]",
      "mask_dm.train.max_steps=400", "wandb.mode=disabled"]

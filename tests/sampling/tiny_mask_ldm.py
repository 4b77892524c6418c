"""Overrides of the session's tiny mask LDM (see conftest.py), shared by the tests of this folder."""

from __future__ import annotations

GRID = ["experiment=tiny"]  # experiment=tiny as it is: 32×48×32 phantoms, ×4 autoencoder, latent 3×8×12×8
AE = ["wandb.mode=disabled"]
DM = ["wandb.mode=disabled"]

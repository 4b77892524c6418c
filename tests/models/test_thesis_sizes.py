"""The thesis configs build real networks: shapes and parameter counts checked on the meta device (no memory)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from nph.models.mask_ae import build_mask_ae
from nph.models.mask_dm import build_mask_unet
from nph.models.noise import build_scheduler

EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiment"


def _section(experiment: str, stage: str) -> dict:
    return yaml.safe_load((EXPERIMENTS / f"{experiment}.yaml").read_text())[stage]


def test_thesis_mask_autoencoder_latent_and_size():
    with torch.device("meta"):
        ae = build_mask_ae(_section("thesis", "mask_ae")["network"])
        mu, sigma = ae.encode(torch.zeros(2, 96, 128, 96, dtype=torch.long))
        logits = ae.decode(mu)
    assert tuple(mu.shape) == tuple(sigma.shape) == (2, 3, 24, 32, 24)
    assert tuple(logits.shape) == (2, 33, 96, 128, 96)
    count = sum(p.numel() for p in ae.parameters())
    assert count == 9_505_544  # embedding 33×64 + AutoencoderKL (64, 128, 128), 2 res blocks, no attention


def test_thesis_mask_unet_shapes_and_size():
    with torch.device("meta"):
        unet = build_mask_unet(_section("thesis", "mask_dm")["network"], latent_channels=3)
        out = unet(torch.zeros(8, 3, 24, 32, 24), timesteps=torch.zeros(8), context=torch.zeros(8, 1, 2))
    assert tuple(out.shape) == (8, 3, 24, 32, 24)
    count = sum(p.numel() for p in unet.parameters())
    assert count == 553_112_579  # (256, 512, 768) in 3D: the 768-channel 3³ convolutions dominate
    assert 4e8 < count < 7e8


def test_tiny_networks_are_a_few_hundred_thousand_parameters():
    ae = build_mask_ae(_section("tiny", "mask_ae")["network"])
    unet = build_mask_unet(_section("tiny", "mask_dm")["network"], latent_channels=3)
    assert 3e4 < sum(p.numel() for p in ae.parameters()) < 1e6
    assert 1e5 < sum(p.numel() for p in unet.parameters()) < 1e6


def test_thesis_noise_schedule():
    scheduler = build_scheduler(_section("thesis", "mask_dm")["noise"])
    assert scheduler.num_train_timesteps == 1000
    assert float(scheduler.betas[0]) == pytest.approx(0.0015) and float(scheduler.betas[-1]) == pytest.approx(0.0205)

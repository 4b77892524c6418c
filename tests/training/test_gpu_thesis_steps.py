"""Thesis-size mask models for a few bf16 steps on a GPU: step time and peak memory (logged, and bounded)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import torch
import yaml

from nph.models.mask_ae import MaskAETask, build_mask_ae
from nph.models.mask_dm import MaskDMTask, build_mask_unet
from nph.training import Engine, EngineConfig, Precision

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
THESIS = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/experiment/thesis.yaml").read_text())
log = logging.getLogger(__name__)


def _steps(task, examples, tmp_path, batch_size):
    cfg = EngineConfig(max_steps=4, batch_size=batch_size, lr=1e-5, precision=Precision.AUTO, checkpoint_every=1000)
    engine = Engine(task, examples, cfg, tmp_path)
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = engine()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / cfg.max_steps
    peak = torch.cuda.max_memory_allocated() / 2**30
    return engine, result, seconds, peak


def test_thesis_mask_autoencoder_bf16_steps(tmp_path):
    net = build_mask_ae(THESIS["mask_ae"]["network"])
    examples = [{"labels": torch.randint(0, 33, (96, 128, 96))} for _ in range(2)]
    engine, result, seconds, peak = _steps(MaskAETask(net, 1e-6), examples, tmp_path, batch_size=2)
    log.warning("thesis mask_ae: %.3f s/step, peak %.1f GiB, precision %s", seconds, peak, engine.precision.value)
    assert engine.precision in (Precision.BF16, Precision.FP16)
    assert all(torch.isfinite(torch.tensor(result.losses)))


def test_thesis_mask_unet_bf16_steps(tmp_path):
    section = THESIS["mask_dm"]
    net = build_mask_unet(section["network"], latent_channels=3)
    examples = [{"mu": torch.randn(3, 24, 32, 24), "sigma": torch.full((3, 24, 32, 24), 0.1),
                 "condition": torch.tensor(0.5)} for _ in range(8)]
    engine, result, seconds, peak = _steps(MaskDMTask(net, section["noise"], 0.2), examples, tmp_path, batch_size=8)
    log.warning("thesis mask_dm: %.3f s/step, peak %.1f GiB, precision %s", seconds, peak, engine.precision.value)
    assert all(torch.isfinite(torch.tensor(result.losses)))
    assert peak < 78

"""Samples/s per GPU and model-FLOP utilisation of nph's sampling path at thesis size, bf16.

The four networks are built from configs/experiment/thesis.yaml by the same factories ``nph train`` uses,
with random weights (throughput does not depend on the weights), and sampled by the functions
:class:`nph.synthesis.ldm_sampler.LdmPairSampler` calls: ``sample_mask_batch`` (DDIM 50, guidance 3, CFG
batched) then ``paint_images``; disk is left out (it is measured on CPU in test_generate_throughput.py).
FLOPs per sample are counted with ``torch.utils.flop_counter`` on the eager networks; MFU is against the
H100 SXM dense-BF16 ceiling in ../shared/REFERENCES.md (989 TFLOP/s). Batch 1, 8, 32, eager and
``torch.compile`` (U-Nets compiled; the first, compiling round is a warm-up round).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from nph.models.image_ae import build_image_ae, downsampling_of
from nph.models.image_dm import build_image_dm
from nph.models.mask_ae import build_mask_ae
from nph.models.mask_dm import build_mask_unet
from nph.sampling.cost import pair_flops
from nph.sampling.defaults import DEFAULT, SamplingSettings
from nph.sampling.masks import MaskModel, sample_mask_batch
from nph.sampling.pairing import ImageModel, paint_images
from nph.seeds import image_seed, sample_seed

THESIS = Path(__file__).resolve().parents[1] / "configs" / "experiment" / "thesis.yaml"
#: H100 SXM dense BF16 (REFERENCES.md, "Physical limits").
PEAK_FLOPS = 989e12
MFU_GOAL = 0.30
SEED, GUIDANCE, STEPS, CONDITION = 0, 3.0, 50, 0.8

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU: thesis-size sampling is measured against the H100 bf16 ceiling",
    ),
]


def build_models(config: Path, device: torch.device) -> tuple[MaskModel, ImageModel]:
    """Mask and image LDMs of an experiment config (random weights), ready for the sampling functions."""
    cfg = yaml.safe_load(config.read_text())
    shape = [int(s) for s in cfg["grid"]["shape"]]
    mask_ae = build_mask_ae(cfg["mask_ae"]["network"])
    latent_shape = [int(cfg["mask_ae"]["network"]["latent_channels"]), *(s // mask_ae.downsampling for s in shape)]
    mask_unet = build_mask_unet(cfg["mask_dm"]["network"], latent_shape[0])
    meta = {
        "latent_shape": latent_shape,
        "latent_scale_factor": 1.0,
        "shape": shape,
        "affine": np.diag([*cfg["grid"]["spacing"], 1.0]).tolist(),
        "condition": {"min": 0.0, "max": 1.0},
    }
    masks = MaskModel(
        mask_ae.to(device).eval().requires_grad_(False),
        mask_unet.to(device).eval().requires_grad_(False),
        meta,
        dict(cfg["mask_dm"]["noise"]),
        {},
        device,
    )
    image_net = cfg["image_ae"]["network"]
    channels = int(image_net["latent_channels"])
    images = ImageModel(
        build_image_ae(image_net).to(device).eval().requires_grad_(False),
        build_image_dm(cfg["image_dm"]["network"], channels).to(device).eval().requires_grad_(False),
        1.0,
        dict(cfg["image_dm"]["noise"]),
        downsampling_of(image_net),
        channels,
        {},
        tuple(shape),
        tuple(float(s) for s in cfg["grid"]["spacing"]),
    )  # type: ignore[arg-type]
    return masks, images


def sample_pairs(
    masks: MaskModel, images: ImageModel, batch: int, steps: int = STEPS, settings: SamplingSettings | None = None
) -> np.ndarray:
    """One batch through the generate path's two sampling calls; returns the images (B, X, Y, Z).

    ``settings`` defaults to DDIM ``steps`` steps, guidance 3 on every step (the pre-issue-15 default).
    """
    chosen = settings or SamplingSettings("ddim", steps, GUIDANCE)
    seeds = [sample_seed(SEED, i) for i in range(batch)]
    labels = sample_mask_batch(
        masks,
        seeds,
        [CONDITION] * batch,
        guidance=chosen.guidance,
        sampler=chosen.sampler,
        steps=chosen.steps,
        guidance_interval=chosen.guidance_interval,
    )
    return paint_images(
        images,
        labels,
        [image_seed(SEED, i) for i in range(batch)],
        sampler=chosen.sampler,
        steps=chosen.steps,
        batch_size=batch,
    )


def flops_per_sample(masks: MaskModel, images: ImageModel, steps: int = STEPS) -> float:
    """Model FLOPs of one sample at ``steps`` steps: counted at 1 and 2 steps, so per-step and fixed costs separate."""
    counts = []
    for counted_steps in (1, 2):
        with FlopCounterMode(display=False) as counter:
            sample_pairs(masks, images, 1, counted_steps)
        counts.append(counter.get_total_flops())
    return float(counts[0] + (steps - 1) * (counts[1] - counts[0]))


def network_flops(config: Path, steps: int = STEPS) -> dict[str, float]:
    """FLOPs per sample of each network at DDIM ``steps`` steps, guidance 3 (mask U-Net: 2 passes per step),
    counted on meta tensors by :func:`nph.sampling.cost.pair_flops` (needs neither memory nor a GPU)."""
    flops = pair_flops(yaml.safe_load(config.read_text()), SamplingSettings("ddim", steps, GUIDANCE))
    return {network: value for network, value in flops.items() if network != "total"}


@pytest.fixture(scope="module")
def thesis_flops() -> float:
    masks, images = build_models(THESIS, torch.device("cuda"))
    flops = flops_per_sample(masks, images)
    del masks, images
    torch.cuda.empty_cache()
    return flops


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compile"])
@pytest.mark.parametrize("batch", [1, 8, 32])
def test_thesis_samples_per_second(
    benchmark: Any, thesis_flops: float, batch: int, compiled: bool, record_figures: Any
) -> None:
    """Samples/s and MFU of one GPU at thesis size; reports, asserts only that work was done."""
    masks, images = build_models(THESIS, torch.device("cuda"))
    if compiled:
        torch.compiler.reset()  # each batch size compiles afresh, so its warm-up round is the compilation
        masks.unet = torch.compile(masks.unet)
        images.unet = torch.compile(images.unet)
    seconds: list[float] = []

    def one_batch() -> np.ndarray:
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = sample_pairs(masks, images, batch)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        return out

    try:
        out = benchmark.pedantic(one_batch, rounds=3, warmup_rounds=1, iterations=1)
    except torch.OutOfMemoryError:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        pytest.skip(f"batch {batch} at thesis size does not fit in this GPU's {total:.0f} GiB")
    per_second = batch / float(np.median(seconds[1:]))  # the first round is the warm-up (compilation)
    figures = {
        "device": torch.cuda.get_device_name(0),
        "batch": batch,
        "compiled": compiled,
        "samples_per_s": per_second,
        "tflop_per_sample": thesis_flops / 1e12,
        "mfu": thesis_flops * per_second / PEAK_FLOPS,
        "mfu_goal": MFU_GOAL,
    }
    benchmark.extra_info.update(figures)
    record_figures(figures)
    assert out.shape == (batch, *images.shape) and np.isfinite(out).all()  # type: ignore[misc]
    # the end-to-end count (on the GPU, bf16) agrees with the per-network count on meta tensors
    assert thesis_flops == pytest.approx(sum(network_flops(THESIS).values()), rel=0.1)


def counted_flops(masks: MaskModel, images: ImageModel, settings: SamplingSettings) -> float:
    """Model FLOPs of one whole sample (batch 1) at ``settings``, counted while it runs."""
    with FlopCounterMode(display=False) as counter:
        sample_pairs(masks, images, 1, settings=settings)
    return float(counter.get_total_flops())


@pytest.mark.parametrize("batch", [8, 32])
def test_default_sampler_samples_per_second(benchmark: Any, batch: int, record_figures: Any) -> None:
    """Samples/s and MFU of the default sampler (nph.sampling.defaults.DEFAULT) at thesis size, eager."""
    masks, images = build_models(THESIS, torch.device("cuda"))
    flops = counted_flops(masks, images, DEFAULT)
    seconds: list[float] = []

    def one_batch() -> np.ndarray:
        torch.cuda.synchronize()
        start = time.perf_counter()
        out = sample_pairs(masks, images, batch, settings=DEFAULT)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
        return out

    out = benchmark.pedantic(one_batch, rounds=3, warmup_rounds=1, iterations=1)
    per_second = batch / float(np.median(seconds[1:]))
    figures = {
        "device": torch.cuda.get_device_name(0),
        "settings": str(DEFAULT),
        "batch": batch,
        "samples_per_s": per_second,
        "tflop_per_sample": flops / 1e12,
        "mfu": flops * per_second / PEAK_FLOPS,
        "h100_hours_per_100k": 1e5 / per_second / 3600,
    }
    benchmark.extra_info.update(figures)
    record_figures(figures)
    assert out.shape == (batch, *images.shape) and np.isfinite(out).all()  # type: ignore[misc]
    assert flops == pytest.approx(pair_flops(yaml.safe_load(THESIS.read_text()), DEFAULT)["total"], rel=0.1)

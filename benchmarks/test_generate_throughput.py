"""Samples/s of ``nph generate``'s path against the naive MONAI path, on the same tiny networks, same run.

Fast path: :func:`nph.synthesis.generate.generate_shard` with :class:`LdmPairSampler` — DDIM 50 steps, batch 8,
classifier-free guidance batched into one forward pass, NIfTI written by the background writer (gzip level 1).
Naive path, per sample: MONAI's ``LatentDiffusionInferer`` with a 1000-step ``DDPMScheduler`` for the mask
latent (conditioning passed as ``conditioning=``, no guidance), the mask AE's decoder, a second inferer for
the image (SPADE ``seg=``), batch 1, both files written synchronously with gzip level 9.
The naive path skips guidance, i.e. it does half the U-Net work per mask step the fast path does, so the
ratio understates the speed-up. Sample counts: NPH_BENCH_NAIVE (default 2) and NPH_BENCH_FAST (default 16).
Also: seconds to compress and write one thesis-size pair at gzip 1 and 9 (what the writer threads must sustain).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.inferers import LatentDiffusionInferer

from nph.data.dataset import DatasetPaths
from nph.data.labels import contiguous_to_ids, ids_to_contiguous
from nph.data.phantoms import make_phantom
from nph.io.nifti import save_volume
from nph.models.image_ae import one_hot_seg
from nph.models.mask_dm import make_context
from nph.models.noise import build_scheduler
from nph.sampling.masks import MaskModel, load_mask_model
from nph.sampling.pairing import ImageModel, load_image_model
from nph.seeds import image_seed, sample_seed
from nph.synthesis.conditions import ConditionSpec, draw_condition
from nph.synthesis.generate import generate_shard
from nph.synthesis.ldm_sampler import LdmPairSampler
from nph.synthesis.records import SynthesisPaths
from nph.synthesis.shards import Shard, case_id_for

SEED = 0
NAIVE_SAMPLES = int(os.environ.get("NPH_BENCH_NAIVE", "2"))
FAST_SAMPLES = int(os.environ.get("NPH_BENCH_FAST", "16"))
FAST = {"guidance": 3.0, "sampler": "ddim", "steps": 50, "batch_size": 8, "writer_threads": 2}
NAIVE_STEPS = 1000
CPU = torch.device("cpu")
#: One H100's samples/s at the bf16 ceiling, Pinaya-size sample (REFERENCES.md): the most a writer must keep up with.
GPU_CEILING_SAMPLES_PER_S = 11.0


def _naive_mask(model: MaskModel, condition: float, noise_seed: int) -> np.ndarray:
    """One contiguous label map from the mask LDM through MONAI's inferer, DDPM 1000 steps, batch 1."""
    scheduler = build_scheduler(model.noise, "ddpm")
    scheduler.set_timesteps(NAIVE_STEPS)
    inferer = LatentDiffusionInferer(scheduler, scale_factor=float(model.meta["latent_scale_factor"]))
    generator = torch.Generator().manual_seed(noise_seed)
    noise = torch.randn((1, *model.meta["latent_shape"]), generator=generator)
    value = torch.tensor([condition], dtype=torch.float32)
    torch.manual_seed(noise_seed)  # the DDPM steps draw from the global generator
    logits = inferer.sample(
        noise,
        autoencoder_model=model.ae.autoencoder,
        diffusion_model=model.unet,
        scheduler=scheduler,
        conditioning=make_context(value, torch.ones_like(value)),
        mode="crossattn",
        verbose=False,
    )
    return logits.float().argmax(1)[0].numpy()  # type: ignore[union-attr]


def _naive_image(model: ImageModel, contiguous: np.ndarray, noise_seed: int) -> np.ndarray:
    """The image for one label map through MONAI's inferer (SPADE ``seg=``), DDPM 1000 steps, batch 1."""
    scheduler = build_scheduler(model.noise, "ddpm")
    scheduler.set_timesteps(NAIVE_STEPS)
    inferer = LatentDiffusionInferer(scheduler, scale_factor=model.scale_factor)
    latent_shape = (model.latent_channels, *(s // model.downsampling for s in contiguous.shape))
    noise = torch.randn((1, *latent_shape), generator=torch.Generator().manual_seed(noise_seed))
    seg = one_hot_seg(torch.as_tensor(contiguous)[None])
    torch.manual_seed(noise_seed)
    image = inferer.sample(
        noise,
        autoencoder_model=model.autoencoder,
        diffusion_model=model.unet,
        scheduler=scheduler,
        seg=seg,
        verbose=False,
    )
    return image.float().clamp(0, 1)[0, 0].numpy()  # type: ignore[union-attr]


def run_naive(models: Path, out: Path, n: int) -> dict[str, float]:
    """Make ``n`` pairs the naive way; returns wall seconds (without model loading) and seconds spent writing."""
    masks, images = load_mask_model(models, CPU), load_image_model(models, CPU)
    affine = np.asarray(masks.meta["affine"], dtype=np.float64)
    paths, conditions = DatasetPaths(out), ConditionSpec()
    start, writing = time.perf_counter(), 0.0
    with torch.inference_mode():
        for index in range(n):
            contiguous = _naive_mask(masks, draw_condition(conditions, SEED, index), sample_seed(SEED, index))
            contiguous_to_ids(contiguous)  # the same label-set check the fast path makes
            image = _naive_image(images, contiguous, image_seed(SEED, index))
            written = time.perf_counter()
            save_volume(paths.image(case_id_for(index)), image, affine, compresslevel=9)
            save_volume(paths.label(case_id_for(index)), contiguous.astype(np.uint8), affine, compresslevel=9)
            writing += time.perf_counter() - written
    return {"seconds": time.perf_counter() - start, "write_seconds": writing}


@pytest.fixture(scope="module")
def naive(ldm_models: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """The naive path's figures, measured once per run before the fast path."""
    timing = run_naive(ldm_models, tmp_path_factory.mktemp("naive"), NAIVE_SAMPLES)
    return {**timing, "samples": NAIVE_SAMPLES, "samples_per_s": NAIVE_SAMPLES / timing["seconds"]}


def test_generate_vs_naive(
    benchmark: Any, ldm_models: Path, naive: dict[str, float], tmp_path: Path, record_figures: Any
) -> None:
    """Fast path samples/s, its ratio to the naive path's, and the share of wall time it waits on disk."""
    sampler = LdmPairSampler(
        ldm_models, seed=SEED, guidance=FAST["guidance"], sampler=FAST["sampler"], steps=FAST["steps"], device=CPU
    )
    runs = iter(range(1_000_000))

    def fast() -> Any:
        out = SynthesisPaths(tmp_path / f"fast_{next(runs)}")
        return generate_shard(
            sampler,
            out,
            n=FAST_SAMPLES,
            seed=SEED,
            shard=Shard(),
            conditions=ConditionSpec(),
            batch_size=FAST["batch_size"],
            writer_threads=FAST["writer_threads"],
            provenance=sampler.provenance,
        )

    report = benchmark.pedantic(fast, rounds=1, iterations=1)
    speedup = report.samples_per_second / naive["samples_per_s"]
    figures = {
        "fast_samples": report.generated,
        "fast_samples_per_s": report.samples_per_second,
        "naive_samples": int(naive["samples"]),
        "naive_samples_per_s": naive["samples_per_s"],
        "speedup": speedup,
        "speedup_goal": 20.0,
        "disk_wait_share": report.disk_wait_seconds / report.seconds,
        "disk_wait_share_goal": 0.05,
        "naive_write_share": naive["write_seconds"] / naive["seconds"],
        "grid": "x".join(str(int(s)) for s in sampler.masks.meta["shape"]),
        "torch_threads": torch.get_num_threads(),
        "fast": f"ddim {FAST['steps']} steps, guidance {FAST['guidance']}, batch {FAST['batch_size']}, gzip 1",
        "naive": f"ddpm {NAIVE_STEPS} steps, no guidance, batch 1, gzip 9 synchronous",
    }
    benchmark.extra_info.update(figures)
    record_figures(figures)
    assert report.generated == FAST_SAMPLES
    assert speedup > 1.0, f"fast path {report.samples_per_second:.3f}/s is not faster than naive"
    assert 0.0 <= figures["disk_wait_share"] < 1.0


@pytest.fixture(scope="module")
def thesis_pair() -> Any:
    """A thesis-size (96×128×96) phantom pair: what one generated sample costs to compress and write."""
    return make_phantom(0, enlargement=0.5)


@pytest.mark.parametrize("level", [1, 9])
def test_thesis_pair_write(benchmark: Any, thesis_pair: Any, tmp_path: Path, level: int, record_figures: Any) -> None:
    """Seconds to write one thesis-size pair at gzip ``level``, and writer threads one GPU at its ceiling needs."""
    paths, seconds = DatasetPaths(tmp_path), []
    contiguous = ids_to_contiguous(thesis_pair.label_ids).astype(np.uint8)

    def write() -> None:
        start = time.perf_counter()
        save_volume(paths.image("case"), thesis_pair.image, thesis_pair.affine, compresslevel=level)
        save_volume(paths.label("case"), contiguous, thesis_pair.affine, compresslevel=level)
        seconds.append(time.perf_counter() - start)

    benchmark.pedantic(write, rounds=3, iterations=1)
    per_pair = float(np.median(seconds))
    size = paths.image("case").stat().st_size + paths.label("case").stat().st_size
    figures = {
        "gzip_level": level,
        "seconds_per_pair": per_pair,
        "megabytes_per_pair": size / 1e6,
        "writer_threads_for_gpu_ceiling": per_pair * GPU_CEILING_SAMPLES_PER_S,
    }
    benchmark.extra_info.update(figures)
    record_figures(figures)
    assert 0 < size < thesis_pair.image.nbytes + contiguous.nbytes  # compressed below the raw arrays

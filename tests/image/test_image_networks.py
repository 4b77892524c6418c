"""The image networks at both scales: shapes on the meta device (no memory), parameter counts, bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from nph.cli.config import compose_config
from nph.data.labels import ids_to_contiguous
from nph.data.phantoms import make_phantom
from nph.errors import InputError
from nph.models.image_ae import build_image_ae, downsampling_of, one_hot_seg, random_crop
from nph.models.image_dm import ImageDMTask, build_image_dm

EXPERIMENTS = Path(__file__).resolve().parents[2] / "configs" / "experiment"


def _experiment(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_thesis_networks_give_the_thesis_latent_and_parameter_counts() -> None:
    cfg = _experiment("thesis")
    shape = tuple(cfg["grid"]["shape"])
    with torch.device("meta"):
        ae = build_image_ae(cfg["image_ae"]["network"])
        dm = build_image_dm(cfg["image_dm"]["network"], cfg["image_ae"]["network"]["latent_channels"])
        image, seg = torch.zeros(2, 1, *shape), torch.zeros(2, 33, *shape)
        mu, sigma = ae.encode(image)
        decoded = ae.decode(mu, seg)
        predicted = dm(mu, torch.zeros(2, dtype=torch.long), seg)
    assert shape == (96, 128, 96) and downsampling_of(cfg["image_ae"]["network"]) == 4
    assert tuple(mu.shape) == tuple(sigma.shape) == (2, 6, 24, 32, 24)
    assert tuple(decoded.shape) == (2, 1, *shape)
    assert tuple(predicted.shape) == (2, 6, 24, 32, 24)
    assert _count(ae) == 20_019_909
    assert _count(dm) == 235_978_246


def test_tiny_networks_are_small_and_fit_the_tiny_grid() -> None:
    cfg = _experiment("tiny")
    ae = build_image_ae(cfg["image_ae"]["network"])
    dm = build_image_dm(cfg["image_dm"]["network"], 6)
    assert _count(ae) == 170_413 and _count(dm) == 1_043_478
    assert all(s % (downsampling_of(cfg["image_ae"]["network"]) * 4) == 0 for s in cfg["grid"]["shape"])


def test_one_hot_seg_and_random_crop() -> None:
    labels = torch.randint(0, 33, (2, 8, 12, 8), generator=torch.Generator().manual_seed(0))
    seg = one_hot_seg(labels)
    assert seg.shape == (2, 33, 8, 12, 8) and torch.equal(seg.argmax(1), labels) and torch.all(seg.sum(1) == 1)
    batch = {"labels": labels, "image": labels[:, None].float()}
    torch.manual_seed(3)
    crop = random_crop(batch, (4, 4, 4))
    assert crop["labels"].shape == (2, 4, 4, 4) and crop["image"].shape == (2, 1, 4, 4, 4)
    assert torch.equal(crop["image"][:, 0].long(), crop["labels"])  # the same window of every tensor
    assert random_crop(batch, None) is batch


@pytest.mark.parametrize(("builder", "network", "message"), [
    (lambda n: build_image_ae(n), {"channels": [8, 12], "num_res_blocks": 1, "latent_channels": 6,
                                    "norm_num_groups": 8, "spade_channels": 8}, "multiple of norm_num_groups"),
    (lambda n: build_image_dm(n, 6), {"channels": [16, 32], "attention": [False], "num_head_channels": [0, 8],
                                       "num_res_blocks": 1, "norm_num_groups": 8, "spade_channels": 8}, "network"),
])
def test_inconsistent_network_settings_are_input_errors(builder: Any, network: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        builder(network)


def _tiny_dm_task() -> tuple[ImageDMTask, dict[str, torch.Tensor]]:
    cfg = _experiment("tiny")
    torch.manual_seed(0)
    task = ImageDMTask(build_image_dm(cfg["image_dm"]["network"], 6), build_image_ae(cfg["image_ae"]["network"]),
                       cfg["image_dm"]["noise"], scale_factor=2.0)
    labels = torch.from_numpy(ids_to_contiguous(make_phantom(0, shape=(32, 48, 32), spacing=(5.0, 4.667, 5.0))
                                                .label_ids).astype("int64"))[None]
    return task, {"labels": labels, "image": (labels[:, None] > 0).float() * 0.5}


def test_dm_task_trains_only_its_unet_and_validates_with_seeded_noise() -> None:
    task, batch = _tiny_dm_task()
    loss, logs = task.training_step(batch)
    loss.backward()
    assert logs["mse"] > 0 and all(p.grad is None for p in task.autoencoder.parameters())
    assert any(p.grad is not None for p in task.net.parameters())
    task.train()
    assert not task.autoencoder.training  # the frozen autoencoder stays in eval mode
    state = torch.random.get_rng_state()
    first, second = task.validation_step(batch), task.validation_step(batch)
    assert first == second and torch.equal(state, torch.random.get_rng_state())


def test_dm_task_preview_is_a_generated_volume_on_the_label_grid() -> None:
    task, batch = _tiny_dm_task()
    with torch.inference_mode():
        volume = task.eval().preview(batch)
    assert volume.shape == (32, 48, 32) and np.isfinite(volume).all() and 0 <= volume.min() <= volume.max() <= 1


@pytest.mark.parametrize("experiment", ["tiny", "thesis"])
def test_sample_images_config_resolves_the_sampling_settings(experiment: str) -> None:
    cfg = compose_config("sample-images", ["models=/m", "masks=/k", "out=/o", f"experiment={experiment}"])
    expected = _experiment(experiment)["image_dm"]["sampling"]
    assert (cfg.sampler, cfg.steps, cfg.batch_size) == (expected["sampler"], expected["steps"], expected["batch_size"])

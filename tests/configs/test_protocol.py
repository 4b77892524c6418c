"""``protocol=thesis`` resolves to Ruschke's thesis settings for training and generation; ``protocol=nph`` changes
nothing of the experiment config."""

from __future__ import annotations

from typing import Any

import pytest
from omegaconf import OmegaConf

from nph.cli.config import compose_config
from nph.sampling.defaults import DEFAULT
from nph.synthesis.conditions import ConditionKind, ConditionSpec, bucket_centres, draw_condition

TRAIN = ["stage=image_ae", "data=/d", "models=/m"]
GENERATE = ["models=/m", "out=/o", "n=4"]


def _plain(command: str, overrides: list[str]) -> dict[str, Any]:
    return OmegaConf.to_container(compose_config(command, overrides), resolve=True)  # type: ignore[return-value]


@pytest.mark.parametrize("experiment", ["thesis", "tiny"])
def test_thesis_protocol_training_settings(experiment: str) -> None:
    cfg = _plain("train", [*TRAIN, f"experiment={experiment}", "protocol=thesis"])
    base = _plain("train", [*TRAIN, f"experiment={experiment}"])
    loss = cfg["image_ae"]["loss"]
    assert cfg["protocol"] == "thesis" and base["protocol"] == "nph"
    assert {k: loss[k] for k in ("perceptual_network", "perceptual_fake_3d_ratio", "perceptual_weight",
                                 "perceptual_required", "perceptual_weights", "adv_weight", "disc_channels",
                                 "disc_layers", "disc_norm", "disc_lr_ratio")} == {
        "perceptual_network": "squeeze", "perceptual_fake_3d_ratio": 0.2, "perceptual_weight": 1e-3,
        "perceptual_required": True, "perceptual_weights": None, "adv_weight": 0.01, "disc_channels": 32,
        "disc_layers": 3, "disc_norm": "batch", "disc_lr_ratio": 1.0}
    for stage in ("mask_ae", "mask_dm", "image_ae", "image_dm"):
        assert cfg[stage]["train"]["schedule"] == "constant" and cfg[stage]["train"]["warmup_steps"] == 0, stage
        # everything the protocol does not name stays the experiment's (sizes, learning rates, steps)
        if stage != "image_dm":
            assert cfg[stage]["train"]["lr"] == base[stage]["train"]["lr"]
        assert cfg[stage]["train"]["max_steps"] == base[stage]["train"]["max_steps"]
        assert cfg[stage]["network"]["channels"] == base[stage]["network"]["channels"]
    assert cfg["mask_dm"]["network"]["upcast_attention"] and cfg["image_dm"]["network"]["upcast_attention"]
    assert cfg["mask_dm"]["noise"]["prediction"] == "epsilon" and cfg["mask_dm"]["posterior_sampling"]
    assert cfg["mask_dm"]["train"]["ema_decay"] == 0.0
    assert (cfg["image_dm"]["train"]["lr"], cfg["image_dm"]["train"]["batch_size"]) == (2e-5, 6)
    assert cfg["image_ae"]["train"]["batch_size"] == 1
    assert cfg["mask_ae"]["train"]["grad_clip"] == 0.0 and cfg["mask_dm"]["train"]["grad_clip"] == 0.0
    assert cfg["mask_ae"]["dice_weight"] == 0.0 and cfg["mask_ae"]["network"]["initial_log_var"] is None
    assert cfg["grid"] == base["grid"]


def test_nph_protocol_keeps_the_experiment_values() -> None:
    cfg = _plain("train", [*TRAIN, "experiment=thesis"])
    assert cfg["image_ae"]["train"]["warmup_steps"] == 500 and cfg["image_ae"]["train"].get("schedule") is None
    assert "perceptual_network" not in cfg["image_ae"]["loss"] and cfg["image_ae"]["loss"]["disc_channels"] == 64
    assert "upcast_attention" not in cfg["mask_dm"]["network"]
    assert "sampler" not in cfg


def test_thesis_protocol_generation_settings_and_user_overrides_win() -> None:
    cfg = _plain("generate", [*GENERATE, "protocol=thesis"])
    assert (cfg["sampler"], cfg["steps"], cfg["guidance"]) == ("ddpm", 1000, 1.0)
    assert {k: cfg["conditions"][k] for k in ("kind", "low", "high", "width")} == {
        "kind": "buckets", "low": 0.05, "high": 1.0, "width": 0.1}
    nph = _plain("generate", GENERATE)
    assert (nph["sampler"], nph["steps"], nph["guidance"], nph["conditions"]["kind"]) == (
        DEFAULT.sampler, DEFAULT.steps, DEFAULT.guidance, "uniform")
    assert _plain("generate", [*GENERATE, "protocol=thesis", "guidance=2.5"])["guidance"] == 2.5


def test_thesis_buckets_are_the_thesis_conditions() -> None:
    spec = ConditionSpec(ConditionKind.BUCKETS, low=0.05, high=1.0, width=0.1)
    assert bucket_centres(spec) == pytest.approx([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
    draws = [draw_condition(spec, 3, i) for i in range(2000)]
    assert draws[:3] == [draw_condition(spec, 3, i) for i in range(3)]  # a function of (seed, index) only
    for i, value in enumerate(draws):
        assert abs(value - bucket_centres(spec)[i % 10]) <= 0.05 + 1e-12
    assert min(draws) >= 0.0 and max(draws) <= 1.0
    counts = [sum(1 for v in draws if k / 10 <= v < (k + 1) / 10) for k in range(10)]
    assert counts == [200] * 10  # equal numbers per tenth of the training range


def test_buckets_refuse_an_empty_range() -> None:
    from nph.errors import InputError

    with pytest.raises(InputError, match="kind=buckets needs width > 0 and low < high"):
        ConditionSpec(ConditionKind.BUCKETS, low=1.0, high=1.0)
    with pytest.raises(InputError, match="kind=buckets needs width > 0"):
        ConditionSpec(ConditionKind.BUCKETS, low=0.0, high=1.0, width=0.0)

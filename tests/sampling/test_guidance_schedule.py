"""Guidance interval: the doubled CFG pass only at noise levels in [t_lo, t_hi]; one defaults source for commands."""

from __future__ import annotations

import pytest
import torch
import yaml

from nph.cli.config import compose_config, config_dir
from nph.errors import InputError
from nph.models.noise import build_scheduler
from nph.sampling.defaults import DEFAULT, PRESETS
from nph.sampling.diffusion import check_guidance_interval, guided_denoiser, initial_noise, sample_latents


class CountingNet(torch.nn.Module):
    """Records (batch size, timestep) of every forward pass; predicts ``context value`` everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[int, float]] = []

    def forward(self, x, timesteps, context):
        self.calls.append((x.shape[0], float(timesteps[0])))
        return x * 0 + context[:, 0, :1, None, None, None]


def _sample(guidance: float, interval, sampler: str = "ddim", steps: int = 10) -> CountingNet:
    net = CountingNet()
    cond, uncond = torch.full((3, 1, 2), 0.5), torch.zeros(3, 1, 2)
    scheduler = build_scheduler({"kind": "rflow" if sampler == "rflow" else "ddpm"}, sampler)
    denoise = guided_denoiser(net, cond, uncond, guidance, interval, scheduler.num_train_timesteps)
    generators = [torch.Generator().manual_seed(i) for i in range(3)]
    sample_latents(denoise, scheduler, initial_noise((1, 2, 2, 2), generators, torch.device("cpu")), steps, generators)
    return net


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m", "rflow"])
def test_doubled_pass_only_inside_the_interval(sampler):
    net = _sample(3.0, (0.3, 0.7), sampler)
    assert len(net.calls) == 10
    for batch, t in net.calls:
        assert batch == (6 if 0.3 <= t / 1000 <= 0.7 else 3), (batch, t)
    doubled = sum(batch == 6 for batch, _ in net.calls)
    assert 2 <= doubled <= 6  # the interval covers 40 % of the noise levels


def test_interval_ends_are_included_and_none_means_every_step():
    assert [b for b, _ in _sample(3.0, None).calls] == [6] * 10
    everywhere = _sample(3.0, (0.0, 1.0)).calls
    assert [b for b, _ in everywhere] == [6] * 10
    t_first = everywhere[0][1] / 1000
    only_first = _sample(3.0, (t_first, 1.0)).calls
    assert [b for b, _ in only_first] == [6] + [3] * 9


def test_guidance_one_never_runs_the_doubled_pass():
    for interval in (None, (0.0, 1.0)):
        assert [b for b, _ in _sample(1.0, interval).calls] == [3] * 10


def test_outside_the_interval_the_output_is_the_conditional_one():
    cond, uncond = torch.full((1, 1, 2), 0.5), torch.zeros(1, 1, 2)
    denoise = guided_denoiser(CountingNet(), cond, uncond, 3.0, (0.3, 0.7), 1000)
    x = torch.zeros(1, 1, 2, 2, 2)
    assert float(denoise(x, torch.tensor([500.0])).mean()) == pytest.approx(1.5)  # 0 + 3·(0.5 − 0)
    assert float(denoise(x, torch.tensor([900.0])).mean()) == pytest.approx(0.5)  # conditional alone


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ((0.7, 0.3), "expected 0 <= t_lo <= t_hi <= 1"),
        ((0.0, 1.5), "expected 0 <= t_lo <= t_hi <= 1"),
        ((0.1,), "expected null or [t_lo, t_hi]"),
        (("a", "b"), "expected null or [t_lo, t_hi]"),
    ],
)
def test_bad_intervals_are_refused(interval, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_guidance_interval(interval)


def test_bad_interval_on_the_command_line_is_one_line_and_writes_nothing(run_nph, tmp_path):
    for value, message in (("[0.9,0.1]", "expected 0 <= t_lo <= t_hi <= 1"), ("0.5", "expected null or [t_lo")):
        result = run_nph(
            "sample-masks",
            f"models={tmp_path}",
            f"out={tmp_path / 'out'}",
            "experiment=tiny",
            f"guidance_interval={value}",
        )
        errors = [line for line in result.err.splitlines() if "error:" in line]
        assert result.status == 2 and len(errors) == 1 and message in errors[0], result.err
        assert not (tmp_path / "out").exists()


def _settings(section) -> tuple:
    interval = section["guidance_interval"]
    return (
        section["sampler"],
        section["steps"],
        float(section["guidance"]),
        None if interval is None else tuple(float(v) for v in interval),
    )


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_presets_are_the_python_defaults(name):
    preset = yaml.safe_load((config_dir() / "sampling" / f"{name}.yaml").read_text())
    expected = PRESETS[name]
    assert _settings(preset) == (expected.sampler, expected.steps, expected.guidance, expected.guidance_interval)


def test_generate_and_sample_masks_share_the_default():
    generate = compose_config("generate", ["models=m", "out=o", "n=1"])
    masks = compose_config("sample-masks", ["models=m", "out=o"])
    assert (
        _settings(generate)
        == _settings(masks)
        == (DEFAULT.sampler, DEFAULT.steps, DEFAULT.guidance, DEFAULT.guidance_interval)
    )
    old = compose_config("generate", ["models=m", "out=o", "n=1", "sampling=ddim50"])
    assert _settings(old) == ("ddim", 50, 3.0, None)
    override = compose_config("sample-masks", ["models=m", "out=o", "steps=7", "guidance_interval=[0.2,0.8]"])
    assert _settings(override)[1:] == (7, DEFAULT.guidance, (0.2, 0.8))

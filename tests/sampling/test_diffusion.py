"""The shared denoising loop against an oracle denoiser that knows the one clean sample: it must return it."""

from __future__ import annotations

import pytest
import torch

from nph.models.noise import build_scheduler
from nph.sampling.diffusion import guided_denoiser, initial_noise, sample_latents

X0 = torch.linspace(-1.5, 1.5, 2 * 3 * 4 * 4 * 4).reshape(2, 3, 4, 4, 4)


def _oracle(scheduler, prediction):
    def denoise(x, t):
        if prediction == "rflow":
            s = (t / scheduler.num_train_timesteps)[:, None, None, None, None]
            noise = (x - (1 - s) * X0) / s
            return X0 - noise
        alpha_bar = scheduler.alphas_cumprod[t.long()][:, None, None, None, None]
        noise = (x - alpha_bar.sqrt() * X0) / (1 - alpha_bar).sqrt()
        return noise if prediction == "epsilon" else alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * X0

    return denoise


@pytest.mark.parametrize(("kind", "prediction", "sampler", "steps"), [
    ("ddpm", "epsilon", "ddim", 20), ("ddpm", "v_prediction", "ddim", 20), ("ddpm", "epsilon", "ddpm", 50),
    ("rflow", "rflow", "rflow", 20),
])
def test_oracle_denoiser_recovers_the_sample(kind, prediction, sampler, steps):
    noise_cfg = {"kind": kind, "prediction": "epsilon" if prediction == "rflow" else prediction}
    scheduler = build_scheduler(noise_cfg, sampler)
    generators = [torch.Generator().manual_seed(i) for i in range(2)]
    x = initial_noise((3, 4, 4, 4), generators, torch.device("cpu"))
    out = sample_latents(_oracle(scheduler, prediction), scheduler, x, steps, generators)
    torch.testing.assert_close(out, X0, atol=0.05, rtol=0)


def test_classifier_free_guidance_combines_in_one_forward():
    calls = []

    class Net(torch.nn.Module):
        def forward(self, x, timesteps, context):
            calls.append(x.shape[0])
            return x * 0 + context[:, 0, :1, None, None, None]

    cond, uncond = torch.tensor([[[3.0, 1.0]]]), torch.tensor([[[0.0, 0.0]]])
    out = guided_denoiser(Net(), cond, uncond, guidance=2.5)(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1))
    assert calls == [2] and torch.allclose(out, torch.full_like(out, 7.5))  # 0 + 2.5·(3 − 0)
    guided_denoiser(Net(), cond, uncond, guidance=1.0)(torch.zeros(1, 1, 2, 2, 2), torch.zeros(1))
    assert calls == [2, 1]

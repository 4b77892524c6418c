"""Mask model pieces: KL, Dice, conditioning context, oversampling, noise targets, scheduler choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nph.errors import InputError
from nph.models.mask_ae import build_mask_ae, dice_per_class, kl_divergence
from nph.models.mask_dm import make_context, oversampling_weights
from nph.models.noise import build_scheduler, noisy_input_and_target

DDPM = {"kind": "ddpm", "prediction": "epsilon", "num_train_timesteps": 100}


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    mu, sigma = torch.zeros(2, 3, 4, 4, 4), torch.ones(2, 3, 4, 4, 4)
    assert float(kl_divergence(mu, sigma)) == pytest.approx(0.0, abs=1e-6)
    assert float(kl_divergence(mu + 1.0, sigma)) == pytest.approx(0.5 * 3 * 64)  # 0.5·mu² summed over 192 values


def test_dice_per_class():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    prediction = torch.tensor([0, 1, 1, 1, 2, 0])
    scores = dice_per_class(prediction, target, num_classes=4)
    assert scores[:3] == pytest.approx([0.5, 0.8, 2 / 3]) and np.isnan(scores[3])


def test_mask_autoencoder_shapes():
    net = build_mask_ae({"embed_dim": 4, "channels": [8, 8], "num_res_blocks": 1, "latent_channels": 3,
                         "norm_num_groups": 4})
    labels = torch.randint(0, 33, (2, 8, 12, 8))
    logits, mu, sigma = net(labels)
    assert logits.shape == (2, 33, 8, 12, 8) and mu.shape == sigma.shape == (2, 3, 4, 6, 4)
    assert net.downsampling == 2


def test_context_zeroes_the_condition_when_unflagged():
    context = make_context(torch.tensor([0.3, 0.9]), torch.tensor([1.0, 0.0]))
    assert context.shape == (2, 1, 2)
    assert context[:, 0].tolist() == [pytest.approx([0.3, 1.0]), [0.0, 0.0]]


def test_oversampling_gives_rare_bins_more_weight():
    condition = np.array([0.0, 0.05, 0.1, 0.15, 1.0])
    weights = oversampling_weights(condition, bins=2)
    assert weights.tolist() == [0.25, 0.25, 0.25, 0.25, 1.0]


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_ddpm_targets(prediction):
    torch.manual_seed(0)
    cfg = {**DDPM, "prediction": prediction}
    scheduler = build_scheduler(cfg)
    x0 = torch.randn(4, 3, 4, 4, 4)
    x_t, t, target = noisy_input_and_target(scheduler, cfg, x0)
    alpha = scheduler.alphas_cumprod[t].sqrt()[:, None, None, None, None]
    sigma = (1 - scheduler.alphas_cumprod[t]).sqrt()[:, None, None, None, None]
    noise = (x_t - alpha * x0) / sigma
    expected = noise if prediction == "epsilon" else alpha * noise - sigma * x0
    torch.testing.assert_close(target, expected, rtol=1e-4, atol=1e-4)


def test_rflow_target_is_data_minus_noise():
    torch.manual_seed(0)
    cfg = {"kind": "rflow", "num_train_timesteps": 1000}
    x0 = torch.randn(3, 2, 4, 4, 4)
    x_t, t, target = noisy_input_and_target(build_scheduler(cfg), cfg, x0)
    s = (t.float() / 1000)[:, None, None, None, None]
    noise = x0 - target
    torch.testing.assert_close(x_t, (1 - s) * x0 + s * noise)


@pytest.mark.parametrize(("noise", "sampler", "message"), [
    (DDPM, "rflow", "trained with DDPM noise"), ({"kind": "rflow"}, "ddim", "trained with rectified flow"),
    (DDPM, "euler", "expected ddim, ddpm or rflow"), ({"kind": "vp"}, None, "kind: ddpm|rflow"),
])
def test_scheduler_choice_errors(noise, sampler, message):
    with pytest.raises(InputError, match=message):
        build_scheduler(noise, sampler)

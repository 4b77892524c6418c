"""Mask model pieces: KL, Dice, conditioning context, oversampling, noise targets, scheduler choice."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nph.errors import InputError
from nph.models.latent_stats import inverse_std
from nph.models.mask_ae import MaskAETask, build_mask_ae, dice_per_class, kl_divergence
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


def test_initial_log_var_starts_the_posterior_near_deterministic():
    network = {"embed_dim": 4, "channels": [8, 8], "num_res_blocks": 1, "latent_channels": 3, "norm_num_groups": 4}
    labels = torch.randint(0, 33, (1, 8, 12, 8))
    with torch.no_grad():
        torch.manual_seed(0)
        _, default_sigma = build_mask_ae(network).encode(labels)
        torch.manual_seed(0)
        _, sigma = build_mask_ae({**network, "initial_log_var": -8.0}).encode(labels)
    assert 0.3 < float(default_sigma.mean()) < 3.0  # MONAI's initialisation: σ ≈ 1
    # the bias sets log σ² ≈ -8 up to the (small) random weights of the 1×1 conv on the encoder's output
    assert float(sigma.max()) < 0.1 and float(sigma.log().mul(2).mean()) == pytest.approx(-8.0, abs=2.0)


def test_dice_term_adds_the_soft_dice_of_the_batch():
    network = {"embed_dim": 4, "channels": [8, 8], "num_res_blocks": 1, "latent_channels": 3, "norm_num_groups": 4}
    net = build_mask_ae(network)
    batch = {"labels": torch.randint(0, 33, (2, 8, 12, 8))}
    plain, with_dice = MaskAETask(net, 0.0), MaskAETask(net, 0.0, dice_weight=2.0)
    torch.manual_seed(1)
    ce, logs = plain.training_step(batch)
    torch.manual_seed(1)
    total, dice_logs = with_dice.training_step(batch)
    torch.manual_seed(1)
    logits = net(batch["labels"])[0].float()
    probabilities = logits.softmax(1)
    onehot = torch.nn.functional.one_hot(batch["labels"], 33).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)  # batch Dice: one score per class over the whole batch
    dice = (2 * (probabilities * onehot).sum(dims) + 1e-5) / (probabilities.sum(dims) + onehot.sum(dims) + 1e-5)
    assert float(total) == pytest.approx(float(ce) + 2.0 * float(1 - dice.mean()), rel=1e-4)
    assert set(logs) == {"ce", "kl"} and set(dice_logs) == {"dice_ce", "kl"}


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
    (DDPM, "euler", "expected ddim, dpmpp_2m, ddpm or rflow"), ({"kind": "vp"}, None, "kind: ddpm|rflow"),
])
def test_scheduler_choice_errors(noise, sampler, message):
    with pytest.raises(InputError, match=message):
        build_scheduler(noise, sampler)


def test_inverse_std_accumulated_case_by_case_equals_torch_std():
    torch.manual_seed(0)
    latents = [torch.randn(3, 4, 5, 4) * s + m for s, m in ((0.5, 2.0), (2.0, -1.0), (1.0, 0.0))]
    expected = 1.0 / float(torch.cat([z.flatten() for z in latents]).double().std())
    assert inverse_std(iter(latents)) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(RuntimeError, match="standard deviation"):
        inverse_std([torch.ones(8)])

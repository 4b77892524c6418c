"""Image-AE losses: the perceptual loss only from user-given weights, and one-optimiser adversarial terms."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision

from nph.errors import InputError
from nph.models.image_losses import AdversarialTerms, build_discriminator, build_perceptual_loss


def test_perceptual_loss_is_off_and_logged_without_weights(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="nph.models.image_losses"):
        assert build_perceptual_loss(None, "image_ae.loss.perceptual_weights") is None
    assert "image_ae.loss.perceptual_weights not set: perceptual loss is OFF" in caplog.text


def test_perceptual_loss_loads_a_local_resnet50_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "resnet50.pt"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), weights)
    loss = build_perceptual_loss(weights)
    assert loss is not None and not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(1, 1, 16, 16, 16)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(x, torch.rand(1, 1, 16, 16, 16))) > 0


def test_bad_perceptual_weights_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"perceptual_weights: .*missing\.pt does not exist"):
        build_perceptual_loss(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(InputError, match="is not a loadable ResNet-50 state dict"):
        build_perceptual_loss(other)


def test_adversarial_terms_send_each_gradient_to_its_own_network() -> None:
    torch.manual_seed(0)
    terms = AdversarialTerms(build_discriminator(channels=4, num_layers=2))
    generator = torch.nn.Conv3d(1, 1, 3, padding=1)
    real, fake = torch.rand(2, 1, 16, 16, 16), generator(torch.rand(2, 1, 16, 16, 16))
    terms.generator(fake).backward()
    assert generator.weight.grad is not None and generator.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in terms.parameters())  # the generator term leaves the discriminator alone
    generator.zero_grad()
    terms.discriminator_loss(generator(torch.rand(2, 1, 16, 16, 16)), real).backward()
    assert generator.weight.grad is None or generator.weight.grad.abs().sum() == 0
    assert all(p.grad is not None for p in terms.parameters())

"""Image-AE losses: the perceptual loss only from user-given weights, and one-optimiser adversarial terms."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision

from nph.errors import InputError
from nph.models.image_losses import (
    AdversarialTerms,
    build_discriminator,
    build_perceptual_loss,
    perceptual_loss_from_config,
)


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
    with pytest.raises(InputError, match="is not a torchvision ResNet-50 state dict"):
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


def _random_squeeze_weights(path: Path) -> dict[str, torch.Tensor]:
    """A weights file of the right architecture: LPIPS-SqueezeNet, randomly initialised (no download)."""
    import lpips

    torch.manual_seed(1)
    state = lpips.LPIPS(pretrained=False, net="squeeze", pnet_rand=True, verbose=False).state_dict()
    torch.save(state, path)
    return state


def test_thesis_squeeze_perceptual_loss_from_a_user_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(hub))  # a download would land here
    state = _random_squeeze_weights(tmp_path / "squeeze.pt")
    section = {"perceptual_network": "squeeze", "perceptual_fake_3d_ratio": 0.2, "perceptual_required": True}
    loss = perceptual_loss_from_config({**section, "perceptual_weights": str(tmp_path / "squeeze.pt")})
    assert loss is not None and loss.fake_3d_ratio == 0.2 and loss.spatial_dims == 3 and loss.is_fake_3d
    assert type(loss.perceptual_function).__name__ == "LPIPS" and loss.perceptual_function.pnet_type == "squeeze"
    loaded = loss.perceptual_function.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    assert not hub.exists()
    torch.manual_seed(0)
    x, y = torch.rand(1, 1, 32, 32, 32), torch.rand(1, 1, 32, 32, 32)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(x, y)) > 0


def test_thesis_squeeze_perceptual_loss_refuses_absent_or_wrong_weights(tmp_path: Path) -> None:
    section = {"perceptual_network": "squeeze", "perceptual_fake_3d_ratio": 0.2, "perceptual_weights": None,
               "perceptual_required": True}
    with pytest.raises(InputError, match=r"^image_ae\.loss\.perceptual_weights: not set, but this protocol needs the "
                                         r"squeeze perceptual loss"):
        perceptual_loss_from_config(section)
    with pytest.raises(InputError, match=r"perceptual_weights: .*absent\.pt does not exist"):
        perceptual_loss_from_config({**section, "perceptual_weights": str(tmp_path / "absent.pt")})
    torchvision_squeeze = tmp_path / "torchvision_squeezenet.pt"
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), torchvision_squeeze)
    with pytest.raises(InputError, match=r"is not the state dict of MONAI PerceptualLoss\(network_type='squeeze'\)"):
        perceptual_loss_from_config({**section, "perceptual_weights": str(torchvision_squeeze)})
    with pytest.raises(InputError, match=r"perceptual_network=alexnet: expected one of resnet50, squeeze"):
        perceptual_loss_from_config({**section, "perceptual_network": "alexnet"})


def test_discriminator_norm_is_configurable() -> None:
    batch = build_discriminator(channels=4, num_layers=2, norm="batch")
    instance = build_discriminator(channels=4, num_layers=2)
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in batch.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in instance.modules())
    assert any(isinstance(m, torch.nn.InstanceNorm3d) for m in instance.modules())

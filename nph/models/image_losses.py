"""Losses of the image autoencoder beyond L1 + KL: patch-adversarial and (user-weighted) perceptual.

Pretrained feature networks cannot be downloaded on clusters without internet, so the perceptual loss is
built only from weights the user names by path (a torchvision ResNet-50 state dict, loaded with
``weights_only=True`` by MONAI); without a path the loss is off and the log says so.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from monai.losses import PatchAdversarialLoss, PerceptualLoss
from monai.networks.nets import PatchDiscriminator
from torch import nn
from torch.func import functional_call

from nph.errors import InputError

__all__ = ["AdversarialTerms", "build_discriminator", "build_perceptual_loss"]

log = logging.getLogger(__name__)


def build_discriminator(channels: int, num_layers: int) -> PatchDiscriminator:
    """MONAI's 3D patch discriminator (instance norm: no running statistics to keep in step)."""
    return PatchDiscriminator(spatial_dims=3, num_layers_d=num_layers, channels=channels, in_channels=1,
                              out_channels=1, norm="INSTANCE")


def build_perceptual_loss(weights: str | Path | None, key: str = "perceptual_weights") -> nn.Module | None:
    """A 2.5D ResNet-50 perceptual loss from a local state dict, or None (logged) without one.

    Raises:
        InputError: ``weights`` names a file that does not exist or does not hold ResNet-50 weights.
    """
    if weights in (None, ""):
        log.info("%s not set: perceptual loss is OFF (no network can be downloaded; give a ResNet-50 state "
                 "dict path to switch it on)", key)
        return None
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        raise InputError(f"{key}: {path} does not exist (a torchvision ResNet-50 state dict, .pt/.pth)")
    try:
        loss = PerceptualLoss(spatial_dims=3, network_type="resnet50", is_fake_3d=True, fake_3d_ratio=0.25,
                              pretrained=True, pretrained_path=str(path))
    except (RuntimeError, OSError, KeyError, ValueError) as err:
        raise InputError(f"{key}: {path} is not a loadable ResNet-50 state dict ({str(err).splitlines()[0]})") from err
    log.info("perceptual loss ON: ResNet-50 features from %s", path)
    return loss


class AdversarialTerms(nn.Module):
    """Generator and discriminator losses of one step, trainable by a single optimiser.

    The generator term sees the discriminator through detached parameters, and the discriminator term sees
    detached reconstructions, so one backward pass gives each network only its own gradient.
    """

    def __init__(self, discriminator: nn.Module) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.criterion = PatchAdversarialLoss(criterion="least_squares")

    def _logits(self, image: torch.Tensor, frozen: bool) -> torch.Tensor:
        if not frozen:
            return self.discriminator(image.contiguous().float())[-1]
        params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return functional_call(self.discriminator, params, (image.contiguous().float(),))[-1]

    def generator(self, fake: torch.Tensor) -> torch.Tensor:
        """How far the discriminator is from calling ``fake`` real (gradient to the generator only)."""
        return self.criterion(self._logits(fake, frozen=True), target_is_real=True, for_discriminator=False)

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Least-squares loss of telling ``real`` from ``fake`` (gradient to the discriminator only)."""
        fake_loss = self.criterion(self._logits(fake.detach(), frozen=False), target_is_real=False,
                                   for_discriminator=True)
        real_loss = self.criterion(self._logits(real, frozen=False), target_is_real=True, for_discriminator=True)
        return 0.5 * (fake_loss + real_loss)

"""Losses of the image autoencoder beyond L1 + KL: patch-adversarial and (user-weighted) perceptual.

Pretrained feature networks cannot be downloaded on clusters without internet, so the perceptual loss is
built only from weights the user names by path, read with ``weights_only=True``: a torchvision ResNet-50 state
dict (nph's default), or the state dict of the LPIPS-SqueezeNet network behind MONAI's
``PerceptualLoss(network_type="squeeze")`` (Ruschke's thesis). Without a path the loss is off and the log says
so, unless the config says it is required (``protocol=thesis``): then that is an error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import monai.losses.perceptual as monai_perceptual
import torch
from monai.losses import PatchAdversarialLoss, PerceptualLoss
from monai.networks.nets import PatchDiscriminator
from torch import nn
from torch.func import functional_call

from nph.errors import InputError

__all__ = ["AdversarialTerms", "build_discriminator", "build_perceptual_loss", "perceptual_loss_from_config"]

log = logging.getLogger(__name__)
#: What each perceptual network's weights file holds (for messages).
PERCEPTUAL_FILES = {"resnet50": "a torchvision ResNet-50 state dict",
                    "squeeze": "the state dict of MONAI PerceptualLoss(network_type='squeeze').perceptual_function "
                               "(LPIPS-SqueezeNet: backbone + linear heads)"}


def build_discriminator(channels: int, num_layers: int, norm: str = "INSTANCE") -> PatchDiscriminator:
    """MONAI's 3D patch discriminator; instance norm (nph: no running statistics to keep in step) or batch norm
    (MONAI's default, the thesis's)."""
    return PatchDiscriminator(spatial_dims=3, num_layers_d=num_layers, channels=channels, in_channels=1,
                              out_channels=1, norm=str(norm).upper())


def perceptual_loss_from_config(loss: Mapping[str, Any], key: str = "image_ae.loss") -> nn.Module | None:
    """The perceptual loss an ``image_ae.loss`` section asks for (keys ``perceptual_*``, see build_perceptual_loss)."""
    return build_perceptual_loss(loss.get("perceptual_weights"), f"{key}.perceptual_weights",
                                 network=str(loss.get("perceptual_network", "resnet50")),
                                 fake_3d_ratio=float(loss.get("perceptual_fake_3d_ratio", 0.25)),
                                 required=bool(loss.get("perceptual_required", False)))


def build_perceptual_loss(weights: str | Path | None, key: str = "perceptual_weights", *, network: str = "resnet50",
                          fake_3d_ratio: float = 0.25, required: bool = False) -> nn.Module | None:
    """A 2.5D perceptual loss (MONAI ``PerceptualLoss``) from a local weights file, or None (logged) without one.

    Args:
        weights: path of the weights file (see ``PERCEPTUAL_FILES``), or None/"" for no perceptual loss.
        key: the config key named in messages.
        network: ``resnet50`` (nph's default) or ``squeeze`` (LPIPS-SqueezeNet, the thesis's).
        fake_3d_ratio: fraction of the slices of each axis the 2D network sees.
        required: a missing ``weights`` is an error instead of switching the loss off.

    Raises:
        InputError: unknown network; required but not given; a file that does not exist or does not hold
            the network's weights.
    """
    if network not in PERCEPTUAL_FILES:
        raise InputError(f"{key.rsplit('.', 1)[0]}.perceptual_network={network}: expected one of "
                         f"{', '.join(PERCEPTUAL_FILES)}")
    if weights in (None, ""):
        if required:
            raise InputError(f"{key}: not set, but this protocol needs the {network} perceptual loss; set it to "
                             f"{PERCEPTUAL_FILES[network]} (nothing can be downloaded here)")
        log.info("%s not set: perceptual loss is OFF (no network can be downloaded; give %s to switch it on)",
                 key, PERCEPTUAL_FILES[network])
        return None
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        raise InputError(f"{key}: {path} does not exist ({PERCEPTUAL_FILES[network]}, .pt/.pth)")
    try:
        if network == "squeeze":
            loss = _squeeze_perceptual_loss(path, fake_3d_ratio)
        else:
            loss = PerceptualLoss(spatial_dims=3, network_type="resnet50", is_fake_3d=True,
                                  fake_3d_ratio=fake_3d_ratio, pretrained=True, pretrained_path=str(path))
    except (RuntimeError, OSError, KeyError, ValueError, TypeError, AttributeError) as err:
        message = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise InputError(f"{key}: {path} is not {PERCEPTUAL_FILES[network]} ({message})") from err
    log.info("perceptual loss ON: %s features from %s (fake-3D ratio %.2f)", network, path, fake_3d_ratio)
    return loss


@contextmanager
def _lpips_without_download() -> Iterator[None]:
    """MONAI builds LPIPS with an ImageNet SqueezeNet fetched from a hub; build the same network randomly
    initialised instead (``pnet_rand``), to be overwritten by the user's file."""
    original = monai_perceptual.LPIPS
    import lpips  # optional dependency of MONAI's squeeze/alex/vgg perceptual losses

    monai_perceptual.LPIPS = partial(lpips.LPIPS, pnet_rand=True)
    try:
        yield
    finally:
        monai_perceptual.LPIPS = original


def _squeeze_perceptual_loss(path: Path, fake_3d_ratio: float) -> PerceptualLoss:
    """MONAI's ``PerceptualLoss(network_type="squeeze", is_fake_3d=True)`` with every weight from ``path``."""
    with _lpips_without_download():
        loss = PerceptualLoss(spatial_dims=3, network_type="squeeze", is_fake_3d=True, fake_3d_ratio=fake_3d_ratio,
                              pretrained=False)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"holds a {type(state).__name__}, not a state dict")
    loss.perceptual_function.load_state_dict(dict(state), strict=True)
    return loss.eval()


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

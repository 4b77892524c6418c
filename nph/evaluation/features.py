"""3D ResNet feature extractor for FID, from MedicalNet-format weights the user provides — never random.

MedicalNet (Chen et al. 2019, "Med3D") ResNets are MONAI ``ResNet`` s with a 7³ stride-2 first convolution,
shortcut type B and no bias in the downsampling convolutions; their checkpoints hold
``{"state_dict": {"module.<name>": tensor}}``. nph reads them with ``torch.load(weights_only=True)`` (or a
``.safetensors`` file), strips the ``module.`` prefix and requires every weight of the network to match.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from monai.networks.nets import ResNet

from nph.errors import InputError

__all__ = ["MEDICALNET_FILES", "ResNetSpec", "extract_features", "find_weights", "load_feature_network", "spec_from"]

log = logging.getLogger(__name__)

#: File names MedicalNet releases for ResNet-50, looked up in a weights folder.
MEDICALNET_FILES = ("resnet_50_23dataset.pth", "resnet_50.pth", "resnet_50.safetensors")


@dataclass(frozen=True)
class ResNetSpec:
    """Architecture of the feature network; the default is MedicalNet's ResNet-50 (2048 features)."""

    block: str = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    block_inplanes: tuple[int, ...] = (64, 128, 256, 512)


def find_weights(weights: str | Path | None, directory: str | Path | None) -> Path:
    """The weights file: ``weights`` if given, else a MedicalNet ResNet-50 file in ``directory``.

    Raises:
        InputError: nothing given, or the file is absent — FID is never computed with a random network.
    """
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise InputError(f"fid.weights: {path} does not exist (MedicalNet ResNet-50 weights, e.g. "
                             f"{MEDICALNET_FILES[0]})")
        return path
    if directory:
        for name in MEDICALNET_FILES:
            if (Path(directory) / name).is_file():
                return Path(directory) / name
        raise InputError(f"PRETRAINED_MODEL_DIRECTORY={directory} holds none of {list(MEDICALNET_FILES)}")
    raise InputError("fid.weights: no MedicalNet ResNet-50 weights given (set fid.weights=FILE or "
                     "PRETRAINED_MODEL_DIRECTORY); FID is not computed with an untrained network")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state: Any
    try:
        if path.name.endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch and safetensors raise many types for a bad file; all mean "unusable"
        first_line = (str(err).splitlines() or [""])[0]
        raise InputError(f"{path}: cannot read as weights ({type(err).__name__}: {first_line})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_feature_network(path: Path, spec: ResNetSpec = ResNetSpec()) -> torch.nn.Module:
    """The ResNet of ``spec`` with the weights of ``path``, in eval mode, its classifier head removed."""
    network = ResNet(
        block=spec.block, layers=list(spec.layers), block_inplanes=list(spec.block_inplanes), spatial_dims=3,
        n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, shortcut_type="B", bias_downsample=False,
        feed_forward=False,
    )
    state = _read_state_dict(path)
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or shapes:
        raise InputError(f"{path}: does not fit a {spec.block} ResNet {list(spec.layers)} "
                         f"(missing {missing[:3]}, shape mismatch {shapes[:3]}; {len(missing)} missing in all)")
    network.load_state_dict({k: state[k] for k in expected})
    log.info("feature network: %s (%d tensors ignored)", path, len(set(state) - set(expected)))
    return network.eval()


def _standardise(image: npt.NDArray) -> npt.NDArray[np.float32]:
    """MedicalNet's input normalisation: z-score over the head (non-zero voxels)."""
    image = np.asarray(image, np.float32)
    head = image[image != 0]
    if head.size < 2 or head.std() == 0:
        return image
    return ((image - head.mean()) / head.std()).astype(np.float32)


def extract_features(
    network: torch.nn.Module, images: Iterable[npt.NDArray], *, batch_size: int = 4
) -> npt.NDArray[np.float64]:
    """Globally pooled features (N, C) of 3D images (X, Y, Z), under inference mode."""
    features: list[npt.NDArray] = []
    batch: list[npt.NDArray] = []

    def flush() -> None:
        if batch:
            with torch.inference_mode():
                stacked = torch.from_numpy(np.stack(batch)[:, None])
                features.append(network(stacked).reshape(len(batch), -1).double().numpy())
            batch.clear()

    for image in images:
        batch.append(_standardise(image))
        if len(batch) == batch_size:
            flush()
    flush()
    return np.concatenate(features) if features else np.zeros((0, 0))


def spec_from(block: str, layers: Sequence[int], block_inplanes: Sequence[int]) -> ResNetSpec:
    """A checked :class:`ResNetSpec` (for config values)."""
    if block not in ("basic", "bottleneck") or len(layers) != 4 or len(block_inplanes) != 4:
        raise InputError(f"fid.network: need block basic|bottleneck and 4 layers/block_inplanes, got {block}, "
                         f"{list(layers)}, {list(block_inplanes)}")
    return ResNetSpec(block, tuple(int(n) for n in layers), tuple(int(n) for n in block_inplanes))

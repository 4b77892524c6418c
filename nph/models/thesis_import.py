"""Ruschke's trained models (monai-generative 0.2.x checkpoints) → the four nph model bundles ``nph generate`` reads.

The thesis saved ``{"model": state_dict, "optimizer": ...}`` per network; read here with ``weights_only=True``.
Key names changed between monai-generative and MONAI core (``conv`` → ``postconv``, attention projections);
MONAI's ``load_old_state_dict`` maps them for AutoencoderKL and DiffusionModelUNet, the same renames are applied
here to the SPADE networks, which have no such method. MONAI issues #8029/#8030 report that mapping dropping or
inventing weights, so every import is checked: each source tensor used exactly once, each target tensor set from
one. monai-generative's self-attention blocks never applied their ``proj_attn`` weights (MONAI #7991), which core's
``out_proj`` replaces: those become the identity (see ``_identity_attention_projections``).
The thesis's mask autoencoder embeds SynthSeg ids (61 rows, ids 0..60); nph's embeds the 33 contiguous indices,
so the rows of the 33 ids are taken, in nph's label order. The thesis recomputed latent scale factors at sampling
time and kept the condition range in W&B: the user states them, and they go into the bundles' meta.
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from nph.data.labels import LABEL_IDS, label_id_table
from nph.data.orientation import axis_codes, axis_ornt, reorient_axes
from nph.errors import InputError
from nph.models.bundle import META, BundleKind, bundle_digest, save_bundle
from nph.models.image_ae import build_image_ae, downsampling_of
from nph.models.image_dm import build_image_dm
from nph.models.mask_ae import build_mask_ae
from nph.models.mask_dm import build_mask_unet

__all__ = ["KINDS", "ThesisSettings", "convert_network", "grid_affine", "import_thesis", "read_checkpoint"]

log = logging.getLogger(__name__)
KINDS = ("mask_ae", "mask_dm", "image_ae", "image_dm")
#: Vocabulary of the thesis's label embedding: SynthSeg ids 0..60.
THESIS_VOCABULARY = max(LABEL_IDS) + 1
#: The meta.json key under which a diffusion bundle records its autoencoder's digest, and that autoencoder.
_AUTOENCODER_OF = {"mask_dm": ("mask_ae", "mask_ae"), "image_dm": ("autoencoder", "image_ae")}
#: MONAI core name → monai-generative name: MONAI's load_old_state_dict renames, plus the SPADE U-Net's norms.
_RENAMES = (
    (".postconv.", ".conv."),
    (".attn.to_q.", ".to_q."),
    (".attn.to_k.", ".to_k."),
    (".attn.to_v.", ".to_v."),
    (".attn.out_proj.", ".proj_attn."),
    (".out_proj.", ".to_out.0."),
    (".param_free_norm.", ".param_free_norm.N."),
)  # SPADE norms: generative wrapped GroupNorm in an ADN


@dataclass(frozen=True)
class ThesisSettings:
    """What the thesis's checkpoints do not hold.

    Args:
        networks: the ``network`` config section of each kind (nph's keys; sizes as the thesis trained them).
        noise: the ``noise`` section of ``mask_dm`` and ``image_dm`` (DDPM, scaled-linear betas 0.0015–0.0205).
        shape: grid in voxels, in the axis order of the mask models' arrays.
        spacing: voxel size in mm, same order.
        orientation: axis codes of the arrays all four networks saw (e.g. ``IPL``: the thesis's MONAI
            ``Orientationd(axcodes=...)``); None when both ``mask_orientation`` and ``image_orientation`` are given.
        mask_scale_factor, image_scale_factor: latent scale factors (1 / std of the latents).
        condition_min, condition_max: the ventricle fractions (ventricles / ICV) that normalised to 0 and 1.
        mask_orientation, image_orientation: axis codes of the mask (image) models' arrays, where they differ from
            ``orientation`` (the thesis: IPL and IAR). The image bundles' grid is ``shape`` in their axis order.
    """

    networks: Mapping[str, Mapping[str, Any]]
    noise: Mapping[str, Mapping[str, Any]]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    orientation: str | None
    mask_scale_factor: float
    image_scale_factor: float
    condition_min: float
    condition_max: float
    mask_orientation: str | None = None
    image_orientation: str | None = None

    def orientation_of(self, model: str) -> str:
        """Upper-case axis codes of the ``mask`` or ``image`` models' arrays."""
        key = f"{model}_orientation"
        codes = getattr(self, key) or self.orientation
        if codes is None:
            raise InputError(
                f"orientation: missing for the {model} models; give orientation=CODES (all four "
                "networks) or mask_orientation=CODES image_orientation=CODES"
            )
        return axis_codes(codes, key if getattr(self, key) else "orientation")

    def grid_of(self, model: str) -> tuple[tuple[int, ...], tuple[float, ...], str]:
        """Shape, spacing and axis codes of the ``mask`` or ``image`` models' arrays."""
        mask, codes = self.orientation_of("mask"), self.orientation_of(model)
        return reorient_axes(self.shape, mask, codes), reorient_axes(self.spacing, mask, codes), codes

    def __post_init__(self) -> None:
        if not self.condition_max > self.condition_min:
            raise InputError(f"condition: max={self.condition_max} must exceed min={self.condition_min}")
        for key in ("mask_scale_factor", "image_scale_factor"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise InputError(f"{key}: expected a positive number, got {value}")
        if self.orientation is not None and self.mask_orientation and self.image_orientation:
            raise InputError(
                f"orientation={self.orientation}: unused, mask_orientation and image_orientation are both "
                "given; drop one of the three"
            )
        if len(self.shape) != 3 or len(self.spacing) != 3:
            raise InputError(f"grid: expected a 3-D shape and spacing, got {list(self.shape)} and {list(self.spacing)}")
        for model in ("mask", "image"):
            grid_affine(*self.grid_of(model))


def grid_affine(
    shape: tuple[int, ...], spacing: tuple[float, ...], orientation: str, key: str = "orientation"
) -> npt.NDArray[np.float64]:
    """Voxel → RAS mm affine of arrays with axis codes ``orientation`` (e.g. ``IPL``), centred on the grid, so one
    grid in two layouts (shape and spacing by ``reorient_axes``) puts each voxel at the same place."""
    if len(shape) != 3 or len(spacing) != 3:
        raise InputError(f"grid: expected a 3-D shape and spacing, got {list(shape)} and {list(spacing)}")
    ornt = axis_ornt(orientation, key)
    affine = np.eye(4)
    for axis, (world, sign) in enumerate(ornt):
        affine[:3, axis] = 0.0
        affine[int(world), axis] = float(sign) * float(spacing[axis])
    affine[:3, 3] = -affine[:3, :3] @ ((np.asarray(shape, dtype=np.float64) - 1) / 2)
    return affine


def read_checkpoint(path: str | Path, kind: str) -> dict[str, torch.Tensor]:
    """The state dict in a thesis checkpoint (``{"model": ..., "optimizer": ...}``) or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoints.{kind}: {path} does not exist")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as err:
        message = " ".join(str(err).split())[:200]
        raise InputError(f"checkpoints.{kind}: {path} is not a weights-only PyTorch checkpoint ({message})") from err
    state = content.get("model", content) if isinstance(content, dict) else None
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"checkpoints.{kind}: {path} holds no state dict (expected tensors, or 'model': tensors)")
    return dict(state)


def _nan_filled(net: nn.Module) -> nn.Module:
    """Every floating tensor NaN, so a target the import does not set is seen afterwards."""
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    return net


def _old_name(key: str, source: Mapping[str, torch.Tensor]) -> str | None:
    if key in source:
        return key
    for new, old in _RENAMES:
        if new in key and key.replace(new, old, 1) in source:
            return key.replace(new, old, 1)
    return None


def _load_renamed(net: nn.Module, source: dict[str, torch.Tensor]) -> None:
    """MONAI's renames for networks without ``load_old_state_dict``; used source keys are removed from ``source``."""
    target = net.state_dict()
    mapped = {key: source.pop(old) for key in target if (old := _old_name(key, source)) is not None}
    net.load_state_dict(mapped, strict=False)


def _load_monai(net: nn.Module, source: dict[str, torch.Tensor]) -> None:
    """MONAI's ``load_old_state_dict`` (it pops what it uses from ``source``; an exact match loads directly)."""
    if set(source) == set(net.state_dict()):
        net.load_state_dict(source)
        source.clear()
        return
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        net.load_old_state_dict(source)  # type: ignore[operator]


def _check_complete(net: nn.Module, leftover: Mapping[str, torch.Tensor], used: int, name: str) -> None:
    """Refuse an import that dropped a source tensor or left a target tensor unset (MONAI #8029/#8030)."""
    target = net.state_dict()
    unset = sorted(k for k, v in target.items() if v.is_floating_point() and bool(torch.isnan(v).any()))
    problems = []
    if leftover:
        problems.append(f"unused source tensors {sorted(leftover)[:8]}")
    if unset:
        problems.append(f"target tensors not set {unset[:8]}")
    if not problems and used != len(target):
        problems.append(f"{used} source tensors for {len(target)} target tensors")
    if problems:
        raise InputError(
            f"{name}: does not fit the configured network: {'; '.join(problems)} "
            "(check the network sizes in the experiment config against the thesis's)"
        )


def _identity_attention_projections(net: nn.Module) -> int:
    """monai-generative 0.2.3's self-attention blocks hold ``proj_attn`` but never apply it; MONAI core applies
    ``attn.out_proj``, so it must be the identity for the same outputs (mapping ``proj_attn`` onto it, as
    ``load_old_state_dict`` does, changes them). Returns how many projections were set."""
    count = 0
    with torch.no_grad():
        for name, module in net.named_modules():
            if name.endswith(".attn.out_proj") and isinstance(module, nn.Linear):
                module.weight.copy_(torch.eye(*module.weight.shape))
                if module.bias is not None:
                    module.bias.zero_()
                count += 1
    return count


def _fill(net: nn.Module, source: dict[str, torch.Tensor], name: str, monai_loader: bool) -> None:
    count = len(source)
    try:
        (_load_monai if monai_loader else _load_renamed)(_nan_filled(net), source)
    except (RuntimeError, KeyError) as err:
        raise InputError(f"{name}: does not fit the configured network ({' '.join(str(err).split())[:300]})") from err
    _check_complete(net, source, count - len(source), name)
    if projections := _identity_attention_projections(net):
        log.info("%s: %d unused proj_attn weights of monai-generative → identity out_proj", name, projections)


def _mask_ae(source: dict[str, torch.Tensor], network: Mapping[str, Any], name: str) -> nn.Module:
    net = build_mask_ae(network)
    embedding = source.pop("embedding.weight", None)
    if embedding is None or embedding.ndim != 2 or embedding.shape[0] not in (THESIS_VOCABULARY, len(LABEL_IDS)):
        shape = None if embedding is None else tuple(embedding.shape)
        raise InputError(
            f"{name}: expected 'embedding.weight' of shape ({THESIS_VOCABULARY}, embed_dim) in front of "
            f"the AutoencoderKL (the thesis's EmbeddingWrapper), found {shape}"
        )
    rows = embedding[torch.tensor(LABEL_IDS)] if embedding.shape[0] == THESIS_VOCABULARY else embedding
    autoencoder = {k.removeprefix("autoencoder."): v for k, v in source.items()}
    if len(autoencoder) != len(source) or rows.shape != net.embedding.weight.shape:
        raise InputError(
            f"{name}: expected 'autoencoder.*' keys and an embedding of shape "
            f"{tuple(net.embedding.weight.shape)} from the 33 SynthSeg ids, found {tuple(rows.shape)}"
        )
    source.clear()
    with torch.no_grad():
        net.embedding.weight.copy_(rows)
    _fill(net.autoencoder, autoencoder, name, monai_loader=True)
    return net


def convert_network(
    kind: str, source: dict[str, torch.Tensor], settings: ThesisSettings, name: str | None = None
) -> nn.Module:
    """The nph network of ``kind`` holding the thesis weights in ``source`` (consumed), every tensor accounted for."""
    name = name or f"checkpoints.{kind}"
    network = settings.networks[kind]
    if kind == "mask_ae":
        return _mask_ae(source, network, name)
    if kind == "mask_dm":
        net: nn.Module = build_mask_unet(network, int(settings.networks["mask_ae"]["latent_channels"]))
    elif kind == "image_ae":
        net = build_image_ae(network)
    elif kind == "image_dm":
        net = build_image_dm(network, int(settings.networks["image_ae"]["latent_channels"]))
    else:
        raise ValueError(f"kind={kind}: expected one of {KINDS}")
    _fill(net, source, name, monai_loader=kind == "mask_dm")
    return net


def _metas(settings: ThesisSettings, sources: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
    """What each bundle's meta.json says (the diffusion bundles' autoencoder digests are added when written)."""
    grids = {}
    for model in ("mask", "image"):
        shape, spacing, codes = settings.grid_of(model)
        grids[model] = {
            "label_ids": label_id_table(),
            "shape": list(shape),
            "spacing": list(spacing),
            "affine": grid_affine(shape, spacing, codes).tolist(),
            "orientation": codes,
        }
    mask_grid, image_grid = grids["mask"], grids["image"]
    mask_factor = downsampling_of(settings.networks["mask_ae"])
    latent_shape = [int(settings.networks["mask_ae"]["latent_channels"]), *(s // mask_factor for s in settings.shape)]
    image = {
        "latent_scale_factor": settings.image_scale_factor,
        "downsampling": downsampling_of(settings.networks["image_ae"]),
        "latent_channels": int(settings.networks["image_ae"]["latent_channels"]),
    }
    provenance = {k: {"imported_from": str(Path(p).resolve())} for k, p in sources.items()}
    mask = {
        "latent_scale_factor": settings.mask_scale_factor,
        "latent_shape": latent_shape,
        "downsampling": mask_factor,
    }
    condition = {"name": "ventricle_fraction", "min": settings.condition_min, "max": settings.condition_max}
    return {
        "mask_ae": {**mask_grid, **mask, **provenance["mask_ae"]},
        "mask_dm": {
            **mask_grid,
            **mask,
            "condition": condition,
            "noise": dict(settings.noise["mask_dm"]),
            **provenance["mask_dm"],
        },
        "image_ae": {**image_grid, **image, "channels": 1, **provenance["image_ae"]},
        "image_dm": {**image_grid, **image, **provenance["image_dm"]},
    }


def import_thesis(out: str | Path, sources: Mapping[str, str | Path], settings: ThesisSettings) -> dict[str, Path]:
    """Convert the four thesis checkpoints into ``out/<kind>/`` bundles; nothing is written unless all four fit.

    Raises:
        InputError: a missing or unsafe checkpoint, weights that do not fit the configured networks (naming the
            keys), bad settings, or ``out`` already holding one of the bundles.
    """
    out = Path(out)
    missing = [k for k in KINDS if k not in sources]
    if missing:
        raise InputError(f"checkpoints: missing {', '.join(missing)} (all four thesis networks are needed)")
    existing = [str(out / k) for k in KINDS if (out / k / META).exists()]
    if existing:
        raise InputError(f"out={out}: already holds bundle(s) {', '.join(existing)}; choose an empty models folder")
    nets = {kind: convert_network(kind, read_checkpoint(sources[kind], kind), settings) for kind in KINDS}
    metas = _metas(settings, {k: Path(sources[k]) for k in KINDS})
    folders: dict[str, Path] = {}
    for kind in KINDS:  # autoencoders first: the diffusion bundles record their digests
        meta = dict(metas[kind])
        if kind in _AUTOENCODER_OF:
            key, autoencoder = _AUTOENCODER_OF[kind]
            meta[key] = bundle_digest(folders[autoencoder])
        config: dict[str, Any] = {
            "experiment": "thesis-import",
            "grid": {"shape": meta["shape"], "spacing": meta["spacing"]},
            "network": dict(settings.networks[kind]),
        }
        if kind in settings.noise:
            config["noise"] = dict(settings.noise[kind])
        folders[kind] = save_bundle(
            out / kind, BundleKind(kind), config, nets[kind].state_dict(), {**meta, "steps": None}
        )
        log.info("import-thesis: %s → %s", sources[kind], folders[kind])
    return folders

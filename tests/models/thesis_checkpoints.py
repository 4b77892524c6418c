"""The thesis's four networks as monai-generative 0.2.3 built them (random weights, small sizes), saved as the
thesis saved them; shared by the ``nph import-thesis`` tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from nph.cli.config import compose_config
from nph.data.labels import LABEL_IDS
from nph.models.thesis_import import KINDS

__all__ = [
    "SETTINGS",
    "THESIS_STRUCTURE",
    "Thesis",
    "ThesisMaskAE",
    "import_args",
    "make_thesis",
    "networks",
    "save_checkpoints",
    "thesis_networks",
]

SETTINGS = [
    "orientation=IPL",
    "mask_scale_factor=1.3",
    "image_scale_factor=0.7",
    "condition.min=0.02",
    "condition.max=0.11",
]
SKIP_REASON = "monai-generative is not installed (requirements.lock pins monai-generative==0.2.3; `make install`)"


#: experiment=tiny sizes with the thesis's structure (2 res blocks, resblock up/down, attention at the two deepest
#: levels with per-level head channels), so key mapping is proven on the layout the real checkpoints have.
THESIS_STRUCTURE = [
    "mask_ae.network.num_res_blocks=2",
    "image_ae.network.num_res_blocks=2",
    "mask_dm.network.num_res_blocks=2",
    "mask_dm.network.resblock_updown=true",
    "mask_dm.network.attention_levels=[false,true,true]",
    "mask_dm.network.num_head_channels=[0,16,16]",
    "image_dm.network.num_res_blocks=2",
    "image_dm.network.resblock_updown=true",
]


def networks(extra: list[str]) -> dict[str, dict[str, Any]]:
    """The network sections `nph import-thesis experiment=tiny` builds (protocol=thesis: upcast_attention)."""
    cfg = compose_config(
        "import-thesis", ["experiment=tiny", "out=/o", *[f"checkpoints.{k}=/c" for k in KINDS], *SETTINGS, *extra]
    )
    return {k: OmegaConf.to_container(cfg[k].network, resolve=True) for k in KINDS}  # type: ignore[misc]


class ThesisMaskAE(nn.Module):
    """The thesis's mask autoencoder layout: a 61-row embedding of SynthSeg ids in front of an AutoencoderKL."""

    def __init__(self, autoencoder: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.embedding = nn.Embedding(max(LABEL_IDS) + 1, embed_dim)

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.autoencoder.encode(self.embedding(ids).permute(0, 4, 1, 2, 3))


def thesis_networks(net: dict[str, dict[str, Any]]) -> dict[str, nn.Module]:
    nets = pytest.importorskip("generative.networks.nets", reason=SKIP_REASON)
    ae, dm, iae, idm = net["mask_ae"], net["mask_dm"], net["image_ae"], net["image_dm"]
    levels = len(ae["channels"])
    mask_ae = ThesisMaskAE(
        nets.AutoencoderKL(
            spatial_dims=3,
            in_channels=ae["embed_dim"],
            out_channels=33,
            latent_channels=ae["latent_channels"],
            num_channels=ae["channels"],
            num_res_blocks=ae["num_res_blocks"],
            norm_num_groups=ae["norm_num_groups"],
            attention_levels=(False,) * levels,
            with_encoder_nonlocal_attn=False,
            with_decoder_nonlocal_attn=False,
        ),
        ae["embed_dim"],
    )
    mask_dm = nets.DiffusionModelUNet(
        spatial_dims=3,
        in_channels=ae["latent_channels"],
        out_channels=ae["latent_channels"],
        num_res_blocks=dm["num_res_blocks"],
        num_channels=dm["channels"],
        attention_levels=dm["attention_levels"],
        num_head_channels=dm["num_head_channels"],
        norm_num_groups=dm["norm_num_groups"],
        upcast_attention=True,
        resblock_updown=dm["resblock_updown"],
        with_conditioning=True,
        cross_attention_dim=2,
    )
    image_ae = nets.SPADEAutoencoderKL(
        spatial_dims=3,
        label_nc=33,
        in_channels=1,
        out_channels=1,
        latent_channels=iae["latent_channels"],
        num_channels=iae["channels"],
        num_res_blocks=iae["num_res_blocks"],
        norm_num_groups=iae["norm_num_groups"],
        attention_levels=(False,) * len(iae["channels"]),
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
        spade_intermediate_channels=iae["spade_channels"],
    )
    image_dm = nets.SPADEDiffusionModelUNet(
        spatial_dims=3,
        in_channels=iae["latent_channels"],
        out_channels=iae["latent_channels"],
        label_nc=33,
        num_res_blocks=idm["num_res_blocks"],
        num_channels=idm["channels"],
        attention_levels=idm["attention"],
        num_head_channels=idm["num_head_channels"],
        norm_num_groups=idm["norm_num_groups"],
        upcast_attention=True,
        resblock_updown=idm["resblock_updown"],
        spade_intermediate_channels=idm["spade_channels"],
    )
    torch.manual_seed(0)
    out = {"mask_ae": mask_ae, "mask_dm": mask_dm, "image_ae": image_ae, "image_dm": image_dm}
    for module in out.values():
        with torch.no_grad():  # every weight random (MONAI zero-initialises output layers): outputs must depend on all
            for tensor in module.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(torch.randn_like(tensor) * 0.2)
    return {k: v.eval() for k, v in out.items()}


def save_checkpoints(nets: dict[str, nn.Module], folder: Path) -> dict[str, Path]:
    """Each network as the thesis saved it: ``{"model": state_dict, "optimizer": state_dict}``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, net in nets.items():
        paths[kind] = folder / f"{kind}.pth"
        torch.save(
            {"model": net.state_dict(), "optimizer": torch.optim.Adam(net.parameters()).state_dict()}, paths[kind]
        )
    return paths


def import_args(out: Path, paths: dict[str, Path], extra: tuple[str, ...] = ()) -> list[str]:
    return ["experiment=tiny", f"out={out}", *[f"checkpoints.{k}={p}" for k, p in paths.items()], *SETTINGS, *extra]


Thesis = tuple[dict[str, nn.Module], dict[str, Path], Path, tuple[str, ...]]


def make_thesis(tmp_path_factory: pytest.TempPathFactory, extra: list[str]) -> Thesis:
    nets = thesis_networks(networks(extra))
    root = tmp_path_factory.mktemp("thesis")
    return nets, save_checkpoints(nets, root / "checkpoints"), root, tuple(extra)

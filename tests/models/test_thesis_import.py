"""``nph import-thesis``: the thesis's monai-generative networks (random weights, tiny sizes) become nph bundles
whose networks give the same outputs, and that ``nph generate`` uses as they are."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform
from omegaconf import OmegaConf
from torch import nn

from nph.cli.config import compose_config
from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.labels import LABEL_IDS, ids_to_contiguous
from nph.data.orientation import reorient
from nph.errors import InputError
from nph.models.image_ae import one_hot_seg
from nph.models.mask_dm import make_context
from nph.models.thesis_import import KINDS, ThesisSettings, convert_network, grid_affine, read_checkpoint
from nph.sampling.masks import load_mask_model
from nph.sampling.pairing import ImageModel, load_image_model, paint_images
from nph.seeds import image_seed, sample_seed

SETTINGS = ["orientation=IPL", "mask_scale_factor=1.3", "image_scale_factor=0.7", "condition.min=0.02",
            "condition.max=0.11"]
SKIP_REASON = "monai-generative is not installed (requirements.lock pins monai-generative==0.2.3; `make install`)"


#: experiment=tiny sizes with the thesis's structure (2 res blocks, resblock up/down, attention at the two deepest
#: levels with per-level head channels), so key mapping is proven on the layout the real checkpoints have.
THESIS_STRUCTURE = ["mask_ae.network.num_res_blocks=2", "image_ae.network.num_res_blocks=2",
                    "mask_dm.network.num_res_blocks=2", "mask_dm.network.resblock_updown=true",
                    "mask_dm.network.attention_levels=[false,true,true]", "mask_dm.network.num_head_channels=[0,16,16]",
                    "image_dm.network.num_res_blocks=2", "image_dm.network.resblock_updown=true"]


def _networks(extra: list[str]) -> dict[str, dict[str, Any]]:
    """The network sections `nph import-thesis experiment=tiny` builds (protocol=thesis: upcast_attention)."""
    cfg = compose_config("import-thesis", ["experiment=tiny", "out=/o", *[f"checkpoints.{k}=/c" for k in KINDS],
                                           *SETTINGS, *extra])
    return {k: OmegaConf.to_container(cfg[k].network, resolve=True) for k in KINDS}  # type: ignore[misc]


class ThesisMaskAE(nn.Module):
    """The thesis's mask autoencoder layout: a 61-row embedding of SynthSeg ids in front of an AutoencoderKL."""

    def __init__(self, autoencoder: nn.Module, embed_dim: int) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.embedding = nn.Embedding(max(LABEL_IDS) + 1, embed_dim)

    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.autoencoder.encode(self.embedding(ids).permute(0, 4, 1, 2, 3))


def _thesis_networks(net: dict[str, dict[str, Any]]) -> dict[str, nn.Module]:
    nets = pytest.importorskip("generative.networks.nets", reason=SKIP_REASON)
    ae, dm, iae, idm = net["mask_ae"], net["mask_dm"], net["image_ae"], net["image_dm"]
    levels = len(ae["channels"])
    mask_ae = ThesisMaskAE(nets.AutoencoderKL(
        spatial_dims=3, in_channels=ae["embed_dim"], out_channels=33, latent_channels=ae["latent_channels"],
        num_channels=ae["channels"], num_res_blocks=ae["num_res_blocks"], norm_num_groups=ae["norm_num_groups"],
        attention_levels=(False,) * levels, with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False),
        ae["embed_dim"])
    mask_dm = nets.DiffusionModelUNet(
        spatial_dims=3, in_channels=ae["latent_channels"], out_channels=ae["latent_channels"],
        num_res_blocks=dm["num_res_blocks"], num_channels=dm["channels"], attention_levels=dm["attention_levels"],
        num_head_channels=dm["num_head_channels"], norm_num_groups=dm["norm_num_groups"], upcast_attention=True,
        resblock_updown=dm["resblock_updown"], with_conditioning=True, cross_attention_dim=2)
    image_ae = nets.SPADEAutoencoderKL(
        spatial_dims=3, label_nc=33, in_channels=1, out_channels=1, latent_channels=iae["latent_channels"],
        num_channels=iae["channels"], num_res_blocks=iae["num_res_blocks"], norm_num_groups=iae["norm_num_groups"],
        attention_levels=(False,) * len(iae["channels"]), with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False, spade_intermediate_channels=iae["spade_channels"])
    image_dm = nets.SPADEDiffusionModelUNet(
        spatial_dims=3, in_channels=iae["latent_channels"], out_channels=iae["latent_channels"], label_nc=33,
        num_res_blocks=idm["num_res_blocks"], num_channels=idm["channels"], attention_levels=idm["attention"],
        num_head_channels=idm["num_head_channels"], norm_num_groups=idm["norm_num_groups"], upcast_attention=True,
        resblock_updown=idm["resblock_updown"], spade_intermediate_channels=idm["spade_channels"])
    torch.manual_seed(0)
    out = {"mask_ae": mask_ae, "mask_dm": mask_dm, "image_ae": image_ae, "image_dm": image_dm}
    for module in out.values():
        with torch.no_grad():  # every weight random (MONAI zero-initialises output layers): outputs must depend on all
            for tensor in module.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(torch.randn_like(tensor) * 0.2)
    return {k: v.eval() for k, v in out.items()}


def _save(nets: dict[str, nn.Module], folder: Path) -> dict[str, Path]:
    """Each network as the thesis saved it: ``{"model": state_dict, "optimizer": state_dict}``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, net in nets.items():
        paths[kind] = folder / f"{kind}.pth"
        torch.save({"model": net.state_dict(), "optimizer": torch.optim.Adam(net.parameters()).state_dict()},
                   paths[kind])
    return paths


def _import_args(out: Path, paths: dict[str, Path], extra: tuple[str, ...] = ()) -> list[str]:
    return ["experiment=tiny", f"out={out}", *[f"checkpoints.{k}={p}" for k, p in paths.items()], *SETTINGS, *extra]


Thesis = tuple[dict[str, nn.Module], dict[str, Path], Path, tuple[str, ...]]


def _thesis(tmp_path_factory: pytest.TempPathFactory, extra: list[str]) -> Thesis:
    nets = _thesis_networks(_networks(extra))
    root = tmp_path_factory.mktemp("thesis")
    return nets, _save(nets, root / "checkpoints"), root, tuple(extra)


@pytest.fixture(scope="module")
def thesis(tmp_path_factory: pytest.TempPathFactory) -> Thesis:
    """The thesis networks at experiment=tiny sizes, their checkpoint files, a folder to import into."""
    return _thesis(tmp_path_factory, [])


@pytest.fixture(scope="module", params=["tiny", "thesis_structure"])
def thesis_variants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Thesis:
    """As ``thesis``, and again with the thesis's network structure at small sizes."""
    return _thesis(tmp_path_factory, THESIS_STRUCTURE if request.param == "thesis_structure" else [])


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and float(a.abs().mean()) > 1e-3  # not trivially zero
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_imported_networks_match_the_thesis_modules(thesis_variants, run_nph) -> None:
    nets, paths, root, extra = thesis_variants
    models = root / "models"
    result = run_nph("import-thesis", *_import_args(models, paths, extra))
    assert result.status == 0, result.err
    masks, images = load_mask_model(models, torch.device("cpu")), load_image_model(models)
    torch.manual_seed(1)
    ids = torch.from_numpy(np.random.default_rng(0).choice(LABEL_IDS, size=(2, 32, 48, 32))).long()
    contiguous = torch.from_numpy(ids_to_contiguous(ids.numpy()).astype(np.int64))
    for ours, theirs in zip(masks.ae.encode(contiguous), nets["mask_ae"].encode(ids), strict=True):
        _close(ours, theirs)
    z = torch.randn(2, 3, 8, 12, 8)
    _close(masks.ae.decode(z), nets["mask_ae"].autoencoder.decode(z))
    t, context = torch.tensor([10, 700]), make_context(torch.tensor([0.3, 0.9]), torch.tensor([1.0, 0.0]))
    _close(masks.unet(z, timesteps=t, context=context), nets["mask_dm"](z, timesteps=t, context=context))
    image, seg = torch.rand(2, 1, 32, 48, 32), one_hot_seg(contiguous)
    for ours, theirs in zip(images.autoencoder.encode(image), nets["image_ae"].encode(image), strict=True):
        _close(ours, theirs)
    latent = torch.randn(2, 6, 8, 12, 8)
    _close(images.autoencoder.decode(latent, seg), nets["image_ae"].decode(latent, seg))
    _close(images.unet(latent, t, seg), nets["image_dm"](latent, timesteps=t, seg=seg))
    assert masks.meta["condition"] == {"name": "ventricle_fraction", "min": 0.02, "max": 0.11}
    assert masks.meta["latent_scale_factor"] == 1.3 and images.scale_factor == 0.7
    assert masks.meta["latent_shape"] == [3, 8, 12, 8] and masks.meta["orientation"] == "IPL"
    affine = np.asarray(masks.meta["affine"])  # IPL: axis 0 runs inferior, 1 posterior, 2 left
    assert affine[2, 0] == -5.0 and affine[1, 1] == -4.667 and affine[0, 2] == -5.0


def test_imported_bundles_generate_pairs(thesis, run_nph) -> None:
    _, paths, root, _ = thesis
    models = root / "models_generate"
    assert run_nph("import-thesis", *_import_args(models, paths)).status == 0
    out = root / "synthetic"
    result = run_nph("generate", "experiment=tiny", "protocol=thesis", f"models={models}", f"out={out}", "n=2",
                     "steps=2", "batch_size=2", "writer_threads=1", "device=cpu")
    assert result.status == 0, result.err
    manifest = (out / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 3 and len(list((out / "imagesTr").glob("*.nii.gz"))) == 2


def test_unused_or_unset_tensors_are_named(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    extra = dict(read_checkpoint(paths["mask_dm"], "mask_dm"), **{"out.9.weight": torch.zeros(1)})
    torch.save({"model": extra}, tmp_path / "extra.pth")
    missing = read_checkpoint(paths["image_dm"], "image_dm")
    del missing["out.2.conv.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    models = tmp_path / "models"
    result = run_nph("import-thesis", *_import_args(models, {**paths, "mask_dm": tmp_path / "extra.pth"}))
    assert result.status == 2
    assert "checkpoints.mask_dm: does not fit the configured network: unused source tensors ['out.9.weight']" in (
        result.err)
    result = run_nph("import-thesis", *_import_args(models, {**paths, "image_dm": tmp_path / "missing.pth"}))
    assert result.status == 2
    assert "checkpoints.image_dm: does not fit the configured network: target tensors not set ['out.2.conv.bias']" in (
        result.err)
    assert not models.exists()  # nothing written when one checkpoint does not fit


def test_networks_of_other_sizes_are_refused(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    result = run_nph("import-thesis", *_import_args(tmp_path / "m", paths), "mask_ae.network.channels=[8,16,32]")
    assert result.status == 2 and "checkpoints.mask_ae: does not fit the configured network" in result.err
    assert "size mismatch" in result.err and not (tmp_path / "m").exists()


def test_existing_bundles_are_not_overwritten(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    models = tmp_path / "models"
    assert run_nph("import-thesis", *_import_args(models, paths)).status == 0
    before = (models / "mask_dm" / "weights.safetensors").read_bytes()
    result = run_nph("import-thesis", *_import_args(models, paths), "condition.max=0.5")
    assert result.status == 2 and "already holds bundle(s)" in result.err
    assert (models / "mask_dm" / "weights.safetensors").read_bytes() == before


class _NotWeights:
    """Anything a weights-only load must refuse to unpickle."""


def test_checkpoints_are_read_weights_only_and_missing_ones_named(tmp_path: Path) -> None:
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"model": _NotWeights()}, unsafe)
    with pytest.raises(InputError, match=r"^checkpoints\.mask_ae: .*unsafe\.pth is not a weights-only PyTorch"):
        read_checkpoint(unsafe, "mask_ae")
    with pytest.raises(InputError, match=r"^checkpoints\.image_ae: .*absent\.pth does not exist"):
        read_checkpoint(tmp_path / "absent.pth", "image_ae")
    torch.save({"model": {"a": 1}}, tmp_path / "numbers.pth")
    with pytest.raises(InputError, match="holds no state dict"):
        read_checkpoint(tmp_path / "numbers.pth", "mask_dm")
    bare = {"w": torch.ones(2)}
    torch.save(bare, tmp_path / "bare.pth")
    assert torch.equal(read_checkpoint(tmp_path / "bare.pth", "mask_dm")["w"], bare["w"])


def test_grid_affine_follows_the_axis_codes() -> None:
    ras = grid_affine((4, 6, 4), (1.0, 2.0, 3.0), "RAS")
    np.testing.assert_allclose(ras[:3, :3], np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(ras[:3, :3] @ np.array([1.5, 2.5, 1.5]) + ras[:3, 3], 0.0)  # centred
    ipl = grid_affine((4, 6, 4), (1.0, 2.0, 3.0), "ipl")
    np.testing.assert_allclose(ipl[:3, :3], [[0, 0, -3.0], [0, -2.0, 0], [-1.0, 0, 0]])
    for bad in ("XYZ", "RRA", "RA"):
        with pytest.raises(InputError, match=f"orientation={bad}: expected"):
            grid_affine((4, 6, 4), (1.0, 2.0, 3.0), bad)


def _paint_as(model: ImageModel, labels: np.ndarray, source: str, seed: int) -> np.ndarray:
    """By hand: labels turned into the image model's layout, painted (DDIM, 2 steps), turned back, background 0."""
    painted = paint_images(model, reorient(labels[None], source, model.orientation), [seed], steps=2, batch_size=1)
    return np.where(labels == 0, 0.0, reorient(painted, model.orientation, source)[0]).astype(np.float32)


def test_mask_and_image_models_of_different_orientations_pair_up(thesis, run_nph) -> None:
    """The thesis's layouts (mask IPL, image IAR): the image model paints the mask turned into IAR, and the pair
    is written in the mask's layout with one affine."""
    _, paths, root, _ = thesis
    models, out = root / "models_ipl_iar", root / "synthetic_ipl_iar"
    orientations = ("orientation=null", "mask_orientation=IPL", "image_orientation=iar")
    assert run_nph("import-thesis", *_import_args(models, paths, orientations)).status == 0
    masks, images = load_mask_model(models, torch.device("cpu")), load_image_model(models)
    assert masks.meta["orientation"] == "IPL" and images.orientation == "IAR" and images.shape == (32, 48, 32)
    mask_affine = np.asarray(masks.meta["affine"])
    flip = ornt_transform(axcodes2ornt(tuple("IPL")), axcodes2ornt(tuple("IAR")))  # same voxel, same place
    image_meta = json.loads((models / "image_dm" / "meta.json").read_text())
    np.testing.assert_allclose(image_meta["affine"], mask_affine @ inv_ornt_aff(flip, (32, 48, 32)))
    result = run_nph("generate", "experiment=tiny", f"models={models}", f"out={out}", "n=1", "seed=4", "sampler=ddim",
                     "steps=2", "batch_size=1", "writer_threads=1", "device=cpu")
    assert result.status == 0, result.err
    (label_file,), (image_file,) = sorted((out / "labelsTr").glob("*.nii.gz")), sorted((out / "imagesTr").glob("*"))
    label, image = nib.load(label_file), nib.load(image_file)
    np.testing.assert_allclose(label.affine, mask_affine, atol=1e-5)
    np.testing.assert_allclose(image.affine, mask_affine, atol=1e-5)
    labels = np.asarray(label.dataobj).astype(np.int64)  # as written: the mask model's IPL layout
    written = np.asarray(image.dataobj, dtype=np.float32)
    np.testing.assert_allclose(written, _paint_as(images, labels, "IPL", image_seed(4, 0)), atol=1e-5)
    unturned = _paint_as(images, labels, "IAR", image_seed(4, 0))  # what nph did before: no flip between models
    assert float(np.abs(unturned - written).mean()) > 1e-3


def test_sample_images_turns_masks_into_the_image_models_layout(thesis, tmp_path: Path, run_nph) -> None:
    """Masks are read as RAS+; an image model trained on PIR arrays (axes permuted and flipped) paints them
    turned into PIR, and the images come back RAS+."""
    _, paths, _, _ = thesis
    models, masks, out = tmp_path / "models", tmp_path / "masks", tmp_path / "images"
    assert run_nph("import-thesis", *_import_args(models, paths, ("image_orientation=PIR",))).status == 0
    model = load_image_model(models)
    assert model.orientation == "PIR" and model.shape == (48, 32, 32)  # the IPL grid (32, 48, 32) as PIR arrays
    assert run_nph("sample-masks", f"models={models}", f"out={masks}", "n=1", "steps=2", "experiment=tiny").status == 0
    result = run_nph("sample-images", f"models={models}", f"masks={masks}", f"out={out}", "experiment=tiny",
                     "seed=6", "sampler=ddim", "steps=2", "batch_size=1")
    assert result.status == 0, result.err
    (case,) = LabelledDataset(masks).case_ids
    mask = LabelledDataset(masks).label_contiguous(case)  # RAS+ arrays
    image_file = next((out / "imagesTr").glob("*.nii.gz"))
    written = nib.load(image_file)
    np.testing.assert_allclose(written.affine, mask.affine, atol=1e-5)
    expected = _paint_as(model, mask.data.astype(np.int64), "RAS", sample_seed(6, 0))
    np.testing.assert_allclose(np.asarray(written.dataobj, dtype=np.float32), expected, atol=1e-5)


def test_masks_that_cannot_match_the_image_models_grid_are_refused(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    models, masks = tmp_path / "models", tmp_path / "masks"
    assert run_nph("import-thesis", *_import_args(models, paths, ("image_orientation=PIR",))).status == 0
    labels = np.zeros((48, 32, 32), dtype=np.int16)  # the model's own PIR shape, but masks are read as RAS+
    labels[10:30, 8:24, 8:24] = 2
    finalize(DatasetPaths(masks), [write_case(DatasetPaths(masks), "case_0", labels, np.eye(4), None, {})])
    result = run_nph("sample-images", f"models={models}", f"masks={masks}", f"out={tmp_path / 'images'}",
                     "experiment=tiny", "steps=2")
    assert result.status == 2
    assert "grid (48, 32, 32) differs from the image model's [32, 48, 32] (its PIR grid as RAS+ arrays)" in result.err
    assert not (tmp_path / "images").exists()


def test_an_image_model_on_another_grid_is_refused_in_its_layout(thesis, tmp_path: Path, run_nph) -> None:
    """The image model's grid is compared with the mask model's turned into its layout (PIR: axes permuted)."""
    _, paths, _, _ = thesis
    ipl, pir = tmp_path / "ipl", tmp_path / "pir"
    assert run_nph("import-thesis", *_import_args(ipl, paths)).status == 0
    assert run_nph("import-thesis", *_import_args(pir, paths, ("image_orientation=PIR", "grid.shape=[32,32,48]"))
                   ).status == 0
    for kind in ("image_ae", "image_dm"):  # mask model on (32, 48, 32) IPL, image model on (32, 32, 48) PIR
        shutil.rmtree(ipl / kind)
        shutil.copytree(pir / kind, ipl / kind)
    out = tmp_path / "synthetic"
    result = run_nph("generate", "experiment=tiny", f"models={ipl}", f"out={out}", "n=1", "steps=2", "device=cpu")
    assert result.status == 2 and not out.exists()
    assert ("the image model's grid (32, 32, 48) differs from the mask model's (32, 48, 32) ((48, 32, 32) as PIR "
            "arrays)") in result.err


def test_orientations_are_given_once_per_model(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    cases = {("orientation=null",): "orientation: missing for the mask models; give orientation=CODES",
             ("orientation=null", "mask_orientation=IPL"): "orientation: missing for the image models",
             ("mask_orientation=IPL", "image_orientation=IAR"): "orientation=IPL: unused, mask_orientation and "
                                                                "image_orientation are both given",
             ("image_orientation=IAX",): "image_orientation=IAX: expected one of R/L, A/P, S/I per axis"}
    for extra, message in cases.items():
        result = run_nph("import-thesis", *_import_args(tmp_path / "m", paths, extra))
        assert result.status == 2 and message in result.err, (extra, result.err)
        assert not (tmp_path / "m").exists()


def _settings(**changes: Any) -> ThesisSettings:
    values: dict[str, Any] = {"networks": _networks([]), "noise": {"mask_dm": {}, "image_dm": {}},
                              "shape": (32, 48, 32), "spacing": (5.0, 4.667, 5.0), "orientation": "IPL",
                              "mask_scale_factor": 1.0, "image_scale_factor": 1.0, "condition_min": 0.0,
                              "condition_max": 1.0}
    return ThesisSettings(**{**values, **changes})


def test_settings_are_checked() -> None:
    with pytest.raises(InputError, match=r"condition: max=0.1 must exceed min=0.1"):
        _settings(condition_min=0.1, condition_max=0.1)
    with pytest.raises(InputError, match=r"image_scale_factor: expected a positive number, got 0.0"):
        _settings(image_scale_factor=0.0)
    with pytest.raises(InputError, match=r"orientation=IP: expected three axis codes"):
        _settings(orientation="IP")


def test_mask_autoencoder_needs_the_thesis_embedding(thesis, tmp_path: Path) -> None:
    _, paths, _, _ = thesis
    source = read_checkpoint(paths["mask_ae"], "mask_ae")
    without = {k: v for k, v in source.items() if k != "embedding.weight"}
    with pytest.raises(InputError, match=r"mask_ae: expected 'embedding\.weight' of shape \(61, embed_dim\)"):
        convert_network("mask_ae", without, _settings())
    wider = {**source, "embedding.weight": torch.zeros(61, 16)}  # embed_dim 16, the config says 8
    with pytest.raises(InputError, match=r"an embedding of shape \(33, 8\) from the 33 SynthSeg ids, found \(33, 16\)"):
        convert_network("mask_ae", wider, _settings())
    with pytest.raises(InputError, match="does not fit the configured network"):
        convert_network("image_ae", read_checkpoint(paths["image_dm"], "image_dm"), _settings())

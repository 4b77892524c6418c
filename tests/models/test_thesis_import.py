"""``nph import-thesis``: the thesis's monai-generative networks (random weights, tiny sizes) become nph bundles
whose networks give the same outputs, and that ``nph generate`` uses as they are."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from thesis_checkpoints import THESIS_STRUCTURE, Thesis, import_args, make_thesis, networks

from nph.data.labels import LABEL_IDS, ids_to_contiguous
from nph.errors import InputError
from nph.models.image_ae import one_hot_seg
from nph.models.mask_dm import make_context
from nph.models.thesis_import import ThesisSettings, convert_network, grid_affine, read_checkpoint
from nph.sampling.masks import load_mask_model
from nph.sampling.pairing import load_image_model


@pytest.fixture(scope="module")
def thesis(tmp_path_factory: pytest.TempPathFactory) -> Thesis:
    """The thesis networks at experiment=tiny sizes, their checkpoint files, a folder to import into."""
    return make_thesis(tmp_path_factory, [])


@pytest.fixture(scope="module", params=["tiny", "thesis_structure"])
def thesis_variants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Thesis:
    """As ``thesis``, and again with the thesis's network structure at small sizes."""
    return make_thesis(tmp_path_factory, THESIS_STRUCTURE if request.param == "thesis_structure" else [])


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and float(a.abs().mean()) > 1e-3  # not trivially zero
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_imported_networks_match_the_thesis_modules(thesis_variants, run_nph) -> None:
    nets, paths, root, extra = thesis_variants
    models = root / "models"
    result = run_nph("import-thesis", *import_args(models, paths, extra))
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
    assert run_nph("import-thesis", *import_args(models, paths)).status == 0
    out = root / "synthetic"
    result = run_nph(
        "generate",
        "experiment=tiny",
        "protocol=thesis",
        f"models={models}",
        f"out={out}",
        "n=2",
        "steps=2",
        "batch_size=2",
        "writer_threads=1",
        "device=cpu",
    )
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
    result = run_nph("import-thesis", *import_args(models, {**paths, "mask_dm": tmp_path / "extra.pth"}))
    assert result.status == 2
    assert "checkpoints.mask_dm: does not fit the configured network: unused source tensors ['out.9.weight']" in (
        result.err
    )
    result = run_nph("import-thesis", *import_args(models, {**paths, "image_dm": tmp_path / "missing.pth"}))
    assert result.status == 2
    assert "checkpoints.image_dm: does not fit the configured network: target tensors not set ['out.2.conv.bias']" in (
        result.err
    )
    assert not models.exists()  # nothing written when one checkpoint does not fit


def test_networks_of_other_sizes_are_refused(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    result = run_nph("import-thesis", *import_args(tmp_path / "m", paths), "mask_ae.network.channels=[8,16,32]")
    assert result.status == 2 and "checkpoints.mask_ae: does not fit the configured network" in result.err
    assert "size mismatch" in result.err and not (tmp_path / "m").exists()


def test_existing_bundles_are_not_overwritten(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    models = tmp_path / "models"
    assert run_nph("import-thesis", *import_args(models, paths)).status == 0
    before = (models / "mask_dm" / "weights.safetensors").read_bytes()
    result = run_nph("import-thesis", *import_args(models, paths), "condition.max=0.5")
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


def _settings(**changes: Any) -> ThesisSettings:
    values: dict[str, Any] = {
        "networks": networks([]),
        "noise": {"mask_dm": {}, "image_dm": {}},
        "shape": (32, 48, 32),
        "spacing": (5.0, 4.667, 5.0),
        "orientation": "IPL",
        "mask_scale_factor": 1.0,
        "image_scale_factor": 1.0,
        "condition_min": 0.0,
        "condition_max": 1.0,
    }
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

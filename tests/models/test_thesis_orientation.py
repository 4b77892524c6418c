"""``nph import-thesis`` with a layout per model (the thesis: mask models on IPL arrays, image models on IAR):
the image model paints each mask turned into its layout, and the pair comes back in the mask's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, ornt_transform
from thesis_checkpoints import Thesis, import_args, make_thesis

from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.orientation import reorient
from nph.sampling.masks import load_mask_model
from nph.sampling.pairing import ImageModel, load_image_model, paint_images
from nph.seeds import image_seed, sample_seed


@pytest.fixture(scope="module")
def thesis(tmp_path_factory: pytest.TempPathFactory) -> Thesis:
    """The thesis networks at experiment=tiny sizes, their checkpoint files, a folder to import into."""
    return make_thesis(tmp_path_factory, [])


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
    assert run_nph("import-thesis", *import_args(models, paths, orientations)).status == 0
    masks, images = load_mask_model(models, torch.device("cpu")), load_image_model(models)
    assert masks.meta["orientation"] == "IPL" and images.orientation == "IAR" and images.shape == (32, 48, 32)
    mask_affine = np.asarray(masks.meta["affine"])
    flip = ornt_transform(axcodes2ornt(tuple("IPL")), axcodes2ornt(tuple("IAR")))  # same voxel, same place
    image_meta = json.loads((models / "image_dm" / "meta.json").read_text())
    np.testing.assert_allclose(image_meta["affine"], mask_affine @ inv_ornt_aff(flip, (32, 48, 32)))
    result = run_nph(
        "generate",
        "experiment=tiny",
        f"models={models}",
        f"out={out}",
        "n=1",
        "seed=4",
        "sampler=ddim",
        "steps=2",
        "batch_size=1",
        "writer_threads=1",
        "device=cpu",
    )
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
    assert run_nph("import-thesis", *import_args(models, paths, ("image_orientation=PIR",))).status == 0
    model = load_image_model(models)
    assert model.orientation == "PIR" and model.shape == (48, 32, 32)  # the IPL grid (32, 48, 32) as PIR arrays
    assert run_nph("sample-masks", f"models={models}", f"out={masks}", "n=1", "steps=2", "experiment=tiny").status == 0
    result = run_nph(
        "sample-images",
        f"models={models}",
        f"masks={masks}",
        f"out={out}",
        "experiment=tiny",
        "seed=6",
        "sampler=ddim",
        "steps=2",
        "batch_size=1",
    )
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
    assert run_nph("import-thesis", *import_args(models, paths, ("image_orientation=PIR",))).status == 0
    labels = np.zeros((48, 32, 32), dtype=np.int16)  # the model's own PIR shape, but masks are read as RAS+
    labels[10:30, 8:24, 8:24] = 2
    finalize(DatasetPaths(masks), [write_case(DatasetPaths(masks), "case_0", labels, np.eye(4), None, {})])
    result = run_nph(
        "sample-images",
        f"models={models}",
        f"masks={masks}",
        f"out={tmp_path / 'images'}",
        "experiment=tiny",
        "steps=2",
    )
    assert result.status == 2
    assert "grid (48, 32, 32) differs from the image model's [32, 48, 32] (its PIR grid as RAS+ arrays)" in result.err
    assert not (tmp_path / "images").exists()


def test_an_image_model_on_another_grid_is_refused_in_its_layout(thesis, tmp_path: Path, run_nph) -> None:
    """The image model's grid is compared with the mask model's turned into its layout (PIR: axes permuted)."""
    _, paths, _, _ = thesis
    ipl, pir = tmp_path / "ipl", tmp_path / "pir"
    assert run_nph("import-thesis", *import_args(ipl, paths)).status == 0
    assert (
        run_nph("import-thesis", *import_args(pir, paths, ("image_orientation=PIR", "grid.shape=[32,32,48]"))).status
        == 0
    )
    for kind in ("image_ae", "image_dm"):  # mask model on (32, 48, 32) IPL, image model on (32, 32, 48) PIR
        shutil.rmtree(ipl / kind)
        shutil.copytree(pir / kind, ipl / kind)
    out = tmp_path / "synthetic"
    result = run_nph("generate", "experiment=tiny", f"models={ipl}", f"out={out}", "n=1", "steps=2", "device=cpu")
    assert result.status == 2 and not out.exists()
    assert (
        "the image model's grid (32, 32, 48) differs from the mask model's (32, 48, 32) ((48, 32, 32) as PIR arrays)"
    ) in result.err


def test_orientations_are_given_once_per_model(thesis, tmp_path: Path, run_nph) -> None:
    _, paths, _, _ = thesis
    cases = {
        ("orientation=null",): "orientation: missing for the mask models; give orientation=CODES",
        ("orientation=null", "mask_orientation=IPL"): "orientation: missing for the image models",
        ("mask_orientation=IPL", "image_orientation=IAR"): "orientation=IPL: unused, mask_orientation and "
        "image_orientation are both given",
        ("image_orientation=IAX",): "image_orientation=IAX: expected one of R/L, A/P, S/I per axis",
    }
    for extra, message in cases.items():
        result = run_nph("import-thesis", *import_args(tmp_path / "m", paths, extra))
        assert result.status == 2 and message in result.err, (extra, result.err)
        assert not (tmp_path / "m").exists()

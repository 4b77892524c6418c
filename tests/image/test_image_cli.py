"""The image commands as a user runs them: sample-images output, fine-tuning, and every bad input (exit 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from image_fixtures import TrainedImageModel, nph

from nph.data.dataset import DatasetPaths, LabelledDataset, finalize, write_case
from nph.data.phantoms import make_phantom
from nph.models.bundle import bundle_digest, load_bundle
from nph.seeds import sample_seed

TINY = "experiment=tiny"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_training_on_masks_without_images_is_refused(run_nph, tmp_path: Path) -> None:
    phantom = make_phantom(0, shape=(32, 48, 32), spacing=(5.0, 4.667, 5.0))
    paths = DatasetPaths(tmp_path / "masks")
    finalize(paths, [write_case(paths, "m0", phantom.label_ids, phantom.affine)])
    result = run_nph("train", "stage=image_ae", f"data={paths.root}", f"models={tmp_path / 'models'}", TINY)
    assert result.status == 2 and "has no images" in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "models" / "image_ae").exists()


def test_images_outside_unit_range_are_refused(run_nph, tmp_path: Path) -> None:
    phantom = make_phantom(0, shape=(32, 48, 32), spacing=(5.0, 4.667, 5.0))
    paths = DatasetPaths(tmp_path / "raw")
    finalize(paths, [write_case(paths, "r0", phantom.label_ids, phantom.affine, phantom.image * 800.0)])
    result = run_nph("train", "stage=image_ae", f"data={paths.root}", f"models={tmp_path / 'models'}", TINY)
    assert result.status == 2 and "r0_0000.nii.gz: intensities span" in result.err and "expected [0, 1]" in result.err


def test_missing_perceptual_weights_file_is_named(run_nph, flair_phantoms: Path, tmp_path: Path) -> None:
    result = run_nph("train", "stage=image_ae", f"data={flair_phantoms}", f"models={tmp_path}", TINY,
                     f"image_ae.loss.perceptual_weights={tmp_path / 'resnet50.pt'}")
    assert result.status == 2 and "image_ae.loss.perceptual_weights" in result.err and "does not exist" in result.err


def test_diffusion_stage_without_autoencoder_is_refused(run_nph, flair_phantoms: Path, tmp_path: Path) -> None:
    result = run_nph("train", "stage=image_dm", f"data={flair_phantoms}", f"models={tmp_path}", TINY)
    assert result.status == 2 and f"{tmp_path / 'image_ae' / 'meta.json'}: missing" in result.err


def test_training_data_on_another_grid_is_refused(run_nph, tmp_path: Path) -> None:
    other = tmp_path / "other_grid"
    nph("phantom", f"out={other}", "n=1", "shape=[32,32,32]", TINY)
    result = run_nph("train", "stage=image_ae", f"data={other}", f"models={tmp_path / 'models'}", TINY)
    assert result.status == 2 and "grid (32, 32, 32) differs from grid.shape (32, 48, 32)" in result.err
    nph("phantom", f"out={tmp_path / 'odd'}", "n=1", "shape=[32,48,30]", TINY)
    odd = run_nph("train", "stage=image_ae", f"data={tmp_path / 'odd'}", f"models={tmp_path / 'models'}", TINY,
                  "grid.shape=[32,48,30]")
    assert odd.status == 2 and "grid.shape: [32, 48, 30] is not divisible by the autoencoder's" in odd.err
    assert not (tmp_path / "models").exists()


def test_sample_images_bad_options(run_nph, flair_phantoms: Path, tmp_path: Path) -> None:
    missing = run_nph("sample-images", f"models={tmp_path / 'none'}", f"masks={flair_phantoms}",
                      f"out={tmp_path / 'o'}", TINY)
    assert missing.status == 2 and "models=" in missing.err and "no such file" in missing.err
    sampler = run_nph("sample-images", f"models={tmp_path}", f"masks={flair_phantoms}", f"out={tmp_path / 'o'}",
                      "sampler=euler", TINY)
    assert sampler.status == 2 and "sampler=euler: expected one of ddim, dpmpp_2m, ddpm, rflow" in sampler.err
    device = run_nph("sample-images", f"models={tmp_path}", f"masks={flair_phantoms}", f"out={tmp_path / 'o'}",
                     "device=gpu7", TINY)
    assert device.status == 2 and "device: 'gpu7' is not a torch device" in device.err


@pytest.mark.slow
def test_sample_images_writes_a_labelled_dataset_with_provenance(run_nph, trained_image_model: TrainedImageModel,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "synthetic"
    result = run_nph("sample-images", f"models={trained_image_model.models}", f"masks={trained_image_model.data}",
                     f"out={out}", "seed=3", "batch_size=4", TINY)
    assert result.status == 0, result.err
    masks, synthetic = LabelledDataset(trained_image_model.data), LabelledDataset(out)
    assert synthetic.has_images and len(synthetic) == len(masks)
    manifest = synthetic.manifest
    assert list(manifest["source_case"]) == masks.case_ids and list(manifest["index"]) == list(range(len(masks)))
    assert list(manifest["noise_seed"]) == [sample_seed(3, i) for i in range(len(masks))]
    assert set(manifest["image_dm"]) == {bundle_digest(trained_image_model.models / "image_dm")}
    for row, source in zip(manifest.itertuples(), masks.case_ids, strict=True):
        image, label = synthetic.image(row.case_id), synthetic.label(row.case_id)
        assert np.array_equal(label.data, masks.label(source).data)  # the mask's labels, untouched
        assert np.allclose(image.affine, label.affine) and image.data.min() >= 0 and image.data.max() <= 1
        assert np.all(image.data[label.data == 0] == 0)  # background zeroed
    quality = synthetic.info["nph"]["image_quality"]
    assert quality["contrast_error"] < 0.2 and quality["ventricle_contrast"] > 0
    before = _snapshot(out)
    again = run_nph("sample-images", f"models={trained_image_model.models}", f"masks={trained_image_model.data}",
                    f"out={out}", TINY)
    assert again.status == 2 and "not empty" in again.err and _snapshot(out) == before
    same = run_nph("sample-images", f"models={trained_image_model.models}", f"masks={trained_image_model.data}",
                   f"out={trained_image_model.data}", TINY)
    assert same.status == 2 and "must differ from masks=" in same.err


@pytest.mark.slow
def test_sample_images_refuses_other_grids_and_mismatched_samplers(run_nph, trained_image_model: TrainedImageModel,
                                                                   tmp_path: Path) -> None:
    other = tmp_path / "other_grid"
    nph("phantom", f"out={other}", "n=1", "shape=[32,32,32]", TINY)
    result = run_nph("sample-images", f"models={trained_image_model.models}", f"masks={other}",
                     f"out={tmp_path / 'o'}", TINY)
    assert result.status == 2 and "grid (32, 32, 32) differs from the image model's [32, 48, 32]" in result.err
    assert not (tmp_path / "o").exists()
    before = _snapshot(trained_image_model.models / "image_dm")
    dm = run_nph("train", "stage=image_dm", f"data={other}", f"models={trained_image_model.models}", TINY,
                 "grid.shape=[32,32,32]")
    assert dm.status == 2 and "autoencoder trained on grid [32, 48, 32]" in dm.err
    assert _snapshot(trained_image_model.models / "image_dm") == before
    rflow = run_nph("sample-images", f"models={trained_image_model.models}", f"masks={trained_image_model.data}",
                    f"out={tmp_path / 'o'}", "sampler=rflow", TINY)
    assert rflow.status == 2 and "trained with DDPM noise" in rflow.err


@pytest.mark.slow
def test_fine_tuning_starts_from_the_bundle_and_a_mismatch_is_listed(run_nph, trained_image_model: TrainedImageModel,
                                                                     tmp_path: Path) -> None:
    source = trained_image_model.models / "image_ae"
    tuned = tmp_path / "tuned"
    result = run_nph("train", "stage=image_ae", f"data={trained_image_model.data}", f"models={tuned}", TINY,
                     f"init={source}", "image_ae.train.max_steps=3", "image_ae.train.lr=1e-5",
                     "wandb.mode=disabled")
    assert result.status == 0, result.err
    _, _, meta = load_bundle(tuned / "image_ae", "image_ae")
    assert meta["init_bundle"] == bundle_digest(source) and meta["steps"] == 3
    _, _, source_meta = load_bundle(source, "image_ae")
    assert meta["quality"]["recon_l1"] < 1.2 * source_meta["quality"]["recon_l1"]  # starts trained, not from scratch
    mismatch = run_nph("train", "stage=image_ae", f"data={trained_image_model.data}", f"models={tmp_path / 'm'}",
                       TINY, f"init={source}", "image_ae.network.channels=[8,16,32]")
    assert mismatch.status == 2 and len(mismatch.err.strip().splitlines()) == 1
    assert "network.channels: bundle [8, 16, 16], config [8, 16, 32]" in mismatch.err
    assert not (tmp_path / "m").exists()
    wrong_kind = run_nph("train", "stage=image_dm", f"data={trained_image_model.data}",
                         f"models={trained_image_model.models}", TINY, f"init={source}")
    assert wrong_kind.status == 2 and "bundle kind is 'image_ae', expected 'image_dm'" in wrong_kind.err
    assert json.loads((trained_image_model.models / "image_dm" / "meta.json").read_text())["steps"] > 3
    # the tuned autoencoder is not the one image_dm was trained on: sampling with the pair is refused
    shutil.copytree(trained_image_model.models / "image_dm", tuned / "image_dm")
    foreign = run_nph("sample-images", f"models={tuned}", f"masks={trained_image_model.data}",
                      f"out={tmp_path / 'o'}", TINY)
    assert foreign.status == 2 and "image_dm: trained on autoencoder" in foreign.err
    assert not (tmp_path / "o").exists()


def test_thesis_protocol_needs_the_squeeze_weights(run_nph, flair_phantoms: Path, tmp_path: Path) -> None:
    result = run_nph("train", "stage=image_ae", f"data={flair_phantoms}", f"models={tmp_path}", TINY,
                     "protocol=thesis")
    assert result.status == 2
    assert result.err.strip().splitlines()[-1].startswith(
        "nph train: error: image_ae.loss.perceptual_weights: not set, but this protocol needs the squeeze perceptual")
    assert not (tmp_path / "image_ae").exists()


@pytest.mark.slow
def test_thesis_protocol_trains_with_a_user_squeeze_file(run_nph, flair_phantoms: Path, tmp_path: Path) -> None:
    import lpips
    import torch

    torch.manual_seed(0)
    weights = tmp_path / "lpips_squeeze.pt"
    torch.save(lpips.LPIPS(pretrained=False, net="squeeze", pnet_rand=True, verbose=False).state_dict(), weights)
    result = run_nph("train", "stage=image_ae", f"data={flair_phantoms}", f"models={tmp_path / 'models'}", TINY,
                     "protocol=thesis", f"image_ae.loss.perceptual_weights={weights}", "image_ae.train.max_steps=2",
                     "wandb.mode=disabled")
    assert result.status == 0, result.err
    meta = json.loads((tmp_path / "models" / "image_ae" / "meta.json").read_text())
    assert meta["perceptual_loss"] is True and meta["steps"] == 2 and np.isfinite(meta["final_loss"])

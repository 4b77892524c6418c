"""Training data: held-out split by case, the memory-mapped case store, the cached mask latents."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nph.cli.main import main
from nph.errors import InputError
from nph.io.nifti import save_volume
from nph.models.bundle import bundle_digest, save_bundle
from nph.models.image_data import load_pairs
from nph.models.mask_ae import MaskAutoencoder, build_mask_ae
from nph.models.mask_data import load_masks
from nph.training.case_store import publish
from nph.training.data import split_cases
from nph.training.image_stages import setup_image_ae
from nph.training.mask_stages import load_mask_ae, setup_mask_ae, setup_mask_dm

GRID = ["experiment=tiny", "grid.shape=[16,24,16]", "grid.spacing=[10.0,9.333,10.0]"]
AE_NETWORK = {"embed_dim": 4, "channels": [8, 8], "num_res_blocks": 1, "latent_channels": 3, "norm_num_groups": 4}
DM_SECTION = {
    "network": {
        "channels": [8, 8],
        "attention_levels": [False, False],
        "num_head_channels": 8,
        "num_res_blocks": 1,
        "norm_num_groups": 4,
        "resblock_updown": False,
    },
    "noise": {"kind": "ddpm", "prediction": "epsilon", "num_train_timesteps": 100},
    "validation_cases": 2,
    "posterior_sampling": True,
    "encode_batch": 2,
}


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cases") / "phantoms"
    assert main(["phantom", f"out={out}", "n=6", "seed=3", *GRID]) == 0
    return out


def test_split_holds_out_whole_cases_seeded_and_independent_of_order():
    ids = [f"case_{i:03d}" for i in range(20)]
    training, validation = split_cases(ids, 5, seed=0)
    assert len(validation) == 5 and sorted(training + validation) == list(range(20))
    assert split_cases(ids, 5, seed=0) == (training, validation)
    assert split_cases(ids, 5, seed=1)[1] != validation
    shuffled = list(reversed(ids))
    _, again = split_cases(shuffled, 5, seed=0)
    assert sorted(shuffled[i] for i in again) == sorted(ids[i] for i in validation)
    _, fewer = split_cases(ids, 3, seed=0)
    assert set(fewer) < set(validation)  # a smaller held-out set is part of the larger one
    assert split_cases(ids, 0, seed=0) == (list(range(20)), [])


@pytest.mark.parametrize("count", [-1, 3, 4])
def test_split_that_leaves_no_training_case_is_refused(count):
    with pytest.raises(InputError, match=r"validation_cases: .* of 3 cases leaves no training case"):
        split_cases(["a", "b", "c"], count, seed=0)


def test_store_values_equal_the_files_and_it_is_built_once(phantoms, tmp_path):
    lazy = load_pairs(phantoms)
    stored = load_pairs(phantoms, cache=tmp_path)
    (folder,) = tmp_path.glob("cases-*")
    labels, images = (np.load(folder / f"{n}.npy", mmap_mode="r") for n in ("labels", "image"))
    assert labels.dtype == np.uint8 and labels.shape == (6, 16, 24, 16)
    assert images.dtype == np.float16 and images.shape == (6, 1, 16, 24, 16)
    for i in range(6):
        a, b = lazy.examples[i], stored.examples[i]
        assert b["labels"].dtype == torch.int64 and torch.equal(a["labels"], b["labels"])
        assert b["image"].dtype == torch.float32 and torch.equal(a["image"].half().float(), b["image"])
        assert float((a["image"] - b["image"]).abs().max()) < 5e-4  # float16 rounding of [0, 1] intensities
    built = os.stat(folder / "labels.npy").st_mtime_ns
    masks = load_masks(phantoms, cache=tmp_path)  # another field set: its own store; this one untouched
    assert torch.equal(masks.examples[2]["labels"], lazy.examples[2]["labels"])
    assert load_pairs(phantoms, cache=tmp_path).examples[5]["labels"].shape == (16, 24, 16)
    assert os.stat(folder / "labels.npy").st_mtime_ns == built and len(list(tmp_path.glob("cases-*"))) == 2
    assert len(pickle.dumps(stored.examples)) < 4096  # workers get the path, not the arrays


def test_store_is_rebuilt_when_a_case_file_changes(phantoms, tmp_path):
    load_masks(phantoms, cache=tmp_path)
    label = next((phantoms / "labelsTr").glob("*.nii.gz"))
    stat = label.stat()
    os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    try:
        load_masks(phantoms, cache=tmp_path)
    finally:
        os.utime(label, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert len(list(tmp_path.glob("cases-*"))) == 2
    assert not list(tmp_path.glob(".tmp-*"))


def _autoencoder_bundle(models: Path, seed: int) -> str:
    torch.manual_seed(seed)
    net = build_mask_ae(AE_NETWORK)
    meta = {"shape": [16, 24, 16], "latent_scale_factor": 0.5, "latent_shape": [3, 8, 12, 8]}
    save_bundle(models / "mask_ae", "mask_ae", {"network": AE_NETWORK}, net.state_dict(), meta)
    return bundle_digest(models / "mask_ae")


def test_mask_latents_encoded_once_per_autoencoder_and_validation_held_out(phantoms, tmp_path, monkeypatch):
    calls = []
    encode = MaskAutoencoder.encode

    def counting(self, labels):
        calls.append(labels.shape[0])
        return encode(self, labels)

    monkeypatch.setattr(MaskAutoencoder, "encode", counting)
    models = tmp_path / "models"
    digest = _autoencoder_bundle(models, seed=0)
    first = setup_mask_dm(DM_SECTION, phantoms, models, cache=tmp_path / "cache", split_seed=4)
    assert calls == [2, 2, 2]  # six cases in batches of encode_batch=2
    (cache,) = (models / "mask_dm" / "training").glob("latents-*")
    assert cache.name.startswith(f"latents-{digest}")
    again = setup_mask_dm(DM_SECTION, phantoms, models, cache=tmp_path / "cache", split_seed=4)  # a requeue
    assert calls == [2, 2, 2]
    for key in ("mu", "sigma", "condition"):
        assert torch.equal(first.examples[1][key], again.examples[1][key])
    masks = load_masks(phantoms)
    case = first.examples.indices[0]
    with torch.inference_mode():
        mu, sigma = encode(load_mask_ae(models / "mask_ae")[0], masks.examples[case]["labels"][None])
    torch.testing.assert_close(first.examples[0]["mu"], mu[0] * 0.5, atol=1e-5, rtol=1e-4)  # scaled posterior
    torch.testing.assert_close(first.examples[0]["sigma"], sigma[0] * 0.5, atol=1e-5, rtol=1e-4)
    split = first.meta["cases"]
    assert split["seed"] == 4 and len(split["validation"]) == 2 and len(split["training"]) == 4
    assert not set(split["validation"]) & set(split["training"])
    assert [masks.case_ids[i] for i in first.validation.indices] == split["validation"]
    assert [masks.case_ids[i] for i in first.examples.indices] == split["training"]
    _autoencoder_bundle(models, seed=1)  # another autoencoder: new latents, the stale ones removed
    setup_mask_dm(DM_SECTION, phantoms, models, cache=tmp_path / "cache", split_seed=4)
    assert calls == [2, 2, 2] * 2
    assert [p.name for p in (models / "mask_dm" / "training").glob("latents-*")] != [cache.name]
    assert not cache.exists()


def test_a_bad_case_stops_the_build_and_leaves_no_store(phantoms, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(phantoms, data)
    victim = sorted((data / "labelsTr").glob("*.nii.gz"))[4]
    save_volume(victim, np.zeros((16, 24, 15), dtype=np.uint8), np.diag([10.0, 9.333, 10.0, 1.0]), dtype=np.uint8)
    with pytest.raises(InputError, match=rf"{victim.name}: grid \(16, 24, 15\) differs from the first case's"):
        load_masks(data, cache=tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir()) or all(p.suffix == ".lock" for p in (tmp_path / "cache").iterdir())


def test_publish_keeps_the_folder_another_builder_finished_first(tmp_path):
    first, second, target = tmp_path / "a", tmp_path / "b", tmp_path / "store"
    for folder, text in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "store.json").write_text(text)
    publish(first, target)
    publish(second, target)
    assert (target / "store.json").read_text() == "first"
    with pytest.raises(OSError):
        publish(second, tmp_path)  # a non-empty folder that is not a finished store is an error


@pytest.mark.parametrize("stage", ["mask_ae", "image_ae"])
def test_autoencoder_stages_train_and_validate_on_disjoint_recorded_cases(phantoms, tmp_path, stage):
    if stage == "mask_ae":
        section = {"network": AE_NETWORK, "validation_cases": 2}
        setup = setup_mask_ae(section, phantoms, cache=tmp_path, split_seed=7)
    else:
        network = {
            "channels": [8, 8],
            "num_res_blocks": 1,
            "latent_channels": 6,
            "norm_num_groups": 8,
            "spade_channels": 8,
            "attention": False,
        }
        loss = {"kl_weight": 1e-6, "adv_weight": 0.0, "adv_start": 0, "perceptual_weight": 0.0}
        setup = setup_image_ae(
            {"network": network, "loss": loss, "validation_cases": 2}, phantoms, cache=tmp_path, split_seed=7
        )
    ids = load_masks(phantoms).case_ids
    split = setup.meta["cases"]
    assert split["seed"] == 7 and setup.meta["training_cases"] == 4 == len(setup.examples)
    assert (
        [ids[i] for i in setup.validation.indices] == split["validation"] == [ids[i] for i in split_cases(ids, 2, 7)[1]]
    )
    assert [ids[i] for i in setup.examples.indices] == split["training"]
    assert not set(split["training"]) & set(split["validation"])
    held_out = {bytes(setup.validation[i]["labels"].numpy()) for i in range(2)}
    assert not held_out & {bytes(setup.examples[i]["labels"].numpy()) for i in range(4)}

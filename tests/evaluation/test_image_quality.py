"""Image quality: FID from user-given weights (a tiny MONAI ResNet stands in for MedicalNet's), MMD, MS-SSIM,
intensity statistics and conditioning fidelity, through the library and the ``nph image-quality`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from monai.networks.nets import ResNet
from safetensors.torch import save_file

from nph.data.dataset import DatasetPaths, finalize, write_case
from nph.data.phantoms import make_phantom
from nph.errors import InputError
from nph.evaluation.features import ResNetSpec, find_weights, load_feature_network
from nph.evaluation.image_quality import QualityOptions, image_quality, ms_ssim_settings

SHAPE, SPACING = (32, 48, 32), (5.0, 4.667, 5.0)
TINY = ResNetSpec(block="basic", layers=(1, 1, 1, 1), block_inplanes=(4, 8, 16, 32))
TINY_OVERRIDES = ["fid.network.block=basic", "fid.network.layers=[1,1,1,1]", "fid.network.block_inplanes=[4,8,16,32]"]


def write_dataset(root, n, *, shift: float = 0.0, requested: bool = False):
    """Phantoms (seeds 0..n-1) whose images are brightened by ``shift`` (clipped to [0, 1]) inside the head."""
    paths, rows = DatasetPaths(root), []
    for i in range(n):
        enlargement = i / max(n - 1, 1)
        p = make_phantom(i, shape=SHAPE, spacing=SPACING, enlargement=enlargement, contrast="flair")
        image = np.where(p.image > 0, np.clip(p.image + shift, 0, 1), 0).astype(np.float32)
        extra = {"requested_condition": enlargement} if requested else {}
        rows.append(write_case(paths, f"c{i}", p.label_ids, p.affine, image, provenance=extra))
    finalize(paths, rows)
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny ResNet's weights in MedicalNet's checkpoint layout ({"state_dict": {"module.*": ...}})."""
    torch.manual_seed(0)
    net = ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[4, 8, 16, 32], spatial_dims=3,
                 n_input_channels=1, conv1_t_size=7, conv1_t_stride=2, shortcut_type="B", bias_downsample=False,
                 feed_forward=False)
    folder = tmp_path_factory.mktemp("weights")
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, folder / "tiny.pth")
    save_file(net.state_dict(), str(folder / "tiny.safetensors"))
    return folder


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("iq")
    return {"real": write_dataset(root / "real", 6), "same": write_dataset(root / "same", 6, requested=True),
            "shifted": write_dataset(root / "shifted", 6, shift=0.3)}


def test_fid_is_zero_for_identical_data_and_grows_with_a_shift(weights, datasets, tmp_path) -> None:
    options = QualityOptions(weights=str(weights / "tiny.pth"), network=TINY, ms_ssim_pairs=6)
    same = image_quality(datasets["real"], datasets["same"], tmp_path / "same", options)
    shifted = image_quality(datasets["real"], datasets["shifted"], tmp_path / "shifted", options)
    assert abs(same["fid"]) < 1e-3 * shifted["fid"] and shifted["fid"] > 0
    assert shifted["mmd"] > 0 > same["mmd"]  # the unbiased estimate dips below 0 for identical samples
    assert same["ms_ssim"]["synthetic"] == pytest.approx(same["ms_ssim"]["real"])
    assert 0 < same["ms_ssim"]["real"] < 1  # different heads are not identical
    stats = (tmp_path / "shifted" / "intensity_stats.csv").read_text().splitlines()
    assert stats[0].startswith("label_id,label,n_voxels_real,mean_real,sd_real")
    background = next(line for line in stats if line.startswith("0,background"))
    assert float(background.split(",")[-1]) == 0.0  # background untouched
    assert 0.05 < shifted["intensity"]["max_abs_mean_difference"] <= 0.3 + 1e-6
    fidelity = same["conditioning_fidelity"]
    assert fidelity["n"] == 6 and fidelity["pearson_r"] > 0.8  # ventricle fraction follows enlargement
    assert shifted["conditioning_fidelity"] is None  # no requested conditions in that manifest
    written = json.loads((tmp_path / "same" / "image_quality.json").read_text())
    assert written["fid"] == pytest.approx(same["fid"]) and written["weights"].endswith("tiny.pth")
    safetensors = image_quality(datasets["real"], datasets["shifted"], tmp_path / "st",
                                QualityOptions(weights=str(weights / "tiny.safetensors"), network=TINY,
                                               ms_ssim_pairs=2))
    assert safetensors["fid"] == pytest.approx(shifted["fid"], rel=1e-6)


def test_weights_are_required_and_must_fit(weights, tmp_path) -> None:
    with pytest.raises(InputError, match="untrained network"):
        find_weights(None, None)
    with pytest.raises(InputError, match="holds none of"):
        find_weights(None, tmp_path)
    (tmp_path / "resnet_50_23dataset.pth").write_bytes((weights / "tiny.pth").read_bytes())
    assert find_weights(None, tmp_path) == tmp_path / "resnet_50_23dataset.pth"
    with pytest.raises(InputError, match="does not fit a bottleneck ResNet"):
        load_feature_network(weights / "tiny.pth")  # the default ResNet-50 needs other weights
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read as weights"):
        load_feature_network(tmp_path / "junk.pth", TINY)


def test_ms_ssim_settings_fit_the_grid() -> None:
    # all five scales, with the kernel shrunk to 5: MONAI needs 96 // (5 - 1) ** 2 > kernel - 1
    assert ms_ssim_settings((96, 128, 96)) == (5, pytest.approx((0.0448, 0.2856, 0.3001, 0.2363, 0.1333), rel=2e-3))
    kernel, weights = ms_ssim_settings(SHAPE)
    assert 32 // max(1, len(weights) - 1) ** 2 > kernel - 1 and sum(weights) == pytest.approx(1.0)


def test_image_quality_command(run_nph, weights, datasets, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRETRAINED_MODEL_DIRECTORY", str(tmp_path / "nowhere"))
    args = [f"real={datasets['real']}", f"synthetic={datasets['shifted']}", "experiment=tiny", *TINY_OVERRIDES]
    missing = run_nph("image-quality", *args, f"out={tmp_path / 'a'}")
    assert missing.status == 2 and "PRETRAINED_MODEL_DIRECTORY" in missing.err and not (tmp_path / "a").exists()
    bad_bins = run_nph("image-quality", *args, f"out={tmp_path / 'b'}", f"fid.weights={weights / 'tiny.pth'}",
                       "fidelity.bins=[1,0]")
    assert bad_bins.status == 2 and "fidelity.bins" in bad_bins.err
    monkeypatch.setenv("PRETRAINED_MODEL_DIRECTORY", str(weights))
    (weights / "resnet_50_23dataset.pth").write_bytes((weights / "tiny.pth").read_bytes())
    done = run_nph("image-quality", *args, f"out={tmp_path / 'c'}", "ms_ssim_pairs=2")
    assert done.status == 0, done.err
    result = json.loads((tmp_path / "c" / "image_quality.json").read_text())
    assert result["fid"] > 0 and result["n_real"] == 6 and result["network"]["block"] == "basic"

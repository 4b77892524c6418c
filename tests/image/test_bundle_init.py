"""Starting a stage from a bundle: a matching bundle loads its weights, anything that differs is listed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from nph.data.labels import label_id_table
from nph.errors import InputError
from nph.models.bundle import save_bundle
from nph.models.bundle_init import bundle_differences, init_from_bundle
from nph.models.image_ae import build_image_ae

NETWORK: dict[str, Any] = {"channels": [8, 16], "num_res_blocks": 1, "latent_channels": 6, "norm_num_groups": 8,
                           "spade_channels": 8, "attention": False}
SPACING = (5.0, 4.667, 5.0)


def _bundle(folder: Path, network: dict[str, Any], spacing: tuple[float, ...] = SPACING,
            label_ids: dict[str, int] | None = None) -> torch.nn.Module:
    torch.manual_seed(1)
    net = build_image_ae(network)
    meta = {"label_ids": label_ids or label_id_table(), "spacing": list(spacing), "steps": 7}
    save_bundle(folder, "image_ae", {"network": network}, net.state_dict(), meta)
    return net


def test_a_matching_bundle_loads_its_weights(tmp_path: Path) -> None:
    source = _bundle(tmp_path / "image_ae", NETWORK)
    torch.manual_seed(2)
    target = build_image_ae(NETWORK)
    assert not torch.equal(target.post_quant_conv.conv.weight, source.post_quant_conv.conv.weight)
    digest = init_from_bundle(tmp_path / "image_ae", "image_ae", target, dict(NETWORK), SPACING)
    assert len(digest) == 16
    for (name, a), (_, b) in zip(source.state_dict().items(), target.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_every_difference_is_listed_in_one_error(tmp_path: Path) -> None:
    _bundle(tmp_path / "image_ae", NETWORK, spacing=(1.667, 1.75, 1.667), label_ids={"background": 0})
    wanted = {**NETWORK, "channels": [8, 24]}
    with pytest.raises(InputError) as err:
        init_from_bundle(tmp_path / "image_ae", "image_ae", build_image_ae(NETWORK), wanted, SPACING)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"init={tmp_path / 'image_ae'}")
    assert "label table" in message
    assert "network.channels: bundle [8, 16], config [8, 24]" in message
    assert "spacing: bundle [1.667, 1.75, 1.667], config [5.0, 4.667, 5.0] mm" in message


def test_wrong_kind_and_missing_bundle_are_input_errors(tmp_path: Path) -> None:
    _bundle(tmp_path / "image_ae", NETWORK)
    with pytest.raises(InputError, match="bundle kind is 'image_ae', expected 'image_dm'"):
        init_from_bundle(tmp_path / "image_ae", "image_dm", build_image_ae(NETWORK), NETWORK, SPACING)
    with pytest.raises(InputError, match=r"meta\.json: missing"):
        init_from_bundle(tmp_path / "nothing", "image_ae", build_image_ae(NETWORK), NETWORK, SPACING)


def test_bundle_differences_ignores_tuple_list_and_tiny_spacing_differences() -> None:
    config = {"network": {**NETWORK, "channels": [8, 16]}}
    meta = {"label_ids": label_id_table(), "spacing": [5.0, 4.6670001, 5.0]}
    assert bundle_differences(config, meta, {**NETWORK, "channels": (8, 16)}, SPACING) == []
    assert bundle_differences(config, meta, {**NETWORK, "latent_channels": 3}, SPACING) == [
        "network.latent_channels: bundle 6, config 3"]

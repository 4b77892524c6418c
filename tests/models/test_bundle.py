"""Model bundles: round trip, loading in a fresh process, and clear errors for corrupt or mismatched bundles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from nph.errors import InputError
from nph.models.bundle import bundle_digest, load_bundle, save_bundle

STATE = {"conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4), "step": torch.tensor([7])}
CONFIG = {"network": {"channels": [8, 16], "attention": False}, "train": {"lr": 0.001}}


@pytest.fixture
def bundle(tmp_path):
    return save_bundle(tmp_path / "mask_ae", "mask_ae", CONFIG, STATE, {"latent_scale_factor": 0.83, "steps": 5})


def test_round_trip(bundle):
    config, state, meta = load_bundle(bundle, "mask_ae")
    assert config == CONFIG
    assert set(state) == set(STATE) and all(torch.equal(state[k], STATE[k]) for k in STATE)
    assert meta["kind"] == "mask_ae" and meta["latent_scale_factor"] == 0.83 and meta["steps"] == 5
    assert len(meta["weights_sha256"]) == 64 and bundle_digest(bundle) == meta["weights_sha256"][:16]


def test_loads_in_a_fresh_process(bundle):
    code = ("import sys, torch; from nph.models.bundle import load_bundle; "
            "c, s, m = load_bundle(sys.argv[1]); print(m['kind'], float(s['conv.weight'].sum()), c['train']['lr'])")
    env = {"PATH": os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1", "HOME": os.environ.get("HOME", "/tmp")}
    out = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True, env=env,
                         check=True, timeout=120)
    assert out.stdout.split() == ["mask_ae", "276.0", "0.001"]


def test_corrupt_weights(bundle):
    path = bundle / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"weights.safetensors: content does not match meta.json's weights_sha256"):
        load_bundle(bundle)


def test_wrong_kind(bundle):
    with pytest.raises(InputError, match=r"meta.json: bundle kind is 'mask_ae', expected 'mask_dm'"):
        load_bundle(bundle, "mask_dm")


def test_missing_meta_and_folder(bundle, tmp_path):
    (bundle / "meta.json").unlink()
    with pytest.raises(InputError, match=r"meta.json: missing \(incomplete bundle"):
        load_bundle(bundle)
    with pytest.raises(InputError, match=r"meta.json: missing \(not a model bundle folder"):
        load_bundle(tmp_path / "nothing")


def test_bad_meta_json(bundle):
    (bundle / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match=r"meta.json: not valid JSON"):
        load_bundle(bundle)
    (bundle / "meta.json").write_text(json.dumps({"kind": "mask_ae"}))
    with pytest.raises(InputError, match="needs 'kind' and 'weights_sha256'"):
        load_bundle(bundle)


def test_edited_config_is_refused(bundle):
    (bundle / "config.yaml").write_text("network: {channels: [4]}\n")
    with pytest.raises(InputError, match=r"config.yaml: content does not match"):
        load_bundle(bundle)

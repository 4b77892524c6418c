"""Sharded, resumable generation: 1 shard = 3 shards = killed and resumed; merge is idempotent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from phantom_sampler import PhantomPairSampler, image_array, label_bytes

from nph.data.dataset import LabelledDataset
from nph.errors import InputError
from nph.synthesis.conditions import ConditionKind, ConditionSpec
from nph.synthesis.generate import generate_shard
from nph.synthesis.merge import merge, progress
from nph.synthesis.records import SynthesisPaths, check_run_settings
from nph.synthesis.shards import Shard

N, SEED = 7, 11
SPEC = ConditionSpec(ConditionKind.UNIFORM, low=0.0, high=1.2)


def _run(root, shards: int, batch_size: int, sampler=None) -> SynthesisPaths:
    paths = SynthesisPaths(root)
    check_run_settings(paths, {"n": N, "seed": SEED, "shards": shards})
    for k in range(shards):
        generate_shard(sampler or PhantomPairSampler(), paths, n=N, seed=SEED, shard=Shard(k, shards),
                       conditions=SPEC, batch_size=batch_size)
    return paths


def test_sharding_and_batching_do_not_change_the_dataset(tmp_path) -> None:
    one = _run(tmp_path / "one", shards=1, batch_size=4)
    three = _run(tmp_path / "three", shards=3, batch_size=1)
    m1, m3 = merge(one), merge(three)
    assert m1["case_id"].tolist() == m3["case_id"].tolist() == [f"synth_{i:07d}" for i in range(N)]
    assert m1["requested_condition"].tolist() == m3["requested_condition"].tolist()
    for case in m1["case_id"]:
        assert label_bytes(one.root, case) == label_bytes(three.root, case)
        assert np.allclose(image_array(one.root, case), image_array(three.root, case), atol=1e-6)
    # larger requested conditions give larger realised ventricles with the phantom sampler
    assert np.corrcoef(m1["requested_condition"], m1["ventricle_fraction"])[0, 1] > 0.8
    ds = LabelledDataset(one.root)
    assert len(ds) == N and ds.has_images
    image = ds.image(ds.case_ids[0]).data
    assert float(image[ds.label(ds.case_ids[0]).data == 0].max()) == 0.0  # background zeroed


def test_killed_run_resumes_and_redoes_only_the_missing(tmp_path) -> None:
    reference = _run(tmp_path / "ref", shards=1, batch_size=2)
    paths = SynthesisPaths(tmp_path / "killed")
    check_run_settings(paths, {"n": N, "seed": SEED, "shards": 1})
    with pytest.raises(KeyboardInterrupt):
        generate_shard(PhantomPairSampler(fail_after=3), paths, n=N, seed=SEED, shard=Shard(0, 1),
                       conditions=SPEC, batch_size=2)
    done_before = progress(paths)[0].done
    assert 1 <= done_before <= 3
    assert not list(paths.root.rglob(".tmp-*")), "no partial file survives a kill"
    # a half-written sample: its files exist but its record does not — it must be redone
    (paths.records_dir / "synth_0000000.json").unlink()
    resumed = PhantomPairSampler()
    generate_shard(resumed, paths, n=N, seed=SEED, shard=Shard(0, 1), conditions=SPEC, batch_size=3)
    assert resumed.made == [i for i in range(N) if i == 0 or i >= done_before]
    merged = merge(paths)
    for case in merged["case_id"]:
        assert label_bytes(paths.root, case) == label_bytes(reference.root, case)
    assert progress(paths)[0].missing == 0


def test_merge_is_idempotent_and_refuses_incomplete_runs(tmp_path) -> None:
    paths = SynthesisPaths(tmp_path / "run")
    check_run_settings(paths, {"n": N, "seed": SEED, "shards": 2})
    generate_shard(PhantomPairSampler(), paths, n=N, seed=SEED, shard=Shard(0, 2), conditions=SPEC)
    assert [(p.done, p.total) for p in progress(paths)] == [(4, 4), (0, 3)]
    with pytest.raises(InputError, match="3 of 7 samples are missing"):
        merge(paths)
    # what SIGKILL between a write and its os.replace leaves; shard 1 may still be writing, so a partial merge keeps it
    leftovers = [paths.records_dir / ".tmp-x1.json", paths.images_dir / ".tmp-x2.nii.gz"]
    for leftover in leftovers:
        leftover.write_text("half")
    assert len(merge(paths, allow_partial=True)) == 4
    assert all(leftover.exists() for leftover in leftovers)
    generate_shard(PhantomPairSampler(), paths, n=N, seed=SEED, shard=Shard(1, 2), conditions=SPEC)
    merge(paths)  # every shard done: no writer is left, the leftovers go, nothing else does
    assert not any(leftover.exists() for leftover in leftovers)
    assert len(list(paths.records_dir.glob("*.json"))) == N and len(list(paths.images_dir.iterdir())) == N
    first = (paths.manifest.read_bytes(), paths.dataset_json.read_bytes())
    merge(paths)
    assert (paths.manifest.read_bytes(), paths.dataset_json.read_bytes()) == first
    assert json.loads(paths.dataset_json.read_text())["numTraining"] == N


def test_a_folder_of_another_run_is_refused(tmp_path) -> None:
    paths = SynthesisPaths(tmp_path)
    check_run_settings(paths, {"n": N, "seed": SEED})
    with pytest.raises(InputError, match="seed: 11 → 12"):
        check_run_settings(paths, {"n": N, "seed": 12})

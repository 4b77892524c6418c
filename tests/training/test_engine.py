"""The engine: exact resume after a signal, checkpoints, schedules, EMA, bad checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from toy_task import ToyTask, toy_config, toy_dataset

from nph.errors import InputError
from nph.training import Engine, EngineConfig
from nph.training.checkpoint import load_checkpoint
from nph.training.data import BatchOrder
from nph.training.optim import warmup_cosine

WEIGHTS = np.linspace(1.0, 3.0, 12)


def _train(out, task, data, **overrides):
    return Engine(task, data, toy_config(**overrides), out, run_config={"train": {"seed": 7}}, weights=WEIGHTS)()


def test_resume_after_sigusr2_is_bit_identical(tmp_path, toy_data):
    reference = _train(tmp_path / "a", ToyTask(), toy_data)
    assert reference.steps == 8 and not reference.interrupted
    # the signal arrives during the 2nd micro-batch of step 4 (grad_accum=2): step 4 completes, then it stops
    first = _train(tmp_path / "b", ToyTask(signal_at_call=8), toy_data)
    assert first.interrupted and first.steps == 4
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pt")["step"] == 4
    resumed = _train(tmp_path / "b", ToyTask(init_seed=123), toy_data)  # different init: all state must come back
    assert resumed.steps == 8 and not resumed.interrupted
    assert resumed.losses == reference.losses
    for key, value in reference.weights.items():
        assert torch.equal(value, resumed.weights[key]), key
    assert resumed.losses[-1] < resumed.losses[0]


def test_ema_weights_differ_from_raw_and_lag(tmp_path, toy_data):
    task = ToyTask()
    result = _train(tmp_path, task, toy_data, ema_decay=0.5)
    raw = task.net.state_dict()
    assert not torch.equal(result.weights["0.weight"], raw["0.weight"])
    plain_task = ToyTask()
    no_ema = _train(tmp_path / "raw", plain_task, toy_data, ema_decay=0.0)
    assert torch.equal(no_ema.weights["0.weight"], plain_task.net.state_dict()["0.weight"])


def test_checkpoint_every_and_config_saved(tmp_path, toy_data):
    _train(tmp_path, ToyTask(), toy_data, checkpoint_every=3, max_steps=4)
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 4 and "seed: 7" in state["config"]
    assert (tmp_path / "config.yaml").read_text().startswith("train:")
    assert len(state["losses"]) == 4


def test_validation_metrics_reported(tmp_path, toy_data):
    engine = Engine(ToyTask(), toy_data, toy_config(max_steps=2), tmp_path, validation=toy_data[:3])
    result = engine()
    assert set(result.validation) == {"mse"} and 0 < result.validation["mse"] < 2


def test_warmup_cosine_schedule():
    factor = warmup_cosine(warmup_steps=4, max_steps=104, schedule="cosine", min_ratio=0.1)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(54) == pytest.approx(0.55)
    assert factor(104) == pytest.approx(0.1)
    assert warmup_cosine(0, 10, "constant", 0.0)(9) == 1.0


def test_batch_order_is_a_function_of_step_and_splits_over_ranks():
    order = BatchOrder(num_examples=10, micro_batch=4, grad_accum=2, seed=3)
    full = order.indices(5, 1)
    assert full == BatchOrder(10, 4, 2, seed=3).indices(5, 1)
    halves = order.indices(5, 1, rank=0, world_size=2), order.indices(5, 1, rank=1, world_size=2)
    assert halves == (full[0::2], full[1::2])
    epoch0 = [i for s in range(0, 2) for m in range(2) for i in order.indices(s, m)][:10]
    assert sorted(epoch0) == list(range(10))  # one epoch sees every example once
    weighted = BatchOrder(2, 100, 1, seed=0, weights=np.array([1.0, 9.0]))
    assert 0.8 < np.mean(weighted.indices(0, 0)) < 0.98


def test_damaged_checkpoint_is_input_error(tmp_path, toy_data):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"checkpoint.pt: not a readable training checkpoint"):
        Engine(ToyTask(), toy_data, toy_config(), tmp_path)()
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"not a checkpoint"


def test_checkpoint_of_another_model_is_input_error(tmp_path, toy_data):
    _train(tmp_path, ToyTask(), toy_data, max_steps=1)
    other = ToyTask()
    other.net[0] = torch.nn.Conv3d(1, 5, 3, padding=1)
    other.net[3] = torch.nn.Conv3d(5, 1, 3, padding=1)
    with pytest.raises(InputError, match="does not fit this model"):
        Engine(other, toy_data, toy_config(), tmp_path)()


@pytest.mark.parametrize(("key", "value", "message"), [
    ("batch_size", 3, "not divisible by train.grad_accum"), ("lr", 0.0, "train.lr"),
    ("precision", "fp8", "train.precision"), ("schedule", "step", "train.schedule"), ("max_steps", 0, "max_steps"),
])
def test_bad_engine_config(key, value, message):
    with pytest.raises(InputError, match=message):
        toy_config(**{key: value})


def test_unknown_config_key_lists_known_ones():
    with pytest.raises(InputError, match=r"unknown key\(s\) \['lr_max'\].*warmup_steps=0"):
        EngineConfig.from_dict({"max_steps": 1, "batch_size": 1, "lr": 1.0, "lr_max": 2})


def test_toy_dataset_is_seeded():
    assert torch.equal(toy_dataset(seed=1)[3]["x"], toy_dataset(seed=1)[3]["x"])


def test_checkpoint_hook_saves_and_returns_the_requeue_object(tmp_path, toy_data):
    engine = Engine(ToyTask(), toy_data, toy_config(max_steps=2), tmp_path, requeue=lambda e: ("requeue", e))
    engine()
    (tmp_path / "checkpoint.pt").unlink()
    assert engine.checkpoint() == ("requeue", engine)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert Engine(ToyTask(), toy_data, toy_config(), tmp_path / "other").checkpoint() is None  # nothing built yet
    assert not (tmp_path / "other" / "checkpoint.pt").exists()


def test_loader_workers_change_nothing_and_resume_stays_exact(tmp_path, toy_data):
    reference = _train(tmp_path / "a", ToyTask(), toy_data)
    first = _train(tmp_path / "b", ToyTask(signal_at_call=8), toy_data, num_workers=2, prefetch=3)
    assert first.interrupted and first.steps == 4
    resumed = _train(tmp_path / "b", ToyTask(init_seed=123), toy_data, num_workers=2)
    assert resumed.losses == reference.losses
    for key, value in reference.weights.items():
        assert torch.equal(value, resumed.weights[key]), key


def test_bad_loader_config():
    with pytest.raises(InputError, match=r"train\.num_workers"):
        toy_config(num_workers=-1)
    with pytest.raises(InputError, match=r"train\.prefetch"):
        toy_config(prefetch=0)

"""Shard ownership and condition draws: each sample belongs to one shard and depends on (seed, i) only."""

from __future__ import annotations

import numpy as np
import pytest

from nph.errors import InputError
from nph.seeds import sample_seed
from nph.synthesis.conditions import ConditionKind, ConditionSpec, draw_condition
from nph.synthesis.shards import Shard, parse_shard, shard_indices


def test_shards_partition_the_indices() -> None:
    parts = [shard_indices(10, Shard(k, 3)) for k in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(i for part in parts for i in part) == list(range(10))
    assert parse_shard("2/4") == Shard(2, 4) and parse_shard(None) == Shard(0, 1)


@pytest.mark.parametrize("text", ["4/4", "1/0", "a/b", "-1/3", "3"])
def test_bad_shard_is_an_input_error(text) -> None:
    with pytest.raises(InputError, match="shard="):
        parse_shard(text)


def test_conditions_depend_on_seed_and_index_only() -> None:
    spec = ConditionSpec(ConditionKind.UNIFORM, low=0.0, high=1.5)
    draws = [draw_condition(spec, 7, i) for i in range(2000)]
    assert draws[:5] == [draw_condition(spec, 7, i) for i in range(5)]
    assert draws[3] != draw_condition(spec, 8, 3)
    assert min(draws) >= 0.0 and max(draws) <= 1.5 and abs(np.mean(draws) - 0.75) < 0.05
    assert sample_seed(7, 3) == sample_seed(7, 3) != sample_seed(7, 4)


def test_list_empirical_and_large_kinds() -> None:
    assert [draw_condition(ConditionSpec(ConditionKind.LIST, values=(0.2, 1.3)), 0, i) for i in range(3)] == [
        0.2, 1.3, 0.2]
    values = tuple(np.linspace(0, 1, 11))
    plain = [draw_condition(ConditionSpec(ConditionKind.EMPIRICAL, empirical=values), 1, i) for i in range(3000)]
    large = [draw_condition(ConditionSpec(ConditionKind.LARGE, empirical=values, power=2.0), 1, i) for i in range(3000)]
    assert set(plain) <= set(values) and abs(np.mean(plain) - 0.5) < 0.03
    # weights ∝ (rank/11)^2 over values k/10: the expected mean is sum(k^3)/(10 sum(k^2)) over k = 1..11 ranks
    ranks = np.arange(1, 12)
    expected = float((ranks**2 * (ranks - 1) / 10).sum() / (ranks**2).sum())
    assert abs(np.mean(large) - expected) < 0.03 and np.mean(large) > np.mean(plain) + 0.15


def test_bad_condition_specs() -> None:
    with pytest.raises(InputError, match="low"):
        ConditionSpec(ConditionKind.UNIFORM, low=2.0, high=1.0)
    with pytest.raises(InputError, match="empty"):
        ConditionSpec(ConditionKind.LIST)
    with pytest.raises(InputError, match="dataset"):
        ConditionSpec(ConditionKind.LARGE)

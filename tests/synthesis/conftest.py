"""Fixtures of the synthesis tests (the sampler itself lives in phantom_sampler.py)."""

from __future__ import annotations

import pytest
from phantom_sampler import PhantomPairSampler


@pytest.fixture
def phantom_sampler() -> PhantomPairSampler:
    return PhantomPairSampler()

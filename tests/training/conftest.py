"""Fixtures of the engine tests."""

from __future__ import annotations

import pytest
import torch
from toy_task import toy_dataset


@pytest.fixture
def toy_data() -> list[dict[str, torch.Tensor]]:
    return toy_dataset()

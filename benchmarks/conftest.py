"""Benchmark fixtures: the tiny trained LDM (trained once per session) and a summary of the measured numbers.

Benchmarks report; they are not timed tests. Each benchmark puts its figures in ``benchmark.extra_info``
(kept in ``--benchmark-json``) and in :data:`SUMMARY`, which is printed at the end of the run so the
numbers can be copied into docs/performance.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

# The tiny-LDM recipe lives with the tests; reuse it rather than keeping a second copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_ldm import train_tiny_ldm

os.environ.setdefault("WANDB_MODE", "disabled")

#: (benchmark name, figures) in the order they were measured.
SUMMARY: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture(scope="session")
def ldm_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the four tiny bundles (16×24×16 grid), trained for real once per session."""
    return train_tiny_ldm(tmp_path_factory.mktemp("tiny_ldm"))


@pytest.fixture
def record_figures(request: pytest.FixtureRequest) -> Any:
    """``record_figures(dict)``: keep a benchmark's figures for the end-of-run summary."""

    def _record(figures: dict[str, Any]) -> None:
        SUMMARY.append((request.node.name, dict(figures)))

    return _record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SUMMARY:
        return
    terminalreporter.section("nph benchmark figures")
    for name, figures in SUMMARY:
        terminalreporter.write_line(name)
        for key, value in figures.items():
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            terminalreporter.write_line(f"    {key}: {shown}")

"""Shared test fixtures: running the ``nph`` command in-process and capturing what a user would see."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from tiny_ldm import train_tiny_ldm

# Two cores are shared by the whole suite; keep BLAS/torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("WANDB_MODE", "disabled")


@dataclass
class CommandResult:
    """Exit status and captured output of one ``nph`` invocation."""

    status: int
    out: str
    err: str


@pytest.fixture
def run_nph(capsys: pytest.CaptureFixture[str]) -> Callable[..., CommandResult]:
    """Call ``nph <args>`` in this process; returns status, stdout and stderr."""
    from nph.cli.main import main

    def _run(*args: str) -> CommandResult:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return CommandResult(status, captured.out, captured.err)

    return _run


@pytest.fixture(scope="session")
def ldm_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with all four tiny bundles (mask_ae, mask_dm, image_ae, image_dm), trained once."""
    return train_tiny_ldm(tmp_path_factory.mktemp("tiny_ldm"))

"""Fixtures for the launcher: the real loopback SLURM, the apptainer test double, the launcher run in-process.

The SLURM tests need the cluster of scripts/slurm_local.sh. If it is not running and we are root, the
session starts it (and stops it at the end). They skip only where ``sinfo`` is missing and ``CI`` is unset;
under CI a missing cluster is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
FAKE_APPTAINER = Path(__file__).resolve().parent / "fake_apptainer"
STATE = Path(os.environ.get("NPH_SLURM_DIR", "/tmp/nph-slurm"))


def _cluster_up(conf: Path) -> bool:
    if not conf.is_file():
        return False
    env = {**os.environ, "SLURM_CONF": str(conf)}
    try:
        result = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0 and any(s in result.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm_conf() -> Iterator[Path]:
    """slurm.conf of a running loopback cluster (started here when needed and possible)."""
    if shutil.which("sinfo") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but sinfo is missing: install slurm-wlm and run scripts/slurm_local.sh start")
        pytest.skip("SLURM tests need sinfo (Debian slurm-wlm) and scripts/slurm_local.sh start, run as root")
    conf = STATE / "etc" / "slurm.conf"
    started = False
    if not _cluster_up(conf):
        if os.geteuid() != 0:
            pytest.fail(f"no loopback SLURM at {STATE}: run `sudo scripts/slurm_local.sh start {STATE}` first")
        subprocess.run([str(SCRIPT), "start", str(STATE)], check=True, env=dict(os.environ), timeout=300)
        started = True
    assert _cluster_up(conf), f"loopback SLURM at {STATE} is not answering (logs: {STATE / 'log'})"
    yield conf
    if started:
        subprocess.run([str(SCRIPT), "stop", str(STATE)], check=False, env=dict(os.environ), timeout=120)


@pytest.fixture
def slurm_env(slurm_conf: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point sbatch/sacct (run by submitit from this process) at the loopback cluster."""
    monkeypatch.setenv("SLURM_CONF", str(slurm_conf))
    return slurm_conf


@pytest.fixture
def fake_apptainer(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The apptainer TEST DOUBLE; `nph` (this venv's) on PATH, as it is inside the image."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return FAKE_APPTAINER


@dataclass
class LaunchResult:
    """Exit status and captured output of one ``python -m launch`` invocation."""

    status: int
    out: str
    err: str


@pytest.fixture
def run_launch(capsys: pytest.CaptureFixture[str]) -> Callable[..., LaunchResult]:
    """Call ``python -m launch <args>`` in this process; returns status, stdout and stderr."""
    from launch.cli import main

    def _run(*args: str) -> LaunchResult:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return LaunchResult(status, captured.out, captured.err)

    return _run

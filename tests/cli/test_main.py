"""The ``nph`` dispatcher: help, unknown commands, config composition and exit status 2 for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nph.cli.config import compose_config
from nph.errors import InputError


def test_help_lists_commands(run_nph) -> None:
    result = run_nph("--help")
    assert result.status == 0 and "usage: nph <command>" in result.out and "phantom" in result.out


def test_unknown_command_is_exit_2(run_nph) -> None:
    result = run_nph("no-such-command", "a=1")
    assert result.status == 2 and "unknown command 'no-such-command'" in result.err


def test_configs_compose_with_experiment_and_report_missing_keys(tmp_path, monkeypatch) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "tiny.yaml").write_text("# @package _global_\ngrid:\n  shape: [8, 8, 8]\n")
    (tmp_path / "experiment" / "thesis.yaml").write_text("# @package _global_\ngrid:\n  shape: [96, 128, 96]\n")
    (tmp_path / "demo_cmd.yaml").write_text(
        "defaults:\n  - _self_\n  - experiment: thesis\nout: ???\nshape: ${grid.shape}\n")
    monkeypatch.setenv("NPH_CONFIG_DIR", str(tmp_path))
    cfg = compose_config("demo-cmd", ["out=/x", "experiment=tiny"])
    assert list(cfg.shape) == [8, 8, 8] and cfg.out == "/x"
    assert list(compose_config("demo-cmd", ["out=/x"]).shape) == [96, 128, 96]
    with pytest.raises(InputError, match=r"missing: out=\.\.\."):
        compose_config("demo-cmd", [])
    with pytest.raises(InputError, match="bad configuration"):
        compose_config("demo-cmd", ["out=/x", "nokey=1"])
    with pytest.raises(InputError, match="no config for command"):
        compose_config("other", [])


def test_console_script_runs_in_a_fresh_process() -> None:
    done = subprocess.run([sys.executable, "-m", "nph", "--version"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.startswith("nph ")

"""Progress reporting: tqdm on a terminal, whole lines at an interval in a log file (no \\r frames)."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from nph.progress import LineProgress, progress


class _Clock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_tqdm_and_a_file_gets_lines() -> None:
    assert isinstance(progress(total=3, desc="x", stream=_Terminal()), tqdm)
    assert isinstance(progress(total=3, desc="x", stream=io.StringIO()), LineProgress)
    assert isinstance(progress(total=3, desc="x", stream=io.StringIO(), disable=True), tqdm)
    quiet = progress(range(3), desc="x", stream=io.StringIO(), in_logs=False)  # set-up steps: a terminal only
    assert isinstance(quiet, tqdm) and quiet.disable and list(quiet) == [0, 1, 2]
    assert not progress(total=3, desc="x", stream=_Terminal(), in_logs=False).disable


def test_lines_on_a_terminal_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """NPH_PROGRESS=lines (make demo's parallel steps share one terminal): whole lines, nothing \\r-drawn."""
    monkeypatch.setenv("NPH_PROGRESS", "lines")
    terminal = _Terminal()
    with progress(total=2, desc="shared", unit="step", stream=terminal) as bar:
        assert isinstance(bar, LineProgress)
        bar.update(2)
    assert "\r" not in terminal.getvalue() and terminal.getvalue().splitlines()[-1].startswith("shared: 2/2 step")
    assert progress(total=3, desc="x", stream=_Terminal(), in_logs=False).disable  # set-up steps stay quiet
    monkeypatch.setenv("NPH_PROGRESS", "auto")
    assert isinstance(progress(total=3, desc="x", stream=_Terminal()), tqdm)


def test_lines_come_at_the_interval_and_at_the_end() -> None:
    log, clock = io.StringIO(), _Clock()
    bar = LineProgress(total=100, desc="train", unit="step", stream=log, interval=5.0, clock=clock)
    for step in range(100):
        clock.now += 0.5  # 2 steps/s: 50 s in all
        bar.update()
        bar.set_postfix(loss=f"{1.0 / (step + 1):.3g}")
    bar.close()
    text = log.getvalue()
    lines = text.splitlines()
    assert "\r" not in text and text.endswith("\n")
    # the first update, then one per 5 s (10 steps) → steps 1, 11, 21, …, 91, and the final one at close
    assert [int(line.split()[1].split("/")[0]) for line in lines] == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]
    assert lines[0].startswith("train: 1/100 step (1%), 2 step/s, elapsed 00:00, left 00:50")
    assert lines[-1] == "train: 100/100 step (100%), 2 step/s, elapsed 00:50, loss=0.01"
    bar.close()  # closing twice writes nothing more
    assert log.getvalue() == text


def test_iteration_resume_offset_and_unknown_total() -> None:
    log, clock = io.StringIO(), _Clock()
    bar = LineProgress(range(3), desc="cases", unit="case", stream=log, interval=5.0, clock=clock)
    assert list(bar) == [0, 1, 2] and bar.n == 3
    assert log.getvalue().splitlines()[-1].startswith("cases: 3/3 case (100%)")
    resumed = LineProgress(total=10, desc="train", initial=8, stream=io.StringIO(), interval=5.0, clock=clock)
    clock.now += 4.0
    resumed.update(2)  # the rate counts this run's steps only: 2 in 4 s
    assert "train: 10/10 it (100%), 0.5 it/s" in resumed.stream.getvalue()
    open_ended = LineProgress(desc="tasks", stream=io.StringIO(), clock=clock)
    open_ended.update(7)
    open_ended.close()
    assert open_ended.stream.getvalue().startswith("tasks: 7 it, ")

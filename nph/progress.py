"""Progress of long work: a tqdm bar on a terminal, a plain line every few seconds in a log file.

SLURM logs, ``make demo > log`` and CI capture stderr in files, where tqdm's ``\\r`` frames pile up into one
unreadable line. :func:`progress` picks the form from the stream, so every loop in nph reports the same way.
``NPH_PROGRESS=lines`` asks for lines on a terminal too: ``make demo`` runs two steps at once, whose bars would
overwrite each other on one terminal line.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["LineProgress", "bars_wanted", "progress"]

#: seconds between two plain lines in a log file
LINE_INTERVAL = 5.0


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str,
    unit: str = "it",
    initial: int = 0,
    disable: bool = False,
    in_logs: bool = True,
    stream: TextIO | None = None,
    interval: float = LINE_INTERVAL,
) -> tqdm | LineProgress:
    """A tqdm bar when ``stream`` (stderr by default) is a terminal, else a :class:`LineProgress`.

    ``in_logs=False``: a bar on a terminal only (short set-up steps that log their own summary line).
    """
    stream = sys.stderr if stream is None else stream
    terminal = bars_wanted(stream)
    if not in_logs and not terminal:
        disable = True
    if disable or terminal:
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=disable, file=stream)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, stream=stream, interval=interval)


def bars_wanted(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal and ``NPH_PROGRESS`` is not ``lines``: where \\r-drawn bars belong."""
    if os.environ.get("NPH_PROGRESS", "").strip().lower() == "lines":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class LineProgress:
    """tqdm's interface (iterate, ``update``, ``set_postfix``, ``close``, ``with``) writing whole lines.

    A line at the first update, then at most one per ``interval`` seconds, and one at ``close`` (which ``with``
    and iteration call): count, total, percentage, rate, elapsed and remaining time, and the postfix (e.g. the loss).
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: int | None = None,
        desc: str,
        unit: str = "it",
        initial: int = 0,
        stream: TextIO,
        interval: float = LINE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n, self._initial, self.stream, self.interval, self._clock = initial, initial, stream, interval, clock
        self._start = clock()
        self._last_line: float | None = None
        self._last_count = -1
        self._postfix = ""
        self._closed = False

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return self._clock() - self._start

    @property
    def format_dict(self) -> dict[str, Any]:
        """The subset of tqdm's ``format_dict`` nph reads."""
        return {"n": self.n, "total": self.total, "elapsed": self.elapsed}

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError(f"{self.desc}: LineProgress made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line at the first update and when the interval has passed (the last at close)."""
        self.n += n
        now = self._clock()
        if self._last_line is None or now - self._last_line >= self.interval:
            self._write(now)

    def set_postfix(self, **values: Any) -> None:
        """Extra fields for the next line, as ``key=value``."""
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """The final line (unless the last update already wrote it)."""
        if not self._closed:
            self._closed = True
            if self.n != self._last_count:
                self._write(self._clock())

    def _write(self, now: float) -> None:
        elapsed = now - self._start
        done = self.n - self._initial
        rate = done / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        parts = [f"{self.desc}: {count} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.3g} {self.unit}/s")
        parts.append(f"elapsed {_clock_text(elapsed)}")
        if self.total is not None and rate > 0 and self.n < self.total:
            parts.append(f"left {_clock_text((self.total - self.n) / rate)}")
        if self._postfix:
            parts.append(self._postfix)
        self.stream.write(", ".join(parts) + "\n")
        self.stream.flush()
        self._last_line, self._last_count = now, self.n


def _clock_text(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"

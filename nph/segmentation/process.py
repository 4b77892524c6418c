"""Running an external segmenter (nnU-Net, SynthSeg) as a subprocess with an explicit environment."""

from __future__ import annotations

import collections
import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["run_logged"]

log = logging.getLogger(__name__)


def run_logged(cmd: Sequence[str], env: Mapping[str, str], log_file: Path, what: str) -> None:
    """Run ``cmd`` with exactly ``env``, streaming its output (the tool's own progress) to the log and ``log_file``.

    Raises:
        RuntimeError: the process failed; the message holds the last lines of its output.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=30)
    shown = [*cmd[:1], "...", *cmd[3:]] if "-c" in cmd[:2] else list(cmd)
    log.info("%s: %s", what, " ".join(shown))
    with open(log_file, "a", encoding="utf-8") as sink, subprocess.Popen(
        list(cmd), env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            tail.append(line.rstrip())
            if line.strip():
                log.info("  %s", line.rstrip())
        status = proc.wait()
    if status != 0:
        raise RuntimeError(f"{what} failed (exit {status}; full log {log_file}):\n" + "\n".join(tail))

"""A stand-in for an nph command that checkpoints on USR2/TERM (used by test_launch_signals.py).

``python saving_child.py FOLDER SAVE_SECONDS``: writes FOLDER/ready, then works until signalled; on USR2 or
TERM it takes SAVE_SECONDS to "save" (FOLDER/checkpoint, holding the signal's name) and exits 0, as the training
engine does. Started again with a checkpoint present, it finishes at once (FOLDER/done) and exits 0.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

folder, save_s = Path(sys.argv[1]), float(sys.argv[2])
if (folder / "checkpoint").exists():
    (folder / "done").write_text("resumed from " + (folder / "checkpoint").read_text())
    sys.exit(0)
stop: list[int] = []
for signum in (signal.SIGUSR2, signal.SIGTERM):
    signal.signal(signum, lambda s, f: stop.append(s))
(folder / "ready").write_text("")
while not stop:
    time.sleep(0.05)
time.sleep(save_s)
(folder / "checkpoint").write_text(signal.Signals(stop[0]).name)
sys.exit(0)

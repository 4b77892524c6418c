"""``python -m launch`` is the launcher's command line (launch.cli)."""

from __future__ import annotations

import sys

from launch.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m nph`` is the ``nph`` command."""

from __future__ import annotations

import sys

from nph.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

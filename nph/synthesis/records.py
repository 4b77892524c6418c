"""The on-disk state of a synthesis run: its settings and one record per finished sample.

A sample is *done* when its record exists and the files it names have the sizes it records. The record
is written (atomically) only after both NIfTI files are in place, so a killed task leaves, at worst,
files without a record — which the next run redoes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from nph.data.dataset import DatasetPaths
from nph.errors import InputError
from nph.io.atomic import write_json

__all__ = ["SynthesisPaths", "check_run_settings", "is_done", "iter_records", "read_record", "write_record"]


class SynthesisPaths(DatasetPaths):
    """A labelled dataset folder plus nph's bookkeeping under ``.nph/``."""

    @property
    def state_dir(self) -> Path:
        return self.root / ".nph"

    @property
    def settings(self) -> Path:
        return self.state_dir / "generate.json"

    @property
    def records_dir(self) -> Path:
        return self.state_dir / "records"

    def record(self, case_id: str) -> Path:
        return self.records_dir / f"{case_id}.json"


def check_run_settings(paths: SynthesisPaths, settings: Mapping[str, Any]) -> None:
    """Record the run's settings, or refuse to continue a folder made with different ones."""
    if paths.settings.is_file():
        previous = json.loads(paths.settings.read_text())
        differing = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
        if differing:
            details = ", ".join(f"{k}: {previous.get(k)!r} → {settings.get(k)!r}" for k in differing)
            raise InputError(f"{paths.root}: holds a run with other settings ({details}); use a new out=")
        return
    write_json(paths.settings, dict(settings))


def write_record(paths: SynthesisPaths, row: Mapping[str, Any]) -> None:
    """Mark a sample done; ``row`` is its manifest row, with the file sizes added."""
    sizes = {key: (paths.root / row[key]).stat().st_size for key in ("image", "label") if row.get(key)}
    json_row = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}  # JSON has no NaN
    write_json(paths.record(str(row["case_id"])), {"row": json_row, "sizes": sizes})


def read_record(paths: SynthesisPaths, case_id: str) -> dict[str, Any] | None:
    """The record of a sample, or None when it is missing or unreadable (a half-finished sample)."""
    path = paths.record(case_id)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_done(paths: SynthesisPaths, case_id: str) -> bool:
    """True when the sample's record exists and every file it names has the recorded size."""
    record = read_record(paths, case_id)
    if record is None:
        return False
    for key, size in record.get("sizes", {}).items():
        path = paths.root / record["row"][key]
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def iter_records(paths: SynthesisPaths) -> Iterator[dict[str, Any]]:
    """Manifest rows of every recorded sample, in case-id order."""
    for path in sorted(paths.records_dir.glob("*.json")):
        record = read_record(paths, path.stem)
        if record is not None:
            yield record["row"]

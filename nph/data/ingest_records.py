"""What ``nph ingest`` leaves beside a dataset: per-case resume records and ``ingest_errors.csv``.

A record (``DIR/.ingest/<case>.json``) is written after the case's files, so it means they are complete; a
rerun with unchanged sources and options reuses the case's manifest row instead of ingesting it again.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nph.data.ingest_layouts import CaseSource
from nph.io.atomic import write_json, write_text

__all__ = ["ERRORS_CSV", "RECORDS_DIR", "CaseFailure", "read_record", "write_errors", "write_record"]

ERRORS_CSV = "ingest_errors.csv"
#: Per-case resume records inside the dataset folder (hidden: nnU-Net and the manifest ignore it).
RECORDS_DIR = ".ingest"


@dataclass(frozen=True)
class CaseFailure:
    """One bad case: its id, the file at fault, and what is wrong with it."""

    case: str
    file: str
    problem: str

    def line(self) -> str:
        return f"{self.file}: {self.problem} (case {self.case})"


def _source_stamp(source: CaseSource) -> dict[str, Any]:
    """Source paths plus size and mtime: a changed source file is ingested again."""
    stamp: dict[str, Any] = {}
    for key, path in (("image", source.image), ("label", source.label)):
        if path is None:
            continue
        stat = path.stat()
        stamp[key] = str(path.resolve())
        stamp[f"{key}_size"] = stat.st_size
        stamp[f"{key}_mtime_ns"] = stat.st_mtime_ns
    return stamp


def _record_path(root: Path, case_id: str) -> Path:
    return root / RECORDS_DIR / f"{case_id}.json"


def write_record(root: Path, source: CaseSource, fingerprint: dict[str, Any], row: dict[str, Any]) -> None:
    """Record a finished case (call after its files are written)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    write_json(
        _record_path(root, source.case_id), {"sources": _source_stamp(source), "options": fingerprint, "row": clean}
    )


def read_record(
    root: Path, source: CaseSource, fingerprint: dict[str, Any], files_present: Callable[[], bool]
) -> dict[str, Any] | None:
    """The manifest row of a case finished earlier from the same sources and options, else ``None``."""
    record_path = _record_path(root, source.case_id)
    if not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        unchanged = record["sources"] == _source_stamp(source) and record["options"] == fingerprint
        row = dict(record["row"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # unreadable record or vanished source: ingest the case again
    if not (unchanged and files_present()):
        return None
    return {k: (float("nan") if v is None else v) for k, v in row.items()}


def write_errors(root: Path, failures: list[CaseFailure]) -> Path | None:
    """Write ``ingest_errors.csv`` (case, file, problem), or remove a stale one when all went well."""
    path = root / ERRORS_CSV
    if not failures:
        path.unlink(missing_ok=True)
        return None
    buffer = io.StringIO()
    pd.DataFrame([asdict(f) for f in failures], columns=["case", "file", "problem"]).to_csv(buffer, index=False)
    write_text(path, buffer.getvalue())
    return path

"""Merge the shards of a run into one labelled dataset folder, and report progress per shard.

Merging reads only the per-sample records, so it is idempotent and can run while nothing else does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from nph.data.dataset import finalize
from nph.errors import InputError
from nph.io.atomic import remove_leftovers
from nph.synthesis.records import SynthesisPaths, is_done, iter_records
from nph.synthesis.shards import Shard, case_id_for, shard_indices

__all__ = ["ShardProgress", "merge", "progress"]


@dataclass(frozen=True)
class ShardProgress:
    shard: Shard
    done: int
    total: int

    @property
    def missing(self) -> int:
        return self.total - self.done


def _settings(paths: SynthesisPaths) -> dict:
    if not paths.settings.is_file():
        raise InputError(f"{paths.settings}: missing — {paths.root} is not the output of `nph generate`")
    return json.loads(paths.settings.read_text())


def progress(paths: SynthesisPaths, shards: int | None = None) -> list[ShardProgress]:
    """Done and total samples per shard (``shards`` defaults to the count the run was launched with)."""
    settings = _settings(paths)
    count = shards or int(settings.get("shards", 1))
    result = []
    for k in range(count):
        owned = shard_indices(int(settings["n"]), Shard(k, count))
        result.append(ShardProgress(Shard(k, count), sum(is_done(paths, case_id_for(i)) for i in owned), len(owned)))
    return result


def merge(paths: SynthesisPaths, *, allow_partial: bool = False) -> pd.DataFrame:
    """Write dataset.json and manifest.csv from the records; refuse an incomplete run unless allowed."""
    settings = _settings(paths)
    n = int(settings["n"])
    missing = [i for i in range(n) if not is_done(paths, case_id_for(i))]
    if missing and not allow_partial:
        raise InputError(f"{paths.root}: {len(missing)} of {n} samples are missing (first: {case_id_for(missing[0])});"
                         " finish the shards or pass allow_partial=true")
    if not missing:  # every shard is done, so no writer is left: clear what killed ones left half-written
        for folder in (paths.records_dir, paths.images_dir, paths.labels_dir):
            remove_leftovers(folder)
    rows = [row for row in iter_records(paths) if is_done(paths, str(row["case_id"]))]
    return finalize(paths, rows, modality=str(settings.get("modality", "MRI")),
                    description="nph synthetic pairs", extra={"generate": settings})

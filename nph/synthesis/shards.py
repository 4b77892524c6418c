"""Which sample indices a shard owns: task k of K takes every K-th index starting at k."""

from __future__ import annotations

import re
from dataclasses import dataclass

from nph.errors import InputError

__all__ = ["Shard", "case_id_for", "parse_shard", "shard_indices"]

_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Task ``index`` of ``count``; strided so every shard gets the same mix of conditions."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str | None) -> Shard:
    """``"k/K"`` → Shard(k, K); ``None`` or ``""`` → the whole run as one shard."""
    if text is None or str(text).strip() == "":
        return Shard()
    match = _SHARD.match(str(text))
    if not match:
        raise InputError(f"shard={text!r}: expected k/K, e.g. shard=0/4")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise InputError(f"shard={text}: need 0 <= k < K and K >= 1")
    return Shard(index, count)


def shard_indices(n: int, shard: Shard) -> list[int]:
    """The sample indices in ``range(n)`` that ``shard`` owns."""
    return list(range(shard.index, n, shard.count))


def case_id_for(index: int) -> str:
    """Case id of sample ``index``: sorts like the index for runs up to ten million samples."""
    return f"synth_{index:07d}"

"""Show done / missing samples per shard of a generation run, from disk (no scheduler needed).

    nph generate-status out=DIR [shards=K]
"""

from __future__ import annotations

from omegaconf import DictConfig

from nph.cli.options import integer, path
from nph.synthesis.merge import progress
from nph.synthesis.records import SynthesisPaths

__all__ = ["run"]


def run(cfg: DictConfig) -> None:
    paths = SynthesisPaths(path(cfg, "out", must_exist=True))
    shards = None if cfg.shards is None else integer(cfg, "shards", minimum=1)
    rows = progress(paths, shards)
    done, total = sum(r.done for r in rows), sum(r.total for r in rows)
    print(f"{paths.root}: {done}/{total} samples done ({100.0 * done / max(total, 1):.1f} %)")
    for row in rows:
        state = "done" if row.missing == 0 else f"{row.missing} missing"
        print(f"  shard {row.shard}: {row.done}/{row.total}  {state}")

"""Generate one shard of synthetic (label map, image) pairs: batched, resumable, written in the background.

The sampler is anything with ``sample(requests) -> pairs`` (:class:`PairSampler`); nph's is the mask LDM
followed by the image LDM (:mod:`nph.synthesis.ldm_sampler`). Sample i's condition and noise come from
``(seed, i)`` alone, so the dataset does not depend on sharding or batch size.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from nph import __version__
from nph.data.dataset import write_case
from nph.progress import progress
from nph.seeds import sample_seed
from nph.synthesis.conditions import ConditionSpec, draw_condition
from nph.synthesis.records import SynthesisPaths, is_done, write_record
from nph.synthesis.shards import Shard, case_id_for, shard_indices
from nph.synthesis.writer import BackgroundWriter

__all__ = ["GenerationReport", "PairSampler", "SampleRequest", "SyntheticPair", "generate_shard"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleRequest:
    """What sample ``index`` asks for, and the seed of its noise."""

    index: int
    condition: float
    noise_seed: int


@dataclass
class SyntheticPair:
    """One generated sample: SynthSeg-id label map, its image (None for masks only), extra manifest fields."""

    label_ids: npt.NDArray[np.integer]
    image: npt.NDArray[np.floating] | None
    extra: dict[str, Any] = field(default_factory=dict)


class PairSampler(Protocol):
    """Makes pairs for a batch of requests on one fixed grid."""

    affine: npt.NDArray[np.float64]

    def sample(self, requests: Sequence[SampleRequest]) -> list[SyntheticPair]: ...


@dataclass(frozen=True)
class GenerationReport:
    """What a shard run did: samples made now, found done, and how long the sampler waited on disk."""

    generated: int
    skipped: int
    seconds: float
    disk_wait_seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def generate_shard(
    sampler: PairSampler,
    out: SynthesisPaths,
    *,
    n: int,
    seed: int,
    shard: Shard,
    conditions: ConditionSpec,
    batch_size: int = 4,
    provenance: Mapping[str, Any] | None = None,
    writer_threads: int = 2,
) -> GenerationReport:
    """Make every sample of ``shard`` that is not already done; returns counts and timings."""
    owned = shard_indices(n, shard)
    todo = [i for i in owned if not is_done(out, case_id_for(i))]
    log.info("shard %s: %d samples, %d done, %d to make", shard, len(owned), len(owned) - len(todo), len(todo))
    start = time.perf_counter()
    bar = progress(total=len(todo), desc="generate", unit="sample")
    with BackgroundWriter(threads=writer_threads) as writer, bar:
        for first in range(0, len(todo), batch_size):
            requests = [SampleRequest(i, draw_condition(conditions, seed, i), sample_seed(seed, i))
                        for i in todo[first : first + batch_size]]
            pairs = sampler.sample(requests)
            for request, pair in zip(requests, pairs, strict=True):
                row = _provenance_row(request, seed, shard, provenance, pair.extra)
                writer.submit(_write_sample, out, request.index, pair, sampler.affine, row)
            bar.update(len(requests))
            bar.set_postfix(samples_per_s=f"{bar.n / max(time.perf_counter() - start, 1e-9):.2f}")
    seconds = time.perf_counter() - start
    report = GenerationReport(len(todo), len(owned) - len(todo), seconds, writer.blocked_seconds)
    log.info("shard %s: made %d samples in %.1f s (%.2f samples/s; %.1f%% of the time waiting on disk)", shard,
             report.generated, seconds, report.samples_per_second, 100 * report.disk_wait_seconds / max(seconds, 1e-9))
    return report


def _provenance_row(
    request: SampleRequest, seed: int, shard: Shard, provenance: Mapping[str, Any] | None, extra: Mapping[str, Any]
) -> dict[str, Any]:
    return {"source": "generate", "seed": seed, "index": request.index,
            "requested_condition": request.condition, "nph_version": __version__, **(provenance or {}), **extra}


def _write_sample(
    out: SynthesisPaths, index: int, pair: SyntheticPair, affine: npt.NDArray, row: dict[str, Any]
) -> None:
    """Write both files, then the record that marks the sample done (in that order: see records.py)."""
    image = pair.image
    if image is not None:
        image = np.where(pair.label_ids == 0, 0.0, image).astype(np.float32)  # decoder noise triples the gzip size
    written = write_case(out, case_id_for(index), pair.label_ids, affine, image=image, provenance=row)
    write_record(out, written)

"""A background writer so the sampler never waits on gzip and the disk.

Writes run in a small thread pool (zlib releases the GIL). At most ``max_pending`` jobs are in flight,
bounding memory; the time the producer spends blocked on that bound is measured: it is the share of
wall time the sampler waits on disk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["BackgroundWriter"]


class BackgroundWriter:
    """Run write jobs off the sampling thread; re-raise the first failure on the next submit or close."""

    def __init__(self, threads: int = 2, max_pending: int = 16) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="nph-writer")
        self._slots = threading.BoundedSemaphore(max(1, max_pending))
        self._futures: list[Future[Any]] = []
        self.blocked_seconds = 0.0

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        """Queue ``job(*args)``; blocks (and counts the wait) only when ``max_pending`` jobs are queued."""
        self._raise_failures()
        start = time.perf_counter()
        self._slots.acquire()
        self.blocked_seconds += time.perf_counter() - start
        future = self._pool.submit(job, *args)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_failures(self) -> None:
        pending = []
        for future in self._futures:
            if future.done():
                future.result()  # re-raises the job's exception
            else:
                pending.append(future)
        self._futures = pending

    def close(self) -> None:
        """Wait for every queued job; the first failure is raised."""
        start = time.perf_counter()
        try:
            for future in self._futures:
                future.result()
        finally:
            self._pool.shutdown(wait=True)
            self.blocked_seconds += time.perf_counter() - start
        self._futures = []

    def __enter__(self) -> BackgroundWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""Tile work on the CPU's threads: the steps after the network that numpy and SciPy run.

Why threads: SciPy's ``ndimage`` filters (the Gaussians of the object edges, the smoothing of
the side step) release the GIL, and those steps are single-threaded while torch's convolutions
use every core; on a 2048x2048 image of 3000 nuclei the object edges took 0.47 s on one of the
machine's two cores. The results come back in the order of the items, and the caller writes
and adds them up in that order on its own thread, so the output is the serial loop's, bit for
bit, and an output a writer must not share (a zarr store: tiles share its chunks) is written
by one thread only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


#: Working memory the threads of one step may hold at once (bytes); a task larger than a share
#: of it runs with fewer threads, down to one.
WORKING_BYTES = 1024 * 2**20


def n_workers(task_bytes: int = 0) -> int:
    """Threads for tile work: torch's intra-op threads (``OMP_NUM_THREADS``, or the cores), as
    many as fit in :data:`WORKING_BYTES` when one task holds about ``task_bytes``."""
    threads = max(1, torch.get_num_threads())
    return max(1, min(threads, WORKING_BYTES // task_bytes)) if task_bytes > 0 else threads


def thread_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> Iterator[R]:
    """``fn`` over ``items`` on up to ``workers`` threads (default :func:`n_workers`), the results
    in the items' order; at most two items per thread are in flight, so memory is bounded by
    the tiles being worked on, not by their number. An exception in ``fn`` (a cancel) is raised
    here, and the items not yet started are dropped."""
    workers = n_workers() if workers is None else workers
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="napari-dem-tiles") as pool:
        pending = []
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.pop(0).result()
            while pending:
                yield pending.pop(0).result()
        finally:
            for future in pending:
                future.cancel()

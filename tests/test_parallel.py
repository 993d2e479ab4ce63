"""Tile work on threads (core/parallel.py): the serial loop's results, in order, bit for bit."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from napari_dem.core.parallel import thread_map
from napari_dem.core.segmenter import DEMSegmenter


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_in_the_items_order(workers: int) -> None:
    """Items that finish out of order (the first sleeps longest) still come back in order."""
    done = threading.Event()

    def slow_first(i: int) -> int:
        if i == 0:
            done.wait(0.2)
        return i * i

    assert list(thread_map(slow_first, range(20), workers)) == [i * i for i in range(20)]


def test_items_are_pulled_a_few_at_a_time() -> None:
    """At most two items per thread are in flight: a long stack of frames is not read at once."""
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(100):
            pulled += 1
            yield i

    results = thread_map(lambda i: i, items(), 2)
    assert next(results) == 0
    assert pulled <= 2 * 2 + 1
    assert list(results) == list(range(1, 100))


def test_an_error_in_one_item_is_raised_and_stops_the_rest() -> None:
    """A cancel (any exception) in a worker reaches the caller; the items after it that were
    not started never run."""
    started = []

    def fails_at_5(i: int) -> int:
        started.append(i)
        if i == 5:
            raise KeyboardInterrupt("cancelled")
        return i

    with pytest.raises(KeyboardInterrupt, match="cancelled"):
        list(thread_map(fails_at_5, range(1000), 2))
    assert max(started) < 5 + 2 * 2 + 2


def test_object_labels_are_the_same_on_one_thread_and_on_several(nuclei2d, tiny_model) -> None:
    """The object edges and the side step run their tiles on torch's threads; with one thread
    (a serial loop) and with three the labels are identical, on tiles small enough that
    every outline crosses several of them."""
    img, _ = nuclei2d
    threads = torch.get_num_threads()

    def labels(n_threads: int) -> np.ndarray:
        torch.set_num_threads(n_threads)
        try:
            seg = DEMSegmenter(model=tiny_model, n_clusters=2, task="objects", tile_size=32, device="cpu")
            return seg.fit_predict(img, "YX")
        finally:
            torch.set_num_threads(threads)

    serial, threaded = labels(1), labels(3)
    assert serial.any() and not serial.all()
    assert np.array_equal(serial, threaded)


def test_tasks_too_large_for_the_working_memory_run_on_fewer_threads() -> None:
    """A settled outline holds a dozen copies of a whole frame: a stack of large frames must not
    hold one per core at once."""
    from napari_dem.core.parallel import WORKING_BYTES, n_workers

    threads = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        assert n_workers() == 4
        assert n_workers(WORKING_BYTES // 8) == 4
        assert n_workers(WORKING_BYTES // 2) == 2
        assert n_workers(3 * WORKING_BYTES) == 1
    finally:
        torch.set_num_threads(threads)

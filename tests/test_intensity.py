"""Counting an image's distinct values up to a cap (what bounds K) without sorting them all."""

from __future__ import annotations

import numpy as np
import pytest

from napari_dem.core.intensity import distinct_values


@pytest.mark.parametrize(
    "values",
    [
        np.random.default_rng(0).random(50_000),  # float data: the probe alone settles it
        np.random.default_rng(1).integers(0, 256, 300_000).astype(np.float64),  # 8-bit levels
        np.random.default_rng(2).integers(0, 40, 300_000).astype(np.float64),  # 40 levels
        np.r_[np.zeros(200_000), np.arange(1.0, 8.0)],  # rare levels the probe steps over
        np.r_[np.arange(100.0), np.full(100_000, 5.0), np.arange(1000.0, 1300.0)],
        np.random.default_rng(3).integers(-100, 100, 300_000).astype(np.float64),  # signed levels
        np.random.default_rng(4).integers(0, 65536, 300_000).astype(np.float64) + 1e9,  # 16-bit, offset
        np.random.default_rng(5).integers(0, 256, (3, 100_000)).mean(0),  # RGB mean: thirds
        np.array([3.0]),
    ],
)
def test_distinct_values_equal_a_full_count_up_to_the_cap(values: np.ndarray) -> None:
    full = len(np.unique(values))
    for cap in (2, 8, 41, 256, 10_000):
        assert distinct_values(values, cap) == min(full, cap)

"""The watershed's seed finder against scikit-image's ``peak_local_max``: the same seeds, in
the same order, on 2D and 3D masks, smoothed or not, with specks and plateaus."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.feature import peak_local_max

from napari_dem.core.peaks import label_peaks
from napari_dem.data.families import objects_image


def _distance_map(
    shape: tuple[int, ...], seed: int, smooth: float, specks: bool
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    _, mask = objects_image(shape, radius=(3.0, 9.0), coverage=rng.uniform(0.1, 0.7), seed=seed)
    fg = mask > 0
    if specks:  # one-pixel objects and flat two-pixel plateaus
        fg[rng.random(fg.shape) < 0.02] = True
    dist = ndi.distance_transform_edt(fg)
    return (ndi.gaussian_filter(dist, smooth) if smooth else dist), ndi.label(fg)[0]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(96, 96), (20, 40, 40)])
def test_label_peaks_equal_scikit_image(seed: int, shape: tuple[int, ...]) -> None:
    dist, components = _distance_map(shape, seed, smooth=[0, 0.7, 2.0][seed % 3], specks=seed % 2 == 0)
    for md in (1, 2, 3, 6):
        expected = peak_local_max(dist, min_distance=md, labels=components, exclude_border=False)
        assert len(expected) > 0
        assert np.array_equal(label_peaks(dist, components, (md,) * len(shape), md), expected)
    if len(shape) == 3:  # the anisotropic call: a box footprint, no thinning
        half = (1, 3, 3)
        footprint = np.ones([2 * h + 1 for h in half], dtype=bool)
        expected = peak_local_max(dist, footprint=footprint, labels=components, exclude_border=False)
        assert np.array_equal(label_peaks(dist, components, half, 1), expected)


def test_label_peaks_of_nothing() -> None:
    empty = np.zeros((8, 8))
    assert label_peaks(empty, np.zeros((8, 8), dtype=np.int32), (2, 2), 2).shape == (0, 2)


def test_the_thinning_of_many_candidates_matches_the_small_case() -> None:
    """Above DENSE_LIMIT candidates the neighbours come from a k-d tree: the same seeds."""
    import napari_dem.core.peaks as peaks

    rng = np.random.default_rng(3)
    coords = rng.integers(0, 200, (2000, 2))
    coords = coords[np.unique(coords, axis=0, return_index=True)[1]]
    rng.shuffle(coords)
    limit = peaks.DENSE_LIMIT
    try:
        peaks.DENSE_LIMIT = 10**6
        dense = peaks._spaced(coords, 5)
    finally:
        peaks.DENSE_LIMIT = limit
    assert len(coords) > limit and np.array_equal(peaks._spaced(coords, 5), dense)
    gaps = np.abs(dense[:, None, :] - dense[None, :, :]).max(-1)
    assert (gaps[~np.eye(len(dense), dtype=bool)] >= 5).all()

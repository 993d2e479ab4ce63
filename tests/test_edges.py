"""The half-way edge rule of the objects task (core/edges.py) against known outlines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dem.core.edges import HALO, refine_edges, settle_edges


def _discs(shape=(160, 160), radius=4.0, polarity="bright", ramp=0.0, seed=0):
    """Blurred discs on a grid (true masks), their image with noise, and an optional ramp."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    truth = np.zeros(shape, bool)
    for cy in range(16, shape[0] - 8, 24):
        for cx in range(16, shape[1] - 8, 24):
            truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    signal = ndi.gaussian_filter(truth.astype(float), 1.0)
    if polarity == "dark":
        signal = 1.0 - signal
    background = ramp * xx / shape[1]
    image = 0.2 + 0.6 * signal + background + rng.normal(0, 0.03, shape)
    return truth, image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.mark.parametrize("polarity", ["bright", "dark"])
@pytest.mark.parametrize("ramp", [0.0, 0.8])
def test_a_too_wide_outline_is_redrawn_near_the_true_edge(polarity: str, ramp: float) -> None:
    """A foreground 1 px too wide (what smooth latents give on 4-px objects) comes back to
    the true discs, for bright and dark objects, on a flat and on a strongly uneven ground.
    (A global half-way threshold reaches IoU 0.92 here: the discs are only 9 px across.)"""
    truth, image = _discs(polarity=polarity, ramp=ramp)
    wide = ndi.binary_dilation(truth)
    assert _iou(wide, truth) < 0.7
    assert _iou(refine_edges(wide, image), truth) > 0.85
    # 2 px too wide: the local object mean then takes in a ring of background, so one pass
    # goes most of the way, not all of it
    wider = ndi.binary_dilation(truth, iterations=2)
    assert _iou(refine_edges(wider, image), truth) > _iou(wider, truth) + 0.2


def test_a_too_narrow_outline_grows_back() -> None:
    truth, image = _discs(radius=6.0)
    narrow = ndi.binary_erosion(truth, iterations=2)
    assert _iou(refine_edges(narrow, image), truth) > 0.85 > _iou(narrow, truth) + 0.2


def test_far_from_the_outline_nothing_changes() -> None:
    """Only a band of 2 px around the given outline moves: a bright spot in the background
    far from any object is not added, an object's interior is not removed."""
    truth, image = _discs()
    image[100:104, 4:8] += 0.6  # a bright square the given foreground knows nothing of
    refined = refine_edges(truth, image)
    assert not refined[100:104, 4:8].any()
    assert refined[ndi.binary_erosion(truth, iterations=3)].all()


def test_a_block_with_halo_context_gives_the_whole_image_result() -> None:
    """What lets the segmenter refine tile by tile: pixels HALO px inside a crop are the same."""
    truth, image = _discs(shape=(200, 200), ramp=0.5)
    wide = ndi.binary_dilation(truth, iterations=1)
    whole = refine_edges(wide, image)
    box = (slice(30, 170), slice(50, 190))
    part = refine_edges(wide[box], image[box])
    keep = (slice(HALO, -HALO), slice(HALO, -HALO))
    assert np.array_equal(part[keep], whole[box][keep])


def test_empty_and_full_foregrounds_are_returned_unchanged() -> None:
    _, image = _discs()
    assert not refine_edges(np.zeros(image.shape, bool), image).any()
    assert refine_edges(np.ones(image.shape, bool), image).all()


def test_a_speck_on_faint_background_texture_is_not_grown_into_an_object() -> None:
    """A few foreground pixels on a faint blob (contrast 0.1, where the objects have 0.6) keep
    their size when the image's contrast is given; without it the blob becomes an object."""
    truth, image = _discs()
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]]
    blob = (yy - 100) ** 2 + (xx - 4 - 24 * 3) ** 2 <= 25  # between discs, radius 5
    assert not (blob & ndi.binary_dilation(truth, iterations=3)).any()
    image = image + 0.1 * ndi.gaussian_filter(blob.astype(float), 1.0)
    given = truth.copy()
    given[99:102, 75:78] = True  # a 3x3 speck in the blob's middle
    grown = refine_edges(given, image)
    kept = refine_edges(given, image, contrast=0.6)
    assert grown[blob].sum() >= 3 * 9  # grown to three times the speck
    assert kept[blob].sum() <= 9
    assert _iou(kept & ~blob, truth) > 0.85  # the objects' edges are still refined


def test_a_coarse_volume_outline_is_redrawn_at_full_resolution() -> None:
    """Balls segmented on a volume shrunk 3x and grown back (nearest, what a rescaled fit
    gives) have blocky outlines up to 3 voxels off; with the fit's zoom the windows and the
    band widen to match, and the outline comes back to the true balls (3x3x3 majority)."""
    from napari_dem.core.rescale import grow_labels

    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:48, :72, :72]
    truth = np.zeros(zz.shape, bool)
    for cz, cy, cx, r in [(16, 20, 20, 11.0), (30, 46, 28, 13.0), (24, 26, 52, 9.5)]:
        truth |= (zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    image = 0.2 + 0.6 * ndi.gaussian_filter(truth.astype(float), 1.0) + rng.normal(0, 0.05, truth.shape)
    small = ndi.zoom(ndi.gaussian_filter(truth.astype(float), 1.5), 1 / 3, order=1) > 0.5
    coarse = grow_labels(small.astype(np.uint8), truth.shape) > 0
    refined = refine_edges(coarse, image, contrast=0.6, zoom=(1 / 3,) * 3)
    assert refined.shape == truth.shape
    assert _iou(refined, truth) > 0.9 > _iou(coarse, truth) + 0.05
    # at the volume's own scale (no zoom) a 1-voxel too wide outline comes back as in 2D
    wide = ndi.binary_dilation(truth)
    assert _iou(refine_edges(wide, image, contrast=0.6), truth) > _iou(wide, truth) + 0.1


def _big_discs(blur: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Nine discs of radius 22 px (a large-object image before its rescaled fit), blurred."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:200, :200]
    truth = np.zeros((200, 200), bool)
    for cy in range(40, 200, 60):
        for cx in range(40, 200, 60):
            truth |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 22**2
    return truth, ndi.gaussian_filter(0.1 + 0.6 * truth, blur) + rng.normal(0, 0.05, truth.shape)


@pytest.mark.parametrize("side", ["inside", "outside"])
def test_a_rescaled_outline_further_off_than_one_band_settles_at_the_true_edge(side: str) -> None:
    """An outline 7 px off (a fit at half scale: the band is 4 px) gets only part of the way
    in one pass; repeated passes reach the edge, from inside and from outside."""
    truth, image = _big_discs(blur=1.0)
    move = ndi.binary_erosion if side == "inside" else ndi.binary_dilation
    start = move(truth, iterations=7)
    one = refine_edges(start, image, 0.6, zoom=(0.5, 0.5))
    settled = settle_edges(start, image, 0.6, (0.5, 0.5))
    assert _iou(start, truth) < _iou(one, truth) < 0.9
    assert _iou(settled, truth) > 0.98


def test_settling_does_not_creep_over_a_blurred_edge() -> None:
    """Started on the true outline of discs blurred by 3 px, the passes stay there: the
    half-way crossing is a fixed point, not a slope the outline slides down."""
    truth, image = _big_discs(blur=3.0)
    settled = settle_edges(truth, image, 0.6, (0.5, 0.5), passes=8)
    assert _iou(settled, truth) > 0.95
    assert abs(int(settled.sum()) - int(truth.sum())) < 0.03 * truth.sum()

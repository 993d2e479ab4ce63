"""Label post-processing: instance splitting, merging, cleaning, background choice."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from napari_dem.core.errors import InputError
from napari_dem.core.refine import (
    SIDE_HALO,
    background_id,
    drop_wrong_side,
    fill_holes,
    fill_small_holes,
    instances_from_labels,
    merge_clusters,
    min_object_size,
    object_radius,
    remove_small_objects,
    side_intensity,
    side_sums,
    split_instances,
    standing_out,
    surround_rings,
)
from napari_dem.core.tiles import tile_regions


def _two_touching_discs() -> np.ndarray:
    fg = np.zeros((64, 96), bool)
    fg[disk((32, 30), 14)] = True
    fg[disk((32, 56), 14)] = True
    return fg


def test_split_instances_separates_touching_discs() -> None:
    inst = split_instances(_two_touching_discs())
    assert inst.max() == 2
    assert inst[32, 22] != inst[32, 64] and inst[32, 22] > 0


def test_instances_are_numbered_uniquely_across_frames() -> None:
    labels = np.where(_two_touching_discs(), 2, 1).astype(np.uint8)
    stack = np.stack([labels, labels])
    inst = instances_from_labels(stack, background=1, spatial_ndim=2)
    assert inst[0].max() == 2 and set(np.unique(inst[1])) == {0, 3, 4}


def test_merge_remove_fill() -> None:
    lab = np.ones((20, 20), np.uint8)
    lab[2:10, 2:10] = 2
    lab[5, 5] = 1  # a hole
    lab[15:17, 15:17] = 3
    merged = merge_clusters(lab, [2, 3])
    assert set(np.unique(merged)) == {1, 2}
    cleaned = remove_small_objects(lab, min_size=5, background=1)
    assert (cleaned == 3).sum() == 0 and (cleaned == 2).sum() == (lab == 2).sum()
    filled = fill_holes(lab, background=1)
    assert filled[5, 5] == 2
    assert lab[5, 5] == 1  # inputs are never modified


def test_fill_small_holes_fills_pockets_smaller_than_an_object_only() -> None:
    mask = np.zeros((60, 60), dtype=bool)
    mask[5:25, 5:25] = True
    mask[12:16, 12:16] = False  # a 16 px pocket inside a square: filled
    mask[30:58, 30:58] = True
    mask[36:52, 36:52] = False  # a 256 px lumen: kept
    mask[0:5, 40:50] = True
    mask[0:3, 43:47] = False  # a pocket open to the border: not a hole
    out = fill_small_holes(mask, max_size=100)
    assert out[12:16, 12:16].all() and not out[36:52, 36:52].any() and not out[0:3, 43:47].any()
    assert (out & ~mask).sum() == 16 and mask[13, 13] == 0  # nothing else; the input is untouched


@pytest.mark.parametrize("shape", [(120, 130), (20, 30, 26)])
def test_fill_small_holes_fills_what_scipys_fill_holes_calls_holes(shape: tuple) -> None:
    """The holes are found by one labelling of the background; they must be exactly the
    pockets ``binary_fill_holes`` fills (face-connected, touching no face of the array)."""
    rng = np.random.default_rng(len(shape))
    for cover in (0.75, 0.85, 0.95):
        smooth = ndi.gaussian_filter(rng.random(shape), 1.5)
        mask = smooth > np.quantile(smooth, 1 - cover)
        holes = ndi.binary_fill_holes(mask) & ~mask
        sizes = np.bincount(ndi.label(holes)[0].ravel())
        assert len(sizes) > 2  # several pockets, of several sizes
        for max_size in (3, 20, np.inf):
            pockets = ndi.label(holes)[0]
            small = sizes < max_size
            small[0] = False
            np.testing.assert_array_equal(fill_small_holes(mask, max_size), mask | small[pockets])


def test_background_id() -> None:
    assert background_id("darkest", 4) == 1
    assert background_id("brightest", 4) == 4
    assert background_id("2", 4) == 2
    for bad in ("5", "middle", 0):
        with pytest.raises(ValueError):
            background_id(bad, 4)


def test_empty_foreground_gives_no_objects() -> None:
    assert split_instances(np.zeros((16, 16), bool)).max() == 0


def test_specks_under_a_quarter_of_a_typical_object_are_not_counted() -> None:
    """The default smallest object scales with the objects: 10-px specks beside discs of radius 8
    (~200 px) are dropped, while the same specks count as objects when given min_size=8."""
    yy, xx = np.mgrid[:96, :96]
    fg = np.zeros((96, 96), bool)
    for cy, cx in [(20, 20), (20, 70), (70, 20), (70, 70)]:
        fg |= (yy - cy) ** 2 + (xx - cx) ** 2 <= 64
    fg[44:46, 44:49] = True  # two 10-px specks between the discs
    fg[5:7, 44:49] = True
    assert min_object_size(object_radius(fg), 2) > 10
    assert split_instances(fg).max() == 4
    assert split_instances(fg, min_size=8).max() == 6
    # a ball of radius 6 and a 3x3x3 speck in 3D; Z twice as coarse halves the voxel count
    zz, yy, xx = np.mgrid[:24, :32, :32]
    vol = (zz - 12) ** 2 + (yy - 16) ** 2 + (xx - 10) ** 2 <= 36
    vol[10:13, 14:17, 26:29] = True
    assert split_instances(vol).max() == 1
    assert abs(min_object_size(6.0, 3, (2.0, 1.0, 1.0)) - min_object_size(6.0, 3) / 2) <= 1


@pytest.mark.parametrize("bright", [True, False])
def test_pieces_on_the_wrong_side_of_their_surround_are_dropped(bright: bool) -> None:
    """A bright disc and a dim one (both brighter than their surround) stay; a speck darker
    than the field, which a latent cluster took in with them, goes. Mirrored for dark objects."""
    rng = np.random.default_rng(0)
    grey = 0.3 + 0.02 * rng.normal(size=(80, 80))
    mask = np.zeros(grey.shape, dtype=bool)
    for (cy, cx), r, lift in (((20, 20), 8, 0.5), ((20, 60), 8, 0.08), ((60, 40), 4, -0.1)):
        rr, cc = disk((cy, cx), r, shape=grey.shape)
        mask[rr, cc] = True
        grey[rr, cc] += lift
    if not bright:
        grey = 1.0 - grey
    kept = drop_wrong_side(mask, grey, bright)
    assert kept[20, 20] and kept[20, 60] and not kept[60, 40]
    assert (
        kept == (mask & ~(((np.mgrid[:80, :80][0] - 60) ** 2 + (np.mgrid[:80, :80][1] - 40) ** 2) <= 16))
    ).all()
    assert drop_wrong_side(np.ones_like(mask), grey, bright).all()  # no surround: nothing to compare


def test_side_sums_over_tiles_with_their_halo_equal_the_whole_image() -> None:
    """The segmenter reads the intensity a tile at a time: the pieces' and rings' sums of the
    tiles (each smoothed with its halo) must add up to the whole image's, to the last bit of
    the decision."""
    rng = np.random.default_rng(3)
    grey = rng.random((70, 90)).astype(np.float32)
    mask = rng.random((70, 90)) > 0.8
    pieces, ring, n = surround_rings(mask)
    whole = side_sums(pieces, ring, n, side_intensity(grey))
    tiled = np.zeros_like(whole)
    for core, read, inner in tile_regions(grey.shape, 16, SIDE_HALO):
        tiled += side_sums(pieces[core], ring[core], n, side_intensity(grey[read])[inner])
    np.testing.assert_array_equal(tiled[:, 0], whole[:, 0])  # pixel counts
    np.testing.assert_allclose(tiled[:, 1], whole[:, 1], rtol=1e-9)  # sums, added in another order


def _big_and_small(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(foreground, grey, the small bright discs, the faint specks): nine discs of radius 10,
    five of radius 3 as bright as they are, and five specks of radius 2 at a fifth of the
    contrast, all in the foreground a fit might give."""
    rng = np.random.default_rng(seed)
    big, small, specks = (np.zeros((160, 160), bool) for _ in range(3))
    for cy in (25, 80, 135):
        for cx in (25, 80, 135):
            big[disk((cy, cx), 10)] = True
    for c in ((52, 52), (52, 108), (108, 52), (108, 108), (80, 150)):
        small[disk(c, 3)] = True
    for c in ((8, 52), (8, 108), (152, 52), (152, 108), (52, 8)):
        specks[disk(c, 2)] = True
    grey = 0.1 + 0.6 * (big | small) + 0.12 * specks + rng.normal(0, 0.02, big.shape)
    return big | small | specks, grey, small, specks


def test_small_pieces_that_stand_out_are_objects_and_faint_specks_are_not() -> None:
    """Under the size floor (a disc of half the typical radius: 63 px here, the small discs
    have 25), a piece as bright as the objects is an object of its own, whole; a speck at a
    fifth of the contrast is dropped; the large objects are split exactly as without the image."""
    fg, grey, small, specks = _big_and_small()
    floor = min_object_size(object_radius(fg), 2)
    assert (small & fg).sum() // 5 < floor
    assert np.array_equal(standing_out(fg, grey, floor), small)
    without = split_instances(fg)
    with_grey = split_instances(fg, grey=grey)
    assert without.max() == 9 and with_grey.max() == 14
    assert np.array_equal(with_grey * (without > 0), without)  # the same 9 objects, same ids
    assert all(len(np.unique(with_grey[disk(c, 2)])) == 1 for c in ((52, 52), (80, 150)))
    assert not with_grey[specks].any()
    # dark objects on a bright field: the same pieces
    assert np.array_equal(standing_out(fg, 1.0 - grey, floor), small)
    with pytest.raises(InputError, match="grey has shape"):
        split_instances(fg, grey=grey[:-1])


def test_the_default_run_counts_small_objects_that_stand_out() -> None:
    """Through the API with no option: the nine large and five small discs are counted, the
    faint specks are not; without the image the instance step drops the small ones."""
    from napari_dem.api import segment_image

    _, grey, small, specks = _big_and_small()
    out = segment_image(grey.astype(np.float32), "YX", instances=True, device="cpu")
    assert out.labels.max() == 14
    assert len(set(np.unique(out.labels[small])) - {0}) == 5 and not out.labels[specks].any()
    assert split_instances(out.semantic.labels > 0).max() == 9

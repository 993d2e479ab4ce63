"""Label post-processing: instance splitting, merging, cleaning, background choice."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from napari_dem.core.refine import (
    background_id,
    fill_holes,
    instances_from_labels,
    merge_clusters,
    remove_small_objects,
    split_instances,
)


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


def test_background_id() -> None:
    assert background_id("darkest", 4) == 1
    assert background_id("brightest", 4) == 4
    assert background_id("2", 4) == 2
    for bad in ("5", "middle", 0):
        with pytest.raises(ValueError):
            background_id(bad, 4)


def test_empty_foreground_gives_no_objects() -> None:
    assert split_instances(np.zeros((16, 16), bool)).max() == 0

"""Touching objects split on a map learned from the image's typical objects (core/typical.py,
used by refine.split_instances with the image's intensity in 2D)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk, ellipse

import napari_dem.core.typical as typical_module
from napari_dem.core.metrics import instance_f1
from napari_dem.core.refine import split_instances
from napari_dem.core.typical import object_centres, typical_mask
from napari_dem.data.families import objects_image


def _without_learning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(typical_module, "MIN_COUNT", 10**9)


def _grid_of_discs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, intensity): 25 discs of radius 9 px, apart, on a 160 px field."""
    truth = np.zeros((160, 160), dtype=np.int32)
    rng = np.random.default_rng(seed)
    k = 0
    for y in range(16, 160, 32):
        for x in range(16, 160, 32):
            k += 1
            truth[disk((y + rng.integers(-3, 4), x + rng.integers(-3, 4)), 9, shape=truth.shape)] = k
    return truth, ndi.gaussian_filter((truth > 0) * 1.0, 1.5) + rng.normal(0, 0.03, truth.shape)


def test_typical_objects_are_compact_and_of_the_usual_size() -> None:
    pieces = np.zeros((120, 200), dtype=np.int32)
    for i, centre in enumerate([(20, 20), (20, 60), (20, 100), (20, 140), (60, 20), (60, 60)]):
        pieces[disk(centre, 8, shape=pieces.shape)] = i + 1
    pieces[disk((100, 30), 8)] = 7  # two discs merged: twice the usual area
    pieces[disk((100, 42), 8)] = 7
    pieces[ellipse(100, 130, 3, 50)] = 8  # a thin rod: compact, but over 1.6 times the usual area
    pieces[disk((60, 150), 3)] = 9  # a fragment
    mask, count = typical_mask(pieces)
    assert count == 6
    np.testing.assert_array_equal(mask, (pieces >= 1) & (pieces <= 6))


def test_the_learned_map_is_each_objects_depth() -> None:
    """Fitted on isolated discs, the map follows their normalised distance to their outline."""
    truth, grey = _grid_of_discs(0)
    centres = object_centres(truth > 0, grey, truth)
    assert centres is not None
    depth = np.zeros(truth.shape)
    for box, i in typical_module._boxes(truth):
        inside = truth[box] == i
        d = ndi.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        depth[box][inside] = (d / d.max())[inside]
    assert np.corrcoef(centres[truth > 0], depth[truth > 0])[0, 1] > 0.8
    assert np.abs(centres[ndi.binary_dilation(truth > 0, iterations=3) == 0]).mean() < 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_touching_objects_are_split_where_the_distance_map_has_no_neck(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small objects in a crowd (the panel's small family), on their true foreground a third of
    a pixel wider (as a segmentation's: their necks fill in), so that only the split differs:
    the learned map separates pairs the distance map merges (measured 0.902 / 0.874 plain,
    0.972 / 0.925 learned; 0.958 / 0.917 with the map at the first setting's weight, power
    0.3 and no join of shallow splits)."""
    img, truth = objects_image((192, 192), radius=(3, 5), coverage=0.3, seed=seed)
    fg = ndi.gaussian_filter((truth > 0) * 1.0, 1.0) > 0.35
    learned = instance_f1(split_instances(fg, grey=img), truth, 0.5)
    _without_learning(monkeypatch)
    plain = instance_f1(split_instances(fg, grey=img), truth, 0.5)
    assert learned >= plain + 0.05


def test_too_few_typical_objects_learn_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rods: their halves are as compact as they are, few are typical, and the split is the
    distance map's (with its pieces of one rod joined)."""
    fg = np.zeros((128, 128), dtype=bool)
    for i in range(6):
        fg[ellipse(12 + 20 * i, 64, 3, 25 - 2 * i, shape=fg.shape, rotation=0.3 * i)] = True
    grey = ndi.gaussian_filter(fg * 1.0, 1.0)
    assert object_centres(fg, grey, ndi.label(fg)[0]) is None
    with_grey = split_instances(fg, grey=grey)
    _without_learning(monkeypatch)
    np.testing.assert_array_equal(with_grey, split_instances(fg, grey=grey))


def test_separate_objects_are_left_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    truth, grey = _grid_of_discs(1)
    learned = split_instances(truth > 0, grey=grey)
    assert learned.max() == truth.max()
    _without_learning(monkeypatch)
    np.testing.assert_array_equal(learned, split_instances(truth > 0, grey=grey))

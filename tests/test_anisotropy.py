"""A stack whose objects are flattened by a coarse Z step is split as if its voxel size were
known (``refine.estimated_spacing``): a file or a napari layer often carries none."""

from __future__ import annotations

import numpy as np
import pytest

import napari_dem.core.refine as refine_module
from napari_dem.core.metrics import instance_f1
from napari_dem.core.refine import estimated_spacing, split_instances
from napari_dem.data.families import objects_image


def _balls(z_step: int, seed: int = 3) -> np.ndarray:
    """Instances of touching balls (radius 10-14 voxels) sampled every ``z_step`` slices."""
    _, truth = objects_image((90, 96, 96), radius=(10, 14), coverage=0.25, seed=seed)
    return truth[::z_step]


@pytest.mark.parametrize("z_step", [2, 3])
def test_the_z_step_is_read_off_the_objects_shape(z_step: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ball sampled every ``z_step`` slices gives that step; a field of touching objects,
    ``z_step`` times the ratio of the same field sampled every slice (its objects, generated as
    they are, measure 1.2-1.3 there: under the threshold, so left as they are)."""
    z, y, x = np.ogrid[:90, :96, :96]
    ball = (z - 45) ** 2 + (y - 48) ** 2 + (x - 48) ** 2 <= 144
    assert estimated_spacing(ball[::z_step]) == (pytest.approx(z_step, abs=0.1), 1.0, 1.0)
    threshold = refine_module.ANISOTROPY_MIN
    monkeypatch.setattr(refine_module, "ANISOTROPY_MIN", 0.0)
    isotropic = estimated_spacing(_balls(1) > 0)[0]
    assert 1.0 < isotropic < threshold
    assert estimated_spacing(_balls(z_step) > 0)[0] == pytest.approx(z_step * isotropic, rel=0.05)


def test_round_objects_flat_images_and_nothing_give_no_estimate() -> None:
    assert estimated_spacing(_balls(1) > 0) is None
    assert estimated_spacing(_balls(3)[10] > 0) is None  # 2D
    assert estimated_spacing(np.zeros((8, 16, 16), bool)) is None


def test_flattened_balls_are_split_as_with_their_voxel_size_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """From the true masks of balls sampled every third slice: without a voxel size the
    split finds the objects as well as with (3, 1, 1) given; split as if isotropic, the distance
    map capped by a few slices gives each flattened ball several seeds."""
    truth = _balls(3)
    given = instance_f1(split_instances(truth > 0, spacing=(3.0, 1.0, 1.0)), truth)
    estimated = instance_f1(split_instances(truth > 0), truth)
    assert estimated >= 0.9 and estimated >= given - 0.02
    monkeypatch.setattr(refine_module, "estimated_spacing", lambda foreground: None)
    assert instance_f1(split_instances(truth > 0), truth) < estimated - 0.1

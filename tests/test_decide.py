"""The rules of core/decide.py on label images built by hand: the wide blur that flattens uneven
illumination before objects are sized equals SciPy's; objects are sized with their holes
filled; objects of a known polarity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_dem.core.decide import decide, solid, wide_gaussian
from napari_dem.core.refine import object_radius


@pytest.mark.parametrize("shape", [(410, 410), (90, 37), (1, 40), (12, 30, 26)])
def test_wide_gaussian_equals_scipys_nearest_gaussian(shape: tuple) -> None:
    """A quarter of the side (the kernel longer than the plane, edges replicated far out) and
    a narrow one, on a plane with a ramp (what the blur is there to take out)."""
    rng = np.random.default_rng(len(shape))
    image = rng.random(shape) * 100 + np.linspace(0, 50, shape[-1])
    for sigma in (max(shape) / 4, 1.5):
        want = ndi.gaussian_filter(image, sigma, mode="nearest")
        np.testing.assert_allclose(wide_gaussian(image, sigma), want, rtol=0, atol=1e-9)


def test_objects_are_sized_with_their_holes_filled() -> None:
    """Discs of radius 12, each with a hole of radius 4 (a nucleolus), measure under 10 px
    around their holes and 12 whole; a ring around a lumen larger than a typical object keeps
    its lumen, a mask covering most of the plane keeps every pocket (there the pockets may be
    the gaps between objects), and so do pieces too small to be measured whole."""
    from skimage.draw import disk

    mask = np.zeros((150, 150), bool)
    for c in [(25, 25), (25, 90), (90, 30), (85, 85)]:
        mask[disk(c, 12, shape=mask.shape)] = True
        mask[disk((c[0] + 3, c[1] - 2), 4, shape=mask.shape)] = False
    assert object_radius(mask) < 10
    whole, radius = solid(mask)
    assert object_radius(whole) == radius == pytest.approx(12, rel=0.1)
    ring = np.zeros((150, 150), bool)
    ring[disk((75, 75), 40)] = True
    ring[disk((75, 75), 30)] = False
    assert np.array_equal(solid(ring)[0], ring)
    assert np.array_equal(solid(~mask)[0], ~mask) and solid(~mask)[1] == object_radius(~mask)
    # pieces under the least radius measured whole stay as they are (the speckle of noise)
    assert np.array_equal(solid(mask, min_radius=13.0)[0], mask)


def _discs_between_stripes(side: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """(labels 1..3, intensity) of six dark discs of radius 12 (cluster 1) on a field of
    vertical stripes 20 px wide (clusters 2 and 3 in turn): a field of large objects shrunk to
    the model's scale, its background cut into bands by the mixture."""
    from skimage.draw import disk

    labels = np.broadcast_to(2 + (np.arange(side) // 20) % 2, (side, side)).copy()
    for c in [(25, 25), (25, 90), (60, 55), (95, 25), (95, 90), (60, 15)]:
        labels[disk(c, 12, shape=labels.shape)] = 1
    return labels, np.array([0.0, 0.2, 0.8, 0.9])[labels]


def _decide_on(labels: np.ndarray, intensity: np.ndarray, polarity: str | None):
    """:func:`decide` with K given, every mixture reading the points as ``labels``."""
    import torch

    return decide(
        torch.as_tensor(intensity.ravel(), dtype=torch.float32),
        lambda k: labels.ravel(),
        lambda values: np.asarray(values).reshape(labels.shape),
        n_clusters=int(labels.max()), task="auto", objects=None, guided=False, seed=0, polarity=polarity,
    )  # fmt: skip


def test_objects_of_a_known_polarity_are_taken_where_fresh_rules_read_classes() -> None:
    """Read afresh, the discs fail the rule that objects be smaller than every background
    region (the stripes are as wide by the radius measure): classes. Known to be dark objects
    (read so at full size), their compact islands are taken."""
    labels, intensity = _discs_between_stripes()
    assert _decide_on(labels, intensity, None).task == "classes"
    known = _decide_on(labels, intensity, "dark")
    assert known.task == "objects" and known.objects == (1,)
    assert 9 < known.object_radius < 15  # the discs' radius, 12
    # known to be bright, the field holds no such objects: classes, as read afresh
    assert _decide_on(labels, intensity, "bright").task == "classes"


def test_regions_with_a_sea_stay_classes_though_their_polarity_is_known() -> None:
    """A two-class tissue phantom whose classes are each one region reaching across the field
    (a sea): neither polarity, known or not, makes them objects."""
    from napari_dem.data.families import classes_image

    _, truth = classes_image((120, 120), n_classes=2, scale=12.0, seed=3)
    intensity = np.array([0.0, 0.3, 0.8])[truth]
    for polarity in (None, "dark", "bright"):
        assert _decide_on(truth, intensity, polarity).task == "classes"

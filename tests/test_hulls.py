"""Solidities of many pieces at once equal scikit-image's, piece by piece."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import ellipse, polygon
from skimage.measure import label, regionprops

from napari_dem.core.hulls import solidities


def _shapes() -> np.ndarray:
    """Discs, rotated ellipses, crescents, L shapes, lines, single pixels and a speckle field."""
    rng = np.random.default_rng(3)
    img = np.zeros((220, 260), np.int32)
    n = 0
    for _ in range(40):
        r, c = rng.integers(12, 208), rng.integers(12, 248)
        rr, cc = ellipse(
            r, c, rng.uniform(1, 9), rng.uniform(1, 9), img.shape, rotation=rng.uniform(0, np.pi)
        )
        n += 1
        img[rr, cc] = n
    n += 1
    img[100:103, 10:60] = n  # a bar
    n += 1
    img[5, 5] = n  # one pixel
    n += 1
    img[200:215, 200] = n  # a one-pixel-wide line
    n += 1
    rr, cc = polygon([150, 150, 190, 190, 160, 160], [100, 140, 140, 130, 130, 100], img.shape)
    img[rr, cc] = n  # an L
    speckle = rng.random(img.shape) < 0.02
    return np.where(img > 0, img, np.where(speckle, label(speckle) + n, 0)).astype(np.int32)


def test_solidities_equal_scikit_image_regionprops_to_the_bit() -> None:
    pieces = _shapes()
    pieces[pieces == 7] = 0  # an id that is missing
    ids, areas, solid = solidities(pieces)
    props = regionprops(pieces)
    assert ids.tolist() == [p.label for p in props]
    assert areas.tolist() == [p.area for p in props]
    np.testing.assert_array_equal(solid, [p.solidity for p in props])
    assert (solid > 0).all() and (solid <= 1).all()
    assert solid[ids.tolist().index(ids.max())] <= 1  # speckle pixels count


@pytest.mark.parametrize("connectivity", [1, 2])
def test_solidities_equal_scikit_image_on_random_fields_and_split_labels(connectivity: int) -> None:
    """Blobs of every shape a smoothed noise field makes, and labels of several pieces each
    (the hull spans the rows between them too)."""
    rng = np.random.default_rng(connectivity)
    for sigma, cover in ((0.8, 0.3), (2.0, 0.5), (4.0, 0.8)):
        field = ndi.gaussian_filter(rng.random((160, 170)), sigma)
        pieces = label(field > np.quantile(field, 1 - cover), connectivity=connectivity)
        for image in (pieces, np.where(pieces % 5 == 0, 3, pieces)):  # label 3 in many pieces
            ids, _, solid = solidities(image)
            props = regionprops(image)
            assert ids.tolist() == [p.label for p in props]
            np.testing.assert_array_equal(solid, [p.solidity for p in props])


def test_solidities_of_an_empty_image_and_a_3d_one() -> None:
    ids, areas, solid = solidities(np.zeros((5, 5), np.int32))
    assert len(ids) == len(areas) == len(solid) == 0
    with pytest.raises(ValueError, match="2D"):
        solidities(np.zeros((2, 5, 5), np.int32))

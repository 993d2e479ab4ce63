"""Object crops and cluster painting (core/objects.py): no Qt, no napari, no training."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from napari_dem.core.objects import object_crops, object_ids, paint_clusters
from napari_dem.core.progress import Cancelled, CancelToken


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    """Three objects with known boxes; the image is a ramp so every crop is recognisable."""
    labels = np.zeros((40, 50), np.uint16)
    labels[10:20, 5:25] = 7  # 10 x 20, wide
    labels[30:40, 40:44] = 3  # 10 x 4, touches the bottom border
    labels[0:2, 0:2] = 12  # 2 x 2, in the corner
    labels[11, 6] = 0  # a hole in object 7
    image = np.arange(40 * 50, dtype=np.float64).reshape(40, 50)
    return image, labels


def _expected(image, labels, obj, box, size, mask):
    """Hand-made crop: box (already enlarged and clipped), mask, centred zero padding, resize."""
    (r0, r1), (c0, c1) = box
    crop = image[r0:r1, c0:c1].astype(np.float64)
    if mask:
        crop = np.where(labels[r0:r1, c0:c1] == obj, crop, 0.0)
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side))
    square[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = crop
    if side == size:
        return square
    return resize(
        square, (size, size), order=1, mode="constant", anti_aliasing=side > size, preserve_range=True
    )


def test_ids_ascending_and_crops_match_hand_computed_boxes(scene) -> None:
    image, labels = scene
    crops, ids = object_crops(image, labels, size=16, pad=0.2, mask=False)
    assert ids.dtype == np.int64 and ids.tolist() == [3, 7, 12]
    assert crops.shape == (3, 16, 16) and crops.dtype == np.float32
    boxes = {
        # rows 30:40 (h 10, margin 2) -> 28:40 clipped; cols 40:44 (w 4, margin 1) -> 39:45
        3: ((28, 40), (39, 45)),
        # rows 10:20 (margin 2) -> 8:22; cols 5:25 (w 20, margin 4) -> 1:29
        7: ((8, 22), (1, 29)),
        # 2 x 2 box, margin round(0.4) = 0, at the corner
        12: ((0, 2), (0, 2)),
    }
    for crop, obj in zip(crops, ids, strict=True):
        want = _expected(image, labels, obj, boxes[obj], 16, mask=False)
        np.testing.assert_allclose(crop, want, rtol=1e-5, atol=1e-3)


def test_crop_is_square_padded_centred_and_keeps_aspect() -> None:
    labels = np.zeros((30, 30), np.int32)
    labels[10:14, 5:25] = 1  # 4 x 20
    image = (labels > 0).astype(float) * 5.0
    (crop,), _ = object_crops(image, labels, size=20, pad=0.0, mask=True)
    # 4 x 20 box -> 20 x 20 square with 8 zero rows above and below, no resizing needed
    assert np.all(crop[8:12] == 5.0) and not crop[:8].any() and not crop[12:].any()


def test_mask_zeroes_other_objects_and_holes(scene) -> None:
    image, labels = scene
    image = image + 1.0  # no zero pixel in the image itself
    size = 64  # upsampled: zero regions stay visible in the crop
    masked, _ = object_crops(image, labels, size=size, pad=0.5, mask=True)
    plain, _ = object_crops(image, labels, size=size, pad=0.5, mask=False)
    # object 7: rows 10:20 (margin 5 -> 5:25), cols 5:25 (margin 10 -> 0:35); square side 35
    box = ((5, 25), (0, 35))
    np.testing.assert_allclose(masked[1], _expected(image, labels, 7, box, size, mask=True), atol=1e-3)
    assert (masked[1] == 0).sum() > (plain[1] == 0).sum()
    # the unmasked crop has no zero pixels inside the image part
    inside = plain[1][14:48]  # the 20 image rows sit at rows 7:27 of the 35-px square: x 64/35
    assert inside.min() > 0


def test_rgb_and_yxc_are_averaged(scene) -> None:
    image, labels = scene
    rgb = np.stack([image, 2 * image, 3 * image], axis=-1)
    grey_crops, _ = object_crops(2 * image, labels, size=12)
    rgb_crops, ids = object_crops(rgb, labels, size=12)
    np.testing.assert_allclose(rgb_crops, grey_crops, rtol=1e-5)
    rgba = np.concatenate([rgb, np.full((*image.shape, 1), 255.0)], axis=-1)
    rgba_crops, _ = object_crops(rgba, labels, size=12)  # alpha is not intensity
    np.testing.assert_allclose(rgba_crops, grey_crops, rtol=1e-5)
    two, _ = object_crops(np.stack([image, 3 * image], axis=-1), labels, size=12)
    np.testing.assert_allclose(two, grey_crops, rtol=1e-5)
    assert ids.tolist() == [3, 7, 12]


def test_labels_without_background_and_huge_ids() -> None:
    labels = np.ones((6, 6), np.int64)
    labels[:, 3:] = 10**12
    crops, ids = object_crops(np.ones((6, 6)), labels, size=4, pad=0.0)
    assert ids.tolist() == [1, 10**12] and crops.shape == (2, 4, 4)
    painted = paint_clusters(labels, ids, np.array([2, 1]))
    assert painted.dtype == np.uint8
    np.testing.assert_array_equal(painted, np.where(labels == 1, 2, 1))


def test_progress_and_cancel(scene) -> None:
    image, labels = scene
    calls = []
    object_crops(image, labels, size=8, progress=lambda d, t, m: calls.append((d, t)))
    assert calls[-1] == (3, 3)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        object_crops(image, labels, size=8, cancel=token)


def test_paint_clusters_exact(scene) -> None:
    _, labels = scene
    painted = paint_clusters(labels, np.array([3, 7, 12]), np.array([2, 1, 2]))
    want = np.zeros(labels.shape, np.uint8)
    want[labels == 3] = 2
    want[labels == 7] = 1
    want[labels == 12] = 2
    assert painted.dtype == np.uint8
    np.testing.assert_array_equal(painted, want)
    # an object that is not listed becomes background; ids in any order
    painted = paint_clusters(labels, np.array([12, 3]), np.array([1, 2]))
    assert set(np.unique(painted[labels == 7])) == {0}
    assert np.all(painted[labels == 12] == 1) and np.all(painted[labels == 3] == 2)
    # dtype: the smallest unsigned integer that holds the largest cluster id
    assert paint_clusters(labels, np.array([3]), np.array([300])).dtype == np.uint16
    assert paint_clusters(labels, np.array([3]), np.array([70000])).dtype == np.uint32
    assert paint_clusters(labels.astype(np.int32), np.array([3]), np.array([1])).dtype == np.uint8


def test_object_ids(scene) -> None:
    assert object_ids(scene[1]).tolist() == [3, 7, 12]
    assert object_ids(np.zeros((3, 3), int)).size == 0


def test_errors(scene) -> None:
    image, labels = scene
    with pytest.raises(ValueError, match="differ"):
        object_crops(image[:, :-1], labels)
    with pytest.raises(ValueError, match="differ"):
        object_crops(np.zeros((40, 50, 3, 2)), labels)
    with pytest.raises(ValueError, match="integer"):
        object_crops(image, labels.astype(float))
    with pytest.raises(ValueError, match="integer"):
        object_crops(image, labels > 0)
    with pytest.raises(ValueError, match="no objects"):
        object_crops(image, np.zeros_like(labels))
    with pytest.raises(ValueError, match="3D"):
        object_crops(np.zeros((1, 2, 40, 50)), labels[None, None])
    with pytest.raises(ValueError, match="negative"):
        object_crops(image, labels.astype(np.int32) - 1)
    with pytest.raises(ValueError, match="NaN"):
        object_crops(np.full(image.shape, np.nan), labels)
    with pytest.raises(ValueError, match="size"):
        object_crops(image, labels, size=0)
    with pytest.raises(ValueError, match="pad"):
        object_crops(image, labels, pad=-0.1)
    with pytest.raises(ValueError, match="equal length"):
        paint_clusters(labels, np.array([3, 7]), np.array([1]))
    with pytest.raises(ValueError, match="unique"):
        paint_clusters(labels, np.array([3, 3]), np.array([1, 2]))
    with pytest.raises(ValueError, match=">= 1"):
        paint_clusters(labels, np.array([3]), np.array([0]))
    with pytest.raises(ValueError, match="integer"):
        paint_clusters(labels.astype(float), np.array([3]), np.array([1]))


def test_3d_crops_match_hand_computed_boxes() -> None:
    labels = np.zeros((12, 20, 30), np.uint16)
    labels[2:7, 5:15, 10:14] = 4  # 5 x 10 x 4
    labels[10:12, 0:2, 28:30] = 9  # 2 x 2 x 2 in a corner
    labels[3, 6, 11] = 0  # a hole
    image = np.arange(labels.size, dtype=np.float64).reshape(labels.shape)
    crops, ids = object_crops(image, labels, size=8, pad=0.2, mask=True)
    assert ids.tolist() == [4, 9] and crops.shape == (2, 8, 8, 8) and crops.dtype == np.float32
    # object 4: z 2:7 (margin 1) -> 1:8; y 5:15 (margin 2) -> 3:17; x 10:14 (margin round(0.8)=1) -> 9:15
    box = image[1:8, 3:17, 9:15] * (labels[1:8, 3:17, 9:15] == 4)
    cube = np.zeros((14, 14, 14))
    cube[3:10, 0:14, 4:10] = box  # centred: (14-7)//2 = 3, (14-6)//2 = 4
    want = resize(cube, (8, 8, 8), order=1, mode="constant", anti_aliasing=True, preserve_range=True)
    np.testing.assert_allclose(crops[0], want, rtol=1e-5, atol=1e-3)
    # object 9: margins round(0.4) = 0, box 10:12, 0:2, 28:30, upscaled from 2^3
    want = resize(
        image[10:12, 0:2, 28:30],
        (8, 8, 8),
        order=1,
        mode="constant",
        anti_aliasing=False,
        preserve_range=True,
    )
    np.testing.assert_allclose(crops[1], want, rtol=1e-5, atol=1e-3)
    painted = paint_clusters(labels, ids, np.array([2, 1]))
    assert painted.shape == labels.shape and set(np.unique(painted[labels == 4])) == {2}

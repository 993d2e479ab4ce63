"""Objects of an instance label image as small square crops, and cluster ids painted back.

:func:`object_crops` cuts one ``size x size`` crop per object of a 2D instance label image
(the input of :func:`napari_dem.core.cluster.prepare_images` / ``cluster_images``), and
:func:`paint_clusters` turns the per-object cluster ids back into a label image. No Qt, no
napari, no torch.
"""

from __future__ import annotations

import numpy as np

from .intensity import to_grey
from .progress import CancelToken, ProgressFn, check_cancel, report

#: cluster ids are painted with the smallest of these that holds K
_UINTS = (np.uint8, np.uint16, np.uint32, np.uint64)


def _grey(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` (YX, or YXC such as RGB/RGBA) as a float64 YX array; ``ValueError`` if it does not fit."""
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"the image must be numeric, got dtype {image.dtype}")
    if image.shape != shape and not (image.ndim == 3 and image.shape[:2] == shape and image.shape[2] >= 1):
        raise ValueError(
            f"the image (shape {image.shape}) and the labels (shape {shape}) differ: "
            "the image must be YX or YXC with the labels' Y and X"
        )
    grey = to_grey(image)
    if not np.all(np.isfinite(grey)):
        raise ValueError("the image contains NaN or infinite values")
    return grey


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"the labels must be an integer array (an instance label image), got {labels.dtype}")
    if labels.ndim != 2:
        raise ValueError(f"the labels must be 2D (Y, X), got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("the labels contain negative ids")
    return labels


def object_ids(labels: np.ndarray) -> np.ndarray:
    """The non-zero ids of ``labels``, ascending, as int64."""
    ids = np.unique(np.asarray(labels))
    return ids[ids != 0].astype(np.int64)


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    if crop.shape == (size, size):
        return crop
    down = crop.shape[0] > size
    return resize(crop, (size, size), order=1, mode="constant", anti_aliasing=down, preserve_range=True)


def object_crops(
    image: np.ndarray,
    labels: np.ndarray,
    size: int = 28,
    pad: float = 0.2,
    mask: bool = True,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One square ``size x size`` crop per object of a 2D instance label image.

    For every non-zero id of ``labels`` (ascending): its bounding box, enlarged on each side by
    ``pad`` times the box's height (rows) and width (columns), rounded to whole pixels, and
    clipped at the image borders, is cut from ``image`` (YX grey, or YXC such as RGB: the
    channels are averaged); with ``mask`` the pixels that do not belong to the object are set
    to 0. The crop is padded with zeros to a square (centred, so the aspect ratio is kept) and
    resized to ``size x size`` (bilinear; anti-aliased when shrinking).

    Returns ``(crops, ids)``: ``(N, size, size)`` float32 and ``(N,)`` int64.
    """
    from scipy import ndimage

    labels = _check_labels(labels)
    grey = _grey(image, labels.shape)
    size = int(size)
    if size < 1:
        raise ValueError(f"the crop size must be >= 1, got {size}")
    if not (np.isfinite(pad) and pad >= 0):
        raise ValueError(f"pad must be a fraction >= 0, got {pad}")
    ids, inverse = np.unique(labels, return_inverse=True)
    first = 1 if ids.size and ids[0] == 0 else 0  # with a background, inverse 0 is the background
    n = len(ids) - first
    if n == 0:
        raise ValueError("the labels contain no objects (every pixel is 0)")
    # object i (ids[first + i]) is the value i + 1 of `inverse`, the background 0
    inverse = inverse.reshape(labels.shape) + (1 - first)
    boxes = ndimage.find_objects(inverse)  # boxes[i] is the box of object i
    crops = np.empty((n, size, size), np.float32)
    height, width = labels.shape
    for i in range(n):
        if i % 64 == 0:
            check_cancel(cancel)
            report(progress, i, n, "cropping objects")
        j = i + 1
        rows, cols = boxes[i]
        h, w = rows.stop - rows.start, cols.stop - cols.start
        mr, mc = round(pad * h), round(pad * w)
        r0, r1 = max(0, rows.start - mr), min(height, rows.stop + mr)
        c0, c1 = max(0, cols.start - mc), min(width, cols.stop + mc)
        crop = grey[r0:r1, c0:c1]
        if mask:
            crop = np.where(inverse[r0:r1, c0:c1] == j, crop, 0.0)
        h, w = crop.shape
        side = max(h, w)
        square = np.zeros((side, side), np.float64)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = crop
        crops[i] = _resize(square, size)
    report(progress, n, n, "cropping objects")
    return crops, ids[first:].astype(np.int64)


def paint_clusters(labels: np.ndarray, ids: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """A label image in which every pixel of object ``ids[i]`` is ``clusters[i]`` (background 0).

    Pixels of ids that are not in ``ids`` become 0. The dtype is the smallest unsigned integer
    that holds ``max(clusters)``.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"the labels must be an integer array, got {labels.dtype}")
    ids = np.asarray(ids)
    clusters = np.asarray(clusters)
    if ids.ndim != 1 or ids.shape != clusters.shape:
        raise ValueError(f"ids and clusters must be 1D of equal length, got {ids.shape} and {clusters.shape}")
    if ids.size and (ids.dtype.kind not in "iu" or clusters.dtype.kind not in "iu"):
        raise ValueError("ids and clusters must be integers")
    if ids.size and (ids.min() < 1 or clusters.min() < 1):
        raise ValueError("ids and cluster ids must be >= 1 (0 is the background)")
    if len(np.unique(ids)) != len(ids):
        raise ValueError("ids must be unique")
    top = int(clusters.max()) if clusters.size else 0
    dtype = next(t for t in _UINTS if top <= np.iinfo(t).max)
    if labels.size == 0 or ids.size == 0:
        return np.zeros(labels.shape, dtype)
    max_id = int(labels.max())
    if max_id < 0 or labels.min() < 0:
        raise ValueError("the labels contain negative ids")
    if max_id <= max(1 << 20, 4 * labels.size):  # a lookup table: one entry per possible id
        lut = np.zeros(max_id + 1, dtype)
        keep = ids <= max_id
        lut[ids[keep]] = clusters[keep]
        return lut[labels]
    # sparse, huge ids: look each pixel's id up among the sorted ids
    order = np.argsort(ids)
    sorted_ids, sorted_clusters = ids[order], clusters[order].astype(dtype)
    pos = np.clip(np.searchsorted(sorted_ids, labels), 0, len(ids) - 1)
    hit = sorted_ids[pos] == labels
    return np.where(hit, sorted_clusters[pos], 0).astype(dtype, copy=False)

"""Objects of an instance label image as small square crops, and cluster ids painted back.

:func:`object_crops` cuts one ``size x size`` crop per object of a 2D instance label image,
or one cube crop per object of a 3D (ZYX) one (the input of
:func:`napari_dem.core.cluster.prepare_images` / ``cluster_images``), and
:func:`paint_clusters` turns the per-object cluster ids back into a label image. No Qt, no
napari, no torch.
"""

from __future__ import annotations

import numpy as np

from .progress import CancelToken, ProgressFn, check_cancel, report

#: cluster ids are painted with the smallest of these that holds K
_UINTS = (np.uint8, np.uint16, np.uint32, np.uint64)


def _grey(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``image`` (the labels' shape, optionally with a trailing channel axis such as RGB/RGBA) as a
    float64 grey array of the labels' shape; ``ValueError`` if it does not fit."""
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"the image must be numeric, got dtype {image.dtype}")
    if image.shape == shape:
        grey = image
    elif image.ndim == len(shape) + 1 and image.shape[:-1] == shape and image.shape[-1] >= 1:
        channels = image[..., :3] if image.shape[-1] == 4 else image  # RGBA: alpha is not intensity
        grey = channels.astype(np.float64).mean(-1)
    else:
        raise ValueError(
            f"the image (shape {image.shape}) and the labels (shape {shape}) differ: "
            "the image must have the labels' shape (plus, optionally, a trailing channel axis)"
        )
    grey = grey.astype(np.float64, copy=False)
    if not np.all(np.isfinite(grey)):
        raise ValueError("the image contains NaN or infinite values")
    return grey


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"the labels must be an integer array (an instance label image), got {labels.dtype}")
    if labels.ndim not in (2, 3):
        raise ValueError(f"the labels must be 2D (Y, X) or 3D (Z, Y, X), got shape {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ValueError("the labels contain negative ids")
    return labels


def object_ids(labels: np.ndarray) -> np.ndarray:
    """The non-zero ids of ``labels``, ascending, as int64."""
    ids = np.unique(np.asarray(labels))
    return ids[ids != 0].astype(np.int64)


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    target = (size,) * crop.ndim
    if crop.shape == target:
        return crop
    down = crop.shape[0] > size
    return resize(crop, target, order=1, mode="constant", anti_aliasing=down, preserve_range=True)


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
    """One square ``size x size`` crop per object of a 2D instance label image (a cube
    ``size^3`` per object of a 3D one).

    For every non-zero id of ``labels`` (ascending): its bounding box, enlarged on each side by
    ``pad`` times the box's extent along that axis, rounded to whole pixels, and clipped at the
    image borders, is cut from ``image`` (the labels' shape, or with a trailing channel axis such
    as RGB: the channels are averaged); with ``mask`` the pixels that do not belong to the object
    are set to 0. The crop is padded with zeros to a square or cube (centred, so the aspect
    ratio is kept) and resized to ``size`` per side (linear; anti-aliased when shrinking).

    Returns ``(crops, ids)``: ``(N, size, size)`` or ``(N, size, size, size)`` float32 and
    ``(N,)`` int64.
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
    crops = np.empty((n,) + (size,) * labels.ndim, np.float32)
    for i in range(n):
        if i % 64 == 0:
            check_cancel(cancel)
            report(progress, i, n, "cropping objects")
        box = []
        for sl, extent in zip(boxes[i], labels.shape, strict=True):
            margin = round(pad * (sl.stop - sl.start))
            box.append(slice(max(0, sl.start - margin), min(extent, sl.stop + margin)))
        box = tuple(box)
        crop = grey[box]
        if mask:
            crop = np.where(inverse[box] == i + 1, crop, 0.0)
        side = max(crop.shape)
        cube = np.zeros((side,) * crop.ndim, np.float64)
        cube[tuple(slice((side - e) // 2, (side - e) // 2 + e) for e in crop.shape)] = crop
        crops[i] = _resize(cube, size)
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

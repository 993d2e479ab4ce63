"""Padding around the image (a stitched mosaic's black margins, a round field of view's black
corners) filled in as background before the fit, and left out of the objects.

Why: padding is one exact value (the data's minimum, or its maximum) over a large, solid
region at the image's border. To the fit it is a class of its own, darker (or brighter)
than anything in view: a brightfield field of dark cells inside a black round field of view,
or with a third of it black from stitching, was read as classes (F1 0.00; 0.95-0.96 with this
step, 0.97 without the padding; ``benchmarks/bench_padding.py``). Filled with the image in
view mirrored across its edge (:func:`fill_padding`), padding reads as more of the image, and
the objects task gives it 0 whatever the fit made of it.

Only arrays in memory are looked at (the mask needs every pixel), plane by plane (each YX
plane of a stack or a movie); scattered pixels at the minimum (a dim background clipped at
zero) are not padding: the region must survive an opening by a :data:`SOLID` px square,
touch the plane's border, and cover at least :data:`MIN_SHARE` of the plane; pixels at the
same value connected to it then join it; and what borders it must stand :data:`MIN_STEP` of
the data's range away from its value (an image's own background clipped at zero is edged by
values just above it); and the plane must hold no solid regions at that value away from its
border (:data:`INNER_SHARE`): overexposed objects are plateaus at the maximum, some of them cut
by the border.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .layout import Layout

#: Side (px) of the square a padding region must hold everywhere (an opening).
SOLID = 5
#: Padding covers at least this share of a plane (else the plane has none).
MIN_SHARE = 0.01
#: Width (px) of the band of pixels in view around the padding that it is compared with.
RING = 3
#: The pixels in view around padding lie, by their median, at least this share of the data's
#: range away from the padding's value. Else the region is the image's own background clipped
#: at the minimum (a DNA stain in 8 bits, whose dark background is 0 over large areas, edged by
#: 1s and 2s) or saturated glass at the maximum, and is left as it is.
MIN_STEP = 0.02
#: Solid regions at the extreme inside the plane (touching no border) as large as this share of
#: those at the border say the value is the content's own: saturated objects, some of them cut
#: by the border, are plateaus at the maximum too (overexposed nuclei were filled in as
#: padding and left out of the objects: F1 0.17-0.57 where Otsu has 1.00). Padding lies at
#: the border only.
INNER_SHARE = 0.1


def find_padding(image, layout: Layout) -> np.ndarray | None:
    """Boolean mask (the labels' shape) of the padding of ``image`` (a numpy array), or None
    when there is none or ``image`` is not in memory."""
    if not isinstance(image, np.ndarray) or image.dtype.kind not in "uif" or image.size == 0:
        return None
    channels = np.moveaxis(image, layout.axes.index("C"), -1) if "C" in layout.axes else image[..., None]
    flat = channels.reshape(-1, channels.shape[-1])
    low, high = flat.min(0), flat.max(0)
    span = np.where(high > low, high - low, 1).astype(np.float64)
    ys, xs = layout.label_axes.index("Y"), layout.label_axes.index("X")
    found = np.zeros(layout.label_shape, dtype=bool)
    for extreme in (low, high):
        at = (channels == extreme).all(-1)
        if not at.any():
            continue
        planes = np.moveaxis(at, (ys, xs), (-2, -1))
        values = np.moveaxis(channels, (ys, xs), (-3, -2))  # (..., Y, X, C)
        out = np.moveaxis(found, (ys, xs), (-2, -1))  # a view: written through
        for index in np.ndindex(*planes.shape[:-2]):
            padding = _plane_padding(planes[index])
            if padding.any() and _stands_apart(values[index], padding, extreme, span):
                out[index] |= padding
    return found if found.any() else None


def _border_run(extreme: np.ndarray) -> bool:
    """Whether the plane's border holds :data:`SOLID` pixels in a row at the extreme: padding
    touches it so. A quick test before the opening (0.17 s on a 2048 px plane whose dim
    background is 3 % zeros)."""
    for line in (extreme[0], extreme[-1], extreme[:, 0], extreme[:, -1]):
        if len(line) >= SOLID and np.convolve(line, np.ones(SOLID), mode="valid").max() >= SOLID:
            return True
    return False


def _stands_apart(values: np.ndarray, padding: np.ndarray, extreme: np.ndarray, span: np.ndarray) -> bool:
    """Whether the pixels in view within :data:`RING` px of ``padding`` (``values``: Y, X, C)
    lie, by their median, :data:`MIN_STEP` of the data's range from the padding's value."""
    ring = ndi.binary_dilation(padding, iterations=RING) & ~padding
    if not ring.any():
        return True
    step = np.abs(np.median(values[ring].astype(np.float64), axis=0) - extreme) / span
    return bool(step.mean() >= MIN_STEP)


def _plane_padding(extreme: np.ndarray) -> np.ndarray:
    """The padding of one plane from its mask of pixels at an extreme value."""
    if extreme.sum() < MIN_SHARE * extreme.size or not _border_run(extreme):
        return np.zeros_like(extreme)
    solid = ndi.binary_opening(extreme, structure=np.ones((SOLID, SOLID), dtype=bool))
    pieces, n = ndi.label(solid)
    if n == 0:
        return solid
    edge = np.unique(np.concatenate([pieces[0], pieces[-1], pieces[:, 0], pieces[:, -1]]))
    at_edge = np.isin(pieces, edge[edge > 0])
    if (solid & ~at_edge).sum() >= INNER_SHARE * at_edge.sum():
        return np.zeros_like(extreme)  # the content's own plateaus: saturated objects
    # grown back over every pixel at the extreme that touches it: the slivers where a round
    # view meets the border are thinner than the square
    padding = ndi.binary_propagation(at_edge, mask=extreme)
    if padding.sum() < MIN_SHARE * padding.size or padding.all():
        return np.zeros_like(extreme)
    return padding


def read_padded(image, layout: Layout):
    """``(image, mask)`` as the segmenter and the training read an image: its padding
    (:func:`find_padding`) filled in (:func:`fill_padding`), and the padding's mask; ``(image,
    None)`` when it has none."""
    padding = find_padding(image, layout)
    if padding is None:
        return image, None
    return fill_padding(image, layout, padding), padding


def fill_padding(image: np.ndarray, layout: Layout, padding: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (same dtype) whose ``padding`` pixels hold the image in view mirrored
    across the padding's edge: each takes the pixel as far inside the edge as it lies outside
    (through its nearest pixel in view; that pixel itself where the mirror falls outside the
    image or in padding again), plane by plane. Not one level plus noise: a narrow peak of
    intensity the size of the padding is a class of its own to the fit (a brightfield field in
    a black round field of view then took three clusters where it has two)."""
    ys, xs = layout.axes.index("Y"), layout.axes.index("X")
    axes = [a for a in layout.axes if a != "C"]
    plane_axes = (axes.index("Y"), axes.index("X"))
    filled = np.array(image, copy=True)
    view = np.moveaxis(filled, (ys, xs), (-2, -1)) if "C" not in layout.axes else None
    if view is None:  # channels: put Y, X last and C just before them
        c = layout.axes.index("C")
        view = np.moveaxis(filled, (c, ys, xs), (-3, -2, -1))
    masks = np.moveaxis(padding, plane_axes, (-2, -1))
    for index in np.ndindex(*masks.shape[:-2]):
        mask = masks[index]
        if not mask.any():
            continue
        fy, fx = _mirror_sources(mask)
        plane = view[index]
        plane[..., mask] = plane[..., fy[mask], fx[mask]]
    return filled


def _mirror_sources(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a plane, the (y, x) of the pixel in view it is filled from (see
    :func:`fill_padding`); pixels in view map to themselves."""
    _, (ny, nx) = ndi.distance_transform_edt(mask, return_indices=True)
    yy, xx = np.indices(mask.shape)
    my = np.clip(2 * ny - yy, 0, mask.shape[0] - 1)
    mx = np.clip(2 * nx - xx, 0, mask.shape[1] - 1)
    inside = ~mask[my, mx]
    return np.where(inside, my, ny), np.where(inside, mx, nx)


def padding_note(padding: np.ndarray) -> str:
    """What the fit's decision says about the padding (:meth:`.decide.Decision.summary`)."""
    return f"padding around the image filled in as background ({padding.mean():.0%} of it)"

"""Post-processing of label images: background choice, instances, merging, cleaning.

Pure numpy / scikit-image. Every function returns a new array and leaves its input
untouched, so a caller (a napari widget) can apply the result as one undoable edit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage import morphology, segmentation

from .errors import InputError
from .peaks import label_peaks
from .progress import CancelToken, ProgressFn, check_cancel, report
from .ridges import join_ridges, join_shallow, join_slivers
from .typical import more_typical, object_centres, typical_mask


def background_id(spec: str | int, n_clusters: int) -> int:
    """Label id of the background cluster from ``darkest``, ``brightest`` or an id in 1..K."""
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s == "darkest":
            return 1
        if s == "brightest":
            return n_clusters
        if not s.lstrip("-").isdigit():
            raise InputError(f"background must be darkest, brightest or a cluster id, got {spec!r}")
        spec = int(s)
    if not 1 <= int(spec) <= n_clusters:
        raise InputError(f"background cluster id must be between 1 and {n_clusters}, got {spec}")
    return int(spec)


def merge_clusters(labels: np.ndarray, ids: Iterable[int], into: int | None = None) -> np.ndarray:
    """Give every label in ``ids`` the id ``into`` (default: the smallest of them)."""
    ids = sorted({int(i) for i in ids})
    if not ids:
        return labels.copy()
    target = ids[0] if into is None else int(into)
    out = labels.copy()
    out[np.isin(labels, ids)] = target
    return out


def remove_small_objects(labels: np.ndarray, min_size: int, background: int = 0) -> np.ndarray:
    """Objects (connected pieces of one id) smaller than ``min_size`` pixels become background."""
    out = labels.copy()
    for lab in np.unique(labels):
        if lab == background:
            continue
        comp, n = ndi.label(labels == lab)
        if n == 0:
            continue
        sizes = np.bincount(comp.ravel())
        small = sizes < min_size
        small[0] = False
        out[small[comp]] = background
    return out


def fill_holes(labels: np.ndarray, background: int = 0) -> np.ndarray:
    """Background pockets fully enclosed by one object take that object's id."""
    out = labels.copy()
    for lab in np.unique(labels):
        if lab == background:
            continue
        mask = labels == lab
        filled = ndi.binary_fill_holes(mask)
        out[filled & (labels == background)] = lab
    return out


def fill_small_holes(mask: np.ndarray, max_size: float) -> np.ndarray:
    """``mask`` with its holes of fewer than ``max_size`` pixels (voxels) filled.

    A hole is a pocket of background enclosed by foreground (not touching the border): the
    dark nucleolus of a nucleus, the dim face of a coin. Only holes smaller than the caller's
    typical object are filled, so that a lumen ringed by touching cells stays background.
    """
    mask = np.asarray(mask, dtype=bool)
    # The pieces of background (face-connected, as ``binary_fill_holes`` floods), those that
    # touch no face of the array being holes: one labelling, where the flood fill iterates a
    # dilation until it settles (0.14 of 0.16 s on a 2048 px image).
    pockets, n = ndi.label(~mask)
    if n == 0:
        return mask
    small = np.bincount(pockets.ravel(), minlength=n + 1) < max_size
    small[0] = False
    for axis in range(mask.ndim):
        for end in (0, -1):
            small[np.take(pockets, end, axis=axis)] = False
    return mask | small[pockets]


#: Width (px) of the ring of background around each piece of foreground that
#: :func:`drop_wrong_side` compares the piece with.
RING = 3
#: Smoothing (px) of the intensity those means are taken on.
SIDE_SIGMA = 1.0
#: Pixels of context a tile needs for the smoothed intensity (scipy's 4-sigma reach).
SIDE_HALO = math.ceil(4 * SIDE_SIGMA)


def surround_rings(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(pieces, ring, n): the connected components of ``mask`` labelled 1..n, and the
    background within :data:`RING` px (a square window) of each, labelled with its piece
    (the largest-numbered one where two are near)."""
    mask = np.asarray(mask, dtype=bool)
    pieces, n = ndi.label(mask)
    ring = ndi.maximum_filter(pieces, size=2 * RING + 1) if n else pieces.copy()
    ring[mask] = 0
    return pieces, ring, n


def side_sums(pieces: np.ndarray, ring: np.ndarray, n: int, smooth: np.ndarray) -> np.ndarray:
    """``(2, 2, n + 1)``: pixel counts and intensity sums of each piece and of its ring, over
    one block (sums of several blocks add up to the whole image's)."""
    flat = np.asarray(smooth, dtype=np.float64).ravel()
    return np.array(
        [
            [
                np.bincount(lab.ravel(), minlength=n + 1),
                np.bincount(lab.ravel(), weights=flat, minlength=n + 1),
            ]
            for lab in (pieces, ring)
        ]
    )


def side_intensity(grey: np.ndarray) -> np.ndarray:
    """``grey`` smoothed by :data:`SIDE_SIGMA` px (float32): what the pieces are compared on."""
    return ndi.gaussian_filter(np.asarray(grey, dtype=np.float32), SIDE_SIGMA)


def side_margin(sums: np.ndarray) -> np.ndarray:
    """Per label 0..n: the piece's mean minus its ring's mean, from :func:`side_sums`."""
    (count_in, sum_in), (count_ring, sum_ring) = sums
    return sum_in / np.maximum(count_in, 1) - sum_ring / np.maximum(count_ring, 1)


def wrong_side(sums: np.ndarray, bright: bool) -> np.ndarray:
    """Per label 0..n (0 never): whether the piece's mean is not above its ring's mean (not
    below, for dark objects); a piece with no ring (the whole field) is never wrong."""
    margin, count_ring = side_margin(sums), sums[1, 0]
    wrong = (count_ring > 0) & ((margin if bright else -margin) <= 0)
    wrong[0] = False
    return wrong


#: A piece of foreground under the smallest-object floor (:func:`min_object_size`) is still an
#: object when its mean stands out of the background around it by this share of the image's
#: object/background contrast (:func:`standing_out`).
STANDOUT = 0.5


def standing_out(foreground: np.ndarray, grey: np.ndarray, floor: int) -> np.ndarray:
    """The pieces (connected components) of ``foreground`` under ``floor`` pixels, and of at
    least :data:`MIN_OBJECT_PIXELS`, whose mean intensity (``grey`` smoothed by
    :data:`SIDE_SIGMA` px) differs from that of the background within :data:`RING` px around
    them by at least :data:`STANDOUT` of the difference between the whole foreground's and
    the whole background's means, on the objects' side of it (brighter for bright objects).

    Why: the floor (a disc of half the typical radius) drops specks of background that the
    fit took in, but also every real object much smaller than the typical one: the
    lymphocytes among an H&E stain's epithelial nuclei (6-9 px against 12-24 px; F1 0.845 ->
    0.942 with them), fragments of nuclei cut by the image border (BBBC007). A speck stands
    out of its surround by the noise; such objects by about the objects' own contrast.
    """
    fg = np.asarray(foreground, dtype=bool)
    pieces, ring, n = surround_rings(fg)
    if n == 0 or fg.all():
        return np.zeros(fg.shape, dtype=bool)
    smooth = side_intensity(grey)
    sums = side_sums(pieces, ring, n, smooth)
    (count_in, _), (count_ring, _) = sums
    contrast = float(smooth[fg].mean() - smooth[~fg].mean())
    margin = side_margin(sums)
    keep = (
        (count_in < floor)
        & (count_in >= MIN_OBJECT_PIXELS)
        & (count_ring > 0)
        & (margin * np.sign(contrast) >= STANDOUT * abs(contrast))
    )
    keep[0] = False
    return keep[pieces]


def drop_wrong_side(mask: np.ndarray, grey: np.ndarray, bright: bool) -> np.ndarray:
    """``mask`` without the pieces (connected components) whose mean intensity (``grey``
    smoothed by :data:`SIDE_SIGMA` px) is not above that of the background within
    :data:`RING` px around them when the objects are ``bright``, or not below when they are
    dark. A piece with no background around it (the whole field) is kept.

    Why: the latents see each pixel in its context, and their object cluster can take in
    specks of the background that are no brighter than it (in a field of four bright nuclei,
    seven such specks of 27-50 px, 0.8-1.7 noise levels *darker* than the background, were
    counted as objects). A piece on the wrong side of its own surround contradicts the
    polarity the fit decided, whatever its shape. Means and a maximum filter, not medians
    and nearest-piece rings: 0.2 s on a 2048x2048 image of 3000 nuclei (medians: 1.4 s).
    The segmenter adds :func:`side_sums` up tile by tile, so a lazy image is read a tile at
    a time.
    """
    pieces, ring, n = surround_rings(mask)
    if n == 0:
        return np.asarray(mask, dtype=bool)
    smooth = side_intensity(grey)
    return (pieces > 0) & ~wrong_side(side_sums(pieces, ring, n, smooth), bright)[pieces]


def object_radius(foreground: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Typical object radius of a foreground mask: ``(ndim + 1)`` times the mean distance of
    its pixels to the background, in units of the finest axis of ``spacing`` (pixels when
    isotropic).

    For a disc of radius R the mean distance is R / 3 (a ball: R / 4), and touching
    objects keep their own distances, so no splitting is needed first. 0 for no foreground.
    """
    fg = np.asarray(foreground, dtype=bool)
    if not fg.any():
        return 0.0
    return _radius(ndi.distance_transform_edt(fg, sampling=_relative(spacing, fg.ndim)), fg)


def _radius(dist: np.ndarray, fg: np.ndarray) -> float:
    """:func:`object_radius` from the distance transform ``dist`` of the non-empty mask ``fg``."""
    # Distances run between pixel centres: an edge pixel is 1 from the background, not 0.5.
    return float((fg.ndim + 1) * max(dist[fg].mean() - 0.5, 0.5))


#: A stack whose objects are this many times shorter along Z than across (mean chords) is
#: split as if its Z step were that much coarser, when no voxel size is given.
ANISOTROPY_MIN = 1.5
#: ... up to this many times.
ANISOTROPY_MAX = 8.0


def estimated_spacing(foreground: np.ndarray) -> tuple[float, float, float] | None:
    """``(z, 1, 1)``: how much shorter the 3D ``foreground``'s objects are along Z than across
    (the mean length of its runs of voxels along Y and X over that along Z), when that is at
    least :data:`ANISOTROPY_MIN`; None for round objects, 2D or no foreground.

    Why: a confocal stack is often sampled two to four times coarser in Z than in X and Y, and
    a file or a layer without a voxel size says nothing of it. Split as if isotropic, nuclei
    flattened by the Z step have a distance map capped by their few slices, flat-topped across
    the whole nucleus, so each got several seeds (F1 0.57-0.68 on stand-ins of such stacks
    against 0.86-0.92 with the Z step given). A mean chord is the object's size along an axis
    without splitting first: a ball's is the same along every axis.
    """
    fg = np.asarray(foreground, dtype=bool)
    if fg.ndim != 3 or not fg.any():
        return None
    chords = []
    for axis in range(3):
        runs = np.count_nonzero(np.diff(fg, axis=axis, prepend=False) & fg)
        chords.append(fg.sum() / max(runs, 1))
    ratio = (chords[1] + chords[2]) / 2 / chords[0]
    if ratio < ANISOTROPY_MIN:
        return None
    return (float(min(ratio, ANISOTROPY_MAX)), 1.0, 1.0)


def _relative(spacing: Sequence[float] | None, ndim: int) -> np.ndarray:
    """Voxel size relative to the finest axis (all ones when not given)."""
    if spacing is None:
        return np.ones(ndim)
    rel = np.asarray(spacing, dtype=np.float64)[-ndim:]
    if len(rel) != ndim or not (rel > 0).all():
        raise ValueError(f"spacing {tuple(spacing)} does not fit {ndim} spatial axes")
    return rel / rel.min()


def split_parameters(radius: float) -> tuple[int, float]:
    """(min_distance, smooth) of the watershed for objects of ``radius`` pixels.

    Scaled so that the DSB2018 nuclei (estimated radius 11 px) get the values measured
    best there (6, 2): seeds closer than about half a radius belong to one object, and the
    distance map is smoothed over a fifth of a radius. Big nuclei are no longer over-split.
    """
    r = max(float(radius), 1.0)
    return max(2, round(0.55 * r)), max(0.5, r / 5.5)


#: The smallest object kept is never under this many pixels (voxels).
MIN_OBJECT_PIXELS = 8


def min_object_size(radius: float, ndim: int, spacing: Sequence[float] | None = None) -> int:
    """Pixels (voxels) of the smallest object kept, for objects of ``radius`` (finest-axis units).

    A disc (ball) of half the typical radius: a quarter of a typical object's area in 2D, an
    eighth of its volume in 3D; at least :data:`MIN_OBJECT_PIXELS`. Specks of foreground in
    the background are then not counted as objects. Measured on the panel (docs/benchmarks.md
    §0) against the fixed 8 px: no case lower, development seeds 0.873 -> 0.878 mean F1 (a
    disc of 0.25 / 0.375 / 0.5 of the radius: 0.877 / 0.878 / 0.878).
    """
    half = max(float(radius), 0.0) / 2
    size = math.pi * half**2 if ndim == 2 else 4 / 3 * math.pi * half**3
    return max(MIN_OBJECT_PIXELS, round(size / float(np.prod(_relative(spacing, ndim)))))


def kept_foreground(
    foreground: np.ndarray, min_size: int | None = None, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """``foreground`` with its holes filled and its objects under ``min_size`` pixels dropped
    (``None``: :func:`min_object_size` of the estimated radius): what :func:`split_instances`
    splits, and what the benchmarks' plain connected components label."""
    fg = ndi.binary_fill_holes(np.asarray(foreground, dtype=bool))
    return _without_small(fg, _floor(fg, min_size, spacing))


def _floor(filled: np.ndarray, min_size: int | None, spacing: Sequence[float] | None) -> int:
    """``min_size``, or for ``None`` :func:`min_object_size` of the filled mask's radius."""
    if min_size is not None or not filled.any():
        return min_size or 0
    return min_object_size(object_radius(filled, spacing), filled.ndim, spacing)


def _without_small(filled: np.ndarray, floor: int) -> np.ndarray:
    """``filled`` without its pieces under ``floor`` pixels."""
    if floor <= 1 or not filled.any():
        return filled
    return morphology.remove_small_objects(filled, max_size=floor - 1)


def split_instances(
    foreground: np.ndarray,
    *,
    min_distance: int | None = None,
    smooth: float | None = None,
    min_size: int | None = None,
    spacing: Sequence[float] | None = None,
    grey: np.ndarray | None = None,
) -> np.ndarray:
    """Separate touching objects: distance transform, smoothed maxima as seeds, watershed; in
    2D, the pieces of one elongated object (a rod, whose ridge holds several maxima) joined
    again (:func:`.ridges.join_ridges`), and, with ``grey``, touching objects without a neck
    split again on a map learned from the image's own typical objects (:mod:`.typical`).

    ``min_distance`` (pixels) keeps two seeds of one elongated object from both
    surviving; ``smooth`` blurs the distance map so that a ragged edge does not add
    spurious maxima; ``None`` (default) scales each to the estimated object size
    (:func:`object_radius`, :func:`split_parameters`). ``spacing``: the voxel size (e.g. a
    Z step twice the pixel size), so that distances, smoothing and seed spacing are
    physical, not in voxels; None: read off the objects' shape in 3D
    (:func:`estimated_spacing`). Objects under ``min_size`` pixels are dropped (``None``: a
    quarter of a typical object, :func:`min_object_size`), unless the image's intensity
    ``grey`` (same shape) is given and they stand out of their surround
    (:func:`standing_out`): those are objects of their own, each one whole (too small to hold
    two); the others are split exactly as without ``grey``. Returns int32 instance labels,
    0 = background.
    """
    if grey is not None and np.shape(grey) != np.shape(foreground):
        raise InputError(f"grey has shape {np.shape(grey)}, the foreground {np.shape(foreground)}")
    filled = ndi.binary_fill_holes(np.asarray(foreground, dtype=bool))
    if spacing is None:
        spacing = estimated_spacing(filled)
    floor = _floor(filled, min_size, spacing)
    small = None if grey is None else standing_out(filled, grey, floor)
    kept = _without_small(filled, floor)
    inst = _split(kept, min_distance, smooth, spacing, floor)
    if grey is not None and kept.ndim == 2 and kept.any():
        inst = _split_as_typical(kept, np.asarray(grey), inst, min_distance, smooth)
    if small is not None and small.any():
        pieces, _ = ndi.label(small)
        inst = np.where(small, pieces + int(inst.max()) * (pieces > 0), inst).astype(np.int32)
    return inst


def _split(
    fg: np.ndarray,
    min_distance: int | None,
    smooth: float | None,
    spacing: Sequence[float] | None,
    floor: int = 0,
) -> np.ndarray:
    """:func:`split_instances` of the kept foreground ``fg``."""
    if not fg.any():
        return np.zeros(fg.shape, dtype=np.int32)
    rel = _relative(spacing, fg.ndim)
    dist = ndi.distance_transform_edt(fg, sampling=rel)
    min_distance, smooth = _split_parameters(dist, fg, min_distance, smooth)
    if smooth > 0:
        dist = ndi.gaussian_filter(dist, smooth / rel)
    inst = join_slivers(_seeded_watershed(dist, fg, min_distance, rel), dist, floor)
    return join_ridges(inst, dist)


def _split_parameters(dist: np.ndarray, fg: np.ndarray, min_distance: int | None, smooth: float | None):
    """``(min_distance, smooth)``: the given ones, or :func:`split_parameters` of the mask's radius."""
    if min_distance is None or smooth is None:
        auto_distance, auto_smooth = split_parameters(_radius(dist, fg))
        min_distance = auto_distance if min_distance is None else min_distance
        smooth = auto_smooth if smooth is None else smooth
    return min_distance, smooth


def _seeded_watershed(height: np.ndarray, fg: np.ndarray, min_distance: int, rel: np.ndarray) -> np.ndarray:
    """Watershed of ``-height`` within ``fg`` from the peaks of ``height`` at least
    ``min_distance`` apart (units of the finest axis of the voxel size ``rel``); every
    connected part of ``fg`` without a peak (tiny or flat) gets a seed of its own."""
    components, _ = ndi.label(fg)
    if (rel == 1).all():
        peaks = label_peaks(height, components, (min_distance,) * fg.ndim, min_distance)
    else:  # seeds closer than min_distance (in units of the finest axis) along any axis compete
        peaks = label_peaks(height, components, tuple(max(1, round(min_distance / r)) for r in rel), 1)
    markers = np.zeros(fg.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    seeded = np.unique(components[markers > 0])
    n = len(peaks)
    for comp_id in np.setdiff1d(np.unique(components), np.append(seeded, 0)):
        idx = np.argwhere(components == comp_id)[0]
        n += 1
        markers[tuple(idx)] = n
    inst = segmentation.watershed(-height, markers, mask=fg)
    return segmentation.relabel_sequential(inst)[0].astype(np.int32)


#: The learned map enters the split's landscape as the smoothed distance map times the map to
#: this power. At 0.3 (the first setting, chosen when no other rule guarded the split) touching
#: objects without a neck mostly stayed merged; at 1 the panel's small objects gain 0.035 F1,
#: its dense field 0.037 and DSB2018 0.022 (docs/benchmarks.md, "The learned map at full
#: weight").
TYPICAL_POWER = 1.0
#: ... and two pieces of that split whose shared boundary lies less than this share of the
#: lower peak below it are one object (:func:`.ridges.join_shallow`): at full weight the map's
#: own ripples seed a few big nuclei twice (BBBC007, a dark-on-bright field).
TYPICAL_DIP = 0.1


def _split_as_typical(
    fg: np.ndarray, grey: np.ndarray, inst: np.ndarray, min_distance: int | None, smooth: float | None
) -> np.ndarray:
    """``inst`` (the distance-map split of the 2D mask ``fg``) with touching objects split on the
    map learned from the image's typical objects, part by part where that gives more typical
    objects (:mod:`.typical`)."""
    # only parts the first split leaves with untypical pieces can gain typical ones
    typical = typical_mask(inst)
    parts, n = ndi.label(fg)
    open_parts = np.r_[False, ndi.sum(fg & ~typical[0], parts, np.arange(1, n + 1)) > 0]
    region = open_parts[parts]
    if not region.any():
        return inst
    centres = object_centres(fg, grey, inst, typical, where=region)
    if centres is None:
        return inst
    dist = ndi.distance_transform_edt(fg)
    min_distance, smooth = _split_parameters(dist, fg, min_distance, smooth)
    if smooth > 0:
        dist = ndi.gaussian_filter(dist, smooth)
        centres = ndi.gaussian_filter(centres, smooth / 2)
    height = dist * np.clip(centres, 0.0, None) ** TYPICAL_POWER * region
    other = join_shallow(_seeded_watershed(height, region, min_distance, np.ones(2)), height, TYPICAL_DIP)
    return more_typical(parts, n, inst, typical[0], other)


def instances_from_labels(
    labels: np.ndarray,
    background: int = 1,
    *,
    spatial_ndim: int | None = None,
    min_distance: int | None = None,
    smooth: float | None = None,
    min_size: int | None = None,
) -> np.ndarray:
    """Every cluster but ``background`` -> separated objects, 0 = background.

    Leading axes beyond ``spatial_ndim`` (time, or slices in 2D) are processed one
    by one; object ids are unique across the whole array.
    """
    spatial_ndim = spatial_ndim or labels.ndim
    if spatial_ndim > labels.ndim:
        raise InputError(f"spatial_ndim {spatial_ndim} exceeds the label image's {labels.ndim} dimensions")
    out = np.zeros(labels.shape, dtype=np.int32)
    lead = labels.shape[: labels.ndim - spatial_ndim]
    offset = 0
    for idx in np.ndindex(*lead) if lead else [()]:
        inst = split_instances(
            labels[idx] != background, min_distance=min_distance, smooth=smooth, min_size=min_size
        )
        inst[inst > 0] += offset
        offset = max(offset, int(inst.max()))
        out[idx] = inst
    return out


def instances_per_frame(
    labels,
    axes: str,
    background: int,
    *,
    out=None,
    min_distance: int | None = None,
    smooth: float | None = None,
    min_size: int | None = None,
    spacing: Sequence[float] | None = None,
    grey=None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
):
    """Every cluster but ``background`` -> separated objects (0 = background), frame by frame.

    ``spacing``: the pixel size of the spatial axes, in the order of ``axes`` (e.g. Z, Y, X),
    so that an anisotropic stack is split in physical distances. ``grey``: the image's
    intensity in the labels' shape and axes (any array, read frame by frame), so that pieces
    too small for the size floor that stand out of their surround are kept
    (:func:`split_instances`).

    The one rule for instances, used by the API, the CLI and batches alike: objects
    are connected across Z whenever ``axes`` has a Z axis (whatever the segmentation
    mode), never across T (the label image has no C). Each frame is read, split and
    written on its own, so ``labels`` and ``out`` may be zarr arrays larger than
    memory; object ids are unique across the whole stack. ``out`` defaults to a new
    int32 array.
    """
    if len(axes) != labels.ndim:
        raise InputError(f"axes {axes!r} do not fit labels of shape {tuple(labels.shape)}")
    frame_axes = [i for i, a in enumerate(axes) if a not in "ZYX"]
    spatial = [a for a in axes if a in "ZYX"]
    to_canonical = [spatial.index(a) for a in "ZYX" if a in spatial]
    frame_spacing = None if spacing is None else [tuple(spacing)[-len(spatial) :][i] for i in to_canonical]
    target = out if out is not None else np.zeros(labels.shape, dtype=np.int32)
    frames = list(np.ndindex(*[labels.shape[i] for i in frame_axes]))
    offset = 0
    for n, idx in enumerate(frames):
        check_cancel(cancel)
        index: list[object] = [slice(None)] * labels.ndim
        for i, v in zip(frame_axes, idx, strict=True):
            index[i] = v
        frame = np.transpose(np.asarray(labels[tuple(index)]), to_canonical)
        intensity = None if grey is None else np.transpose(np.asarray(grey[tuple(index)]), to_canonical)
        inst = split_instances(
            frame != background, min_distance=min_distance, smooth=smooth, min_size=min_size,
            spacing=frame_spacing, grey=intensity,
        )  # fmt: skip
        inst[inst > 0] += offset
        offset = max(offset, int(inst.max()))
        target[tuple(index)] = np.transpose(inst, np.argsort(to_canonical))
        report(progress, n + 1, len(frames), "instances")
    return target

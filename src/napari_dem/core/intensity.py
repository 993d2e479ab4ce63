"""Image intensities: grey conversion and the robust (percentile) range used to normalise.

One place for both, so the segmenter, training, image clustering, object crops and
the PNG overlay turn colour into grey and pick a contrast range the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .layout import Layout

#: Percentiles of the normalisation range, as in CSBDeep/StarDist.
LOW_PERCENTILE, HIGH_PERCENTILE = 1.0, 99.8


def to_grey(image: np.ndarray) -> np.ndarray:
    """A YX image as float64; a YXC one (RGB, RGBA, any channels) averaged over its channels.

    An alpha channel (the 4th of RGBA) is transparency, not intensity, and is dropped.
    Callers decide which shapes they accept; this only converts.
    """
    image = np.asarray(image)
    if image.ndim == 3:
        channels = image[..., :3] if image.shape[-1] == 4 else image
        return channels.astype(np.float64).mean(-1)
    return image.astype(np.float64)


def intensity_sample(
    image, layout: Layout, max_samples: int = 2_000_000, at: dict[str, int] | None = None
) -> np.ndarray:
    """A strided subsample of the whole array as float64 ``(C, n)``: cheap and bounded on dask/zarr.

    ``at``: axes held at one index (``{"T": 3}``: the fourth frame only)."""
    at = at or {}
    # Stride the non-channel axes only: striding C too dropped channels (and a later
    # reshape then failed) on any multichannel image above ~2 Mpx.
    sizes = [s for a, s in zip(layout.axes, layout.shape, strict=True) if a != "C" and a not in at]
    step = max(1, math.ceil((math.prod(sizes) * layout.channels / max_samples) ** (1 / len(sizes))))
    index = tuple(
        at[a] if a in at else slice(None) if a == "C" else slice(None, None, step) for a in layout.axes
    )
    sample = np.asarray(image[index], dtype=np.float64)
    if not np.isfinite(sample).all():
        raise InputError("the image contains NaN or infinite values; replace them first")
    kept = [a for a in layout.axes if a not in at]
    if "C" not in kept:
        return sample.reshape(1, -1)
    c_axis = kept.index("C")
    return np.moveaxis(sample, c_axis, 0).reshape(sample.shape[c_axis], -1)


def percentile_range(
    sample: np.ndarray, top_share: float = 0.0, bottom_share: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (1st, 99.8th) percentiles of a ``(C, n)`` sample, widened where they meet.

    Percentiles keep a few hot pixels from squashing the contrast. ``top_share``: the
    brightest share of the sample is left out first (the 99.8th percentile of the rest), so
    that a few bright outliers, a saturated clump of debris, do not squash it either;
    ``bottom_share``: the darkest share likewise (the 1st percentile of the rest: dark debris
    beside dark objects). A channel whose percentiles coincide falls back to its min and max; a
    constant image is an error.
    """
    lo = np.percentile(sample, 100.0 * bottom_share + LOW_PERCENTILE * (1.0 - bottom_share), axis=1)
    hi = np.percentile(sample, HIGH_PERCENTILE * (1.0 - top_share), axis=1)
    flat = hi <= lo
    lo = np.where(flat, sample.min(1), lo)
    hi = np.where(flat, sample.max(1), hi)
    if np.all(hi <= lo):
        raise InputError(f"the image is constant (every pixel is {lo[0]:g}): there is nothing to segment")
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo.astype(np.float32), hi.astype(np.float32)


#: The brightest share of an image searched for a gap that sets outliers apart from the rest.
GAP_SEARCH_SHARE = 0.02
#: Values of the intensity sample the gap is looked for in (its top 2 %: 4000 values).
GAP_SAMPLE = 200_000


def outlier_gap_share(sample: np.ndarray) -> float:
    """The share of a ``(C, n)`` sample (by its channels' mean) that lies above the widest empty
    gap among its brightest :data:`GAP_SEARCH_SHARE`, when that gap is wider than the span of
    everything below it (1st percentile to the gap's foot); 0.0 when there is no such gap, or
    when the share above it is too small to reach the 99.8th percentile (it is left out anyway).

    Why: a scale bar and text burned into a figure, or a saturated overlay, sit far above the
    brightest object with nothing between; over 0.2 % of the field they take the top of the
    range (:func:`percentile_range`) and squash the objects, yet their share is too small and
    too far from the objects' to be told apart by the objects' share alone
    (``DEMSegmenter._fit_without_outliers``).
    """
    grey = np.asarray(sample).mean(0)
    grey = grey[:: max(1, grey.size // GAP_SAMPLE)]  # every 10th of a 2 Mpx sample: 5 ms, not 120
    n = grey.size
    k = int(n * GAP_SEARCH_SHARE)
    if k < 2:
        return 0.0
    top = np.sort(np.partition(grey, n - k)[n - k :])
    steps = np.diff(top)
    foot = int(np.argmax(steps))
    share = (k - 1 - foot) / n
    span = top[foot] - np.percentile(grey, LOW_PERCENTILE)
    if share <= 1.0 - HIGH_PERCENTILE / 100 or steps[foot] <= span:
        return 0.0
    return float(share)


def normalization(image, layout: Layout, max_samples: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) intensities of ``image`` that map to 0 and 1."""
    return percentile_range(intensity_sample(image, layout, max_samples))


def joint_sample(
    images: Sequence[object], layouts: Sequence[Layout], max_samples: int = 2_000_000
) -> np.ndarray:
    """A ``(C, n)`` sample of several images (same channels), a share from each."""
    share = max(1, max_samples // len(images))
    samples = [intensity_sample(im, lay, share) for im, lay in zip(images, layouts, strict=True)]
    return np.concatenate(samples, axis=1)


#: Values :func:`distinct_values` looks at first, spread over the whole sample; each further
#: look takes 16 times as many.
DISTINCT_PROBE = 4096
#: Integer values within this span are counted with one histogram instead of a sort.
INTEGER_RANGE = 1 << 20


def distinct_values(values: np.ndarray, cap: int) -> int:
    """How many distinct values ``values`` holds, counted up to ``cap`` (``cap`` means "at least").

    Why capped: the count only bounds K (at most 255), and sorting a 2-million-point sample to
    count every distinct value took 0.07-0.15 s of a default run. Integer levels within a
    span of :data:`INTEGER_RANGE` (8- and 16-bit data) are counted with one histogram; other
    values by strided probes of growing size, which settle float data within a few thousand
    values, and a sort of the whole sample only when no probe does.
    """
    values = np.ravel(values)
    if not len(values):
        return 0
    low, high = values.min(), values.max()
    if high - low < INTEGER_RANGE:
        levels = (values - low).astype(np.int64)
        if np.array_equal(levels + low, values):
            return min(cap, int(np.count_nonzero(np.bincount(levels))))
    size = DISTINCT_PROBE
    while size < len(values):
        if len(np.unique(values[:: len(values) // size])) >= cap:
            return cap
        size *= 16
    return min(cap, len(np.unique(values)))

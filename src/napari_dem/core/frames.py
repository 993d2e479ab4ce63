"""The frames of a time-lapse brought to one brightness: photobleaching, reporters that turn on.

Why: the segmenter fits one mixture to a whole stack (so that label ids agree from frame to
frame) on intensities normalised by one range. When the signal fades over a movie
(photobleaching) the last frames' objects sink into the background's cluster, and when it
grows (a reporter being expressed) the first frames' do: on five generated frames of nuclei,
the last bleached to 28 % of the first gave F1 0.63 instead of 0.95; a reporter at 15 % in the
first frame gave F1 0.00 there. Each frame's own robust range (the 1st and 99.8th
percentiles, per channel, as the whole image is normalised: :mod:`.intensity`) is mapped onto
the median range of the frames by an affine map per frame and channel, which is what
per-image normalisation (CSBDeep, cellpose) and Fiji's bleach correction do for a movie.

Two guards: a frame whose range does not stand clear of its noise (:data:`SIGNAL_RATIO` noise
standard deviations; a frame of noise alone spans about 5) is left as it is, since stretching
an empty frame would turn its noise into objects; and when no frame's range differs from the
median by :data:`MIN_CHANGE`, nothing is changed (a steady movie is read as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from .intensity import HIGH_PERCENTILE, LOW_PERCENTILE, intensity_sample
from .layout import Layout, full_index

#: The ``frames`` settings (:class:`.segmenter.DEMSegmenter`, the CLI's ``--frames``): bring the
#: frames of a time-lapse to one brightness when they differ, or never.
FRAME_CHOICES = ("auto", "none")
#: A frame is matched only when its range (1st to 99.8th percentile) spans at least this many
#: standard deviations of its noise.
SIGNAL_RATIO = 10.0
#: Frames are matched only when some frame's gain (on a log scale) or offset differs from the
#: median frame's by at least this (share of the median range, for the offset). A slow fade
#: is left alone: the generated time-lapse sample, 27 % bleached over 10 frames and drifting out
#: of view, gives frame F1 0.74-0.86 read as it is and 0.71-0.88 matched (its content changes
#: the frames' percentiles too).
MIN_CHANGE = 0.25
#: Pixels (times channels) sampled from each frame for its range, at most (its 99.8th
#: percentile then stands on 100 of them).
FRAME_SAMPLES = 50_000
#: Side (px) of the central crop of each frame its noise is measured on, at full resolution.
NOISE_CROP = 128
#: At most this many frames, evenly spaced, are measured; the maps of the others are
#: interpolated between them (brightness drifts smoothly; a long lazy movie is not read twice).
PROBED_FRAMES = 64


@dataclass(frozen=True)
class FrameMatch:
    """Per frame and channel, ``value * gain + shift`` brings a frame to the movie's median range."""

    gain: np.ndarray  #: (T, C) float32
    shift: np.ndarray  #: (T, C) float32

    def note(self) -> str:
        """What the fit's decision says about it (:meth:`.decide.Decision.summary`)."""
        return (
            f"time-lapse frames brought to one brightness (gains {self.gain.min():.2f}-{self.gain.max():.2f})"
        )


def noise_sd(block: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Standard deviation of pixel noise from the differences of horizontal neighbours (median
    absolute deviation, so that edges of objects do not count): 0 for noise-free data.
    ``valid`` (``block``'s shape): only pairs of neighbours both valid count."""
    d = np.diff(np.asarray(block, dtype=np.float64), axis=-1)
    d = d.ravel() if valid is None else d[valid[..., 1:] & valid[..., :-1]]
    if not len(d):
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2))


def central_crop(image, layout: Layout, t: int = 0, side: int = NOISE_CROP) -> np.ndarray:
    """``(C, y, x)`` float64: the central ``side`` x ``side`` crop of frame ``t`` (its middle Z
    slice), full resolution."""
    index, kept = [], []
    for a, n in zip(layout.axes, layout.shape, strict=True):
        if a == "T":
            index.append(t)
        elif a == "Z":
            index.append(n // 2)
        elif a in "YX":
            width = min(n, side)
            index.append(slice((n - width) // 2, (n - width) // 2 + width))
            kept.append(a)
        else:
            index.append(slice(None))
            kept.append(a)
    block = np.asarray(image[tuple(index)], dtype=np.float64)
    if "C" not in kept:
        return block[None]
    return np.moveaxis(block, kept.index("C"), 0)


def find_frame_match(image, layout: Layout) -> FrameMatch | None:
    """How to bring the frames of ``image`` (axes with T) to one brightness, or None when they
    need nothing (see the module's docstring): bounded, strided reads of at most
    :data:`PROBED_FRAMES` frames, the maps of the others interpolated."""
    n_frames, channels = layout.size("T"), layout.channels
    if n_frames < 2:
        return None
    probed = np.unique(np.linspace(0, n_frames - 1, min(n_frames, PROBED_FRAMES)).round().astype(int))
    lo, hi, ok = (np.zeros((len(probed), channels)) for _ in range(3))
    for i, t in enumerate(probed):
        sample = intensity_sample(image, layout, FRAME_SAMPLES, at={"T": int(t)})
        lo[i] = np.percentile(sample, LOW_PERCENTILE, axis=1)
        hi[i] = np.percentile(sample, HIGH_PERCENTILE, axis=1)
        noise = np.array([noise_sd(c) for c in central_crop(image, layout, int(t))])
        ok[i] = (hi[i] > lo[i]) & (hi[i] - lo[i] >= SIGNAL_RATIO * noise)
    ok = ok.astype(bool)
    gain, shift = np.ones((n_frames, channels)), np.zeros((n_frames, channels))
    frames = np.arange(n_frames)
    for c in range(channels):
        good = ok[:, c]
        if good.sum() < 2:
            continue
        ref_lo, ref_hi = np.median(lo[good, c]), np.median(hi[good, c])
        g = (ref_hi - ref_lo) / (hi[good, c] - lo[good, c])
        offset = np.abs(lo[good, c] - ref_lo) / (ref_hi - ref_lo)
        if max(np.abs(np.log(g)).max(), offset.max()) < MIN_CHANGE:
            continue
        # between measured frames: the floor linearly, the range geometrically (bleaching decays)
        floor = np.interp(frames, probed[good], lo[good, c])
        span = np.exp(np.interp(frames, probed[good], np.log(hi[good, c] - lo[good, c])))
        gain[:, c] = (ref_hi - ref_lo) / span
        shift[:, c] = ref_lo - floor * gain[:, c]
        gain[probed[~good], c], shift[probed[~good], c] = 1.0, 0.0  # measured, and no signal
    if np.all(gain == 1.0) and np.all(shift == 0.0):
        return None
    return FrameMatch(gain.astype(np.float32), shift.astype(np.float32))


def read_frames(image, layout: Layout, frames: str = "auto"):
    """``image`` as the segmenter and the training read it: for ``frames="auto"`` and a
    time-lapse whose frames differ in brightness, a lazy :class:`FrameView` (same shape and
    axes); else as given. Returns ``(image, match or None)``."""
    match = find_frame_match(image, layout) if frames == "auto" and "T" in layout.axes else None
    if match is None:
        return image, None
    return FrameView(image, layout, match), match


class FrameView:
    """An image (axes with T) with each frame brought to the movie's brightness (float32), of
    the image's shape and axes; each index reads only its block of the image, so a lazy stack
    stays lazy."""

    def __init__(self, image, layout: Layout, match: FrameMatch) -> None:
        self.image, self.layout, self.match = image, layout, match
        self.shape = tuple(layout.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    @property
    def in_memory(self) -> bool:
        """Whether the image under the view is a numpy array (reading it whole is cheap)."""
        return isinstance(self.image, np.ndarray)

    def __getitem__(self, index) -> np.ndarray:
        index = full_index(index, self.ndim)
        block = np.asarray(self.image[index], dtype=np.float32)
        axes = self.layout.axes
        gain, shift = self.match.gain, self.match.shift  # (T, C)
        picks = [index[axes.index("T")], index[axes.index("C")] if "C" in axes else 0]
        gain, shift = gain[picks[0]], shift[picks[0]]
        gain, shift = gain[..., picks[1]], shift[..., picks[1]]
        # the block keeps T and C where their index was not an integer, in the image's order
        kept = [a for a, i in zip(axes, index, strict=True) if not isinstance(i, Integral)]
        order = [a for a in "TC" if a in kept]
        if [a for a in kept if a in order] != order:  # C before T in the image
            gain, shift = gain.T, shift.T
        shape = [block.shape[k] if a in order else 1 for k, a in enumerate(kept)]
        return block * gain.reshape(shape) + shift.reshape(shape)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[()]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

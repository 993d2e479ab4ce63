"""Brightfield RGB stains (H&E, IHC) read by their haematoxylin: what stains the nuclei.

Why: on a stained slide the nuclei are not simply the darkest pixels. Epithelium whose
cytoplasm takes up stain is as dark as the nuclei it holds, so the channel mean reads a
gland as one dark region (generated glandular H&E: classes, F1 0.00) while the nuclei
stand out clearly in the haematoxylin. Colour deconvolution (Ruifrok and Johnston 2001)
turns the image into optical densities, ``OD = -log(I / white)``, which add up stain by
stain (Beer-Lambert); the two stain colours are estimated from the image itself (Macenko
et al. 2009: the plane of the two largest principal directions of the stained pixels'
ODs, and the directions at its extreme angles), so no stain matrix is assumed; the
haematoxylin is the one of the two that absorbs red the most (blue-purple: the nuclear
counterstain of H&E and of haematoxylin-DAB IHC), and its amount per pixel is what the
segmenter reads (negated, so that the nuclei stay dark, as on the slide).

Only images that look like a slide under transmitted light are read so: three channels (or
RGBA with an opaque alpha), most of the field lit (:data:`LIT_MEDIAN`), and two stain colours apart by
:data:`MIN_STAIN_ANGLE`. Fluorescence composites (coloured signal on black) and grey images
stored as RGB keep the channel mean. The light is taken neutral, as bright as the brightest
channel: a crop inside tissue has no glass to measure it on (the panel's H&E case: its
brightest pixels are pink).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .intensity import intensity_sample
from .layout import Layout, image_index, parse_axes

#: The ``stain`` settings (:class:`.segmenter.DEMSegmenter`, the CLI's ``--stain``): look for
#: a brightfield stain, or never.
STAIN_CHOICES = ("auto", "none")
#: Reason added to the fit's decision when it read a stain (:meth:`.decide.Decision.summary`).
READ_NOTE = "read by the haematoxylin of an RGB stain"
#: Percentile of the brightest channel taken as the incident light (the same in every channel).
WHITE_PERCENTILE = 99.9
#: Most of a slide is lit: the median pixel's channel mean at least this fraction of the light.
LIT_MEDIAN = 0.5
#: Pixels whose summed optical density is under this are glass (unstained), not used to
#: estimate the stain colours (Macenko's beta).
MIN_DENSITY = 0.15
#: Share of the stained pixels' angles cut at each end when the extreme stain directions are
#: taken (Macenko's alpha, in percent): a few odd pixels do not set a stain colour.
ANGLE_PERCENTILE = 1.0
#: The two stain colours must lie at least this far apart (degrees); a grey image stored as
#: RGB has one direction only.
MIN_STAIN_ANGLE = 10.0
#: Stained pixels the colours are estimated from, at most.
MAX_POINTS = 200_000
#: Pixels (times channels) of the strided sample of the image the test and the colours use.
SAMPLES = 600_000


@dataclass(frozen=True)
class Stain:
    """How to read one stain's amount from RGB: ``(OD(rgb) @ weights)``, OD with ``white``."""

    white: np.ndarray  #: (3,) the incident light's intensity per channel
    weights: np.ndarray  #: (3,) the row of the unmixing matrix of the stain read
    colours: np.ndarray  #: (2, 3) unit OD vectors of the two stains, the one read first

    def amount(self, rgb: np.ndarray, axis: int = -1) -> np.ndarray:
        """float32 amount of the stain per pixel of ``rgb`` (channels along ``axis``; a fourth,
        an opaque alpha, is left out)."""
        rgb = np.moveaxis(np.asarray(rgb, dtype=np.float32), axis, -1)[..., :3]
        return (optical_density(rgb, self.white) @ self.weights.astype(np.float32)).astype(np.float32)


def optical_density(rgb: np.ndarray, white: np.ndarray) -> np.ndarray:
    """``-log(I / white)`` per channel (channels last), floored at 0 (nothing brighter than
    glass absorbs) and capped where a channel is black (1/256 of the white)."""
    white = np.asarray(white, dtype=np.float32)
    ratio = np.clip(rgb / white, 1.0 / 256, 1.0)
    return -np.log(ratio)


def find_stain(image, layout: Layout) -> Stain | None:
    """:func:`brightfield_stain` of a strided sample of ``image`` (any array; bounded reads).
    RGBA whose alpha is opaque everywhere (a PNG export of a slide) is read as its RGB."""
    if layout.channels not in (3, 4):
        return None
    sample = intensity_sample(image, layout, SAMPLES)
    if layout.channels == 4:
        if np.ptp(sample[3]) > 0:  # a fourth channel that varies is not an opaque alpha
            return None
        sample = sample[:3]
    return brightfield_stain(sample)


def read_stained(image, layout: Layout, stain: str = "auto"):
    """``(image, layout)`` as the segmenter and the training read them: for ``stain="auto"`` and
    a stained slide, its haematoxylin as a lazy :class:`StainView` with the layout of the labels
    (no C); else as given."""
    found = find_stain(image, layout) if stain == "auto" else None
    if found is None:
        return image, layout
    view = StainView(image, layout, found)
    return view, parse_axes(layout.label_axes, view.shape, False)


def brightfield_stain(sample: np.ndarray) -> Stain | None:
    """The haematoxylin reading of an image whose ``(3, n)`` RGB intensity ``sample`` (from
    :func:`.intensity.intensity_sample`) looks like a stained slide under transmitted light,
    else None (see the module's docstring for the tests)."""
    if sample.shape[0] != 3 or sample.shape[1] < 16:
        return None
    x = np.asarray(sample, dtype=np.float64).T  # (n, 3)
    if x.min() < 0:
        return None
    white = np.full(3, np.percentile(x, WHITE_PERCENTILE, axis=0).max())
    if white[0] <= 0 or np.median(x.mean(1)) < LIT_MEDIAN * white[0]:
        return None
    od = optical_density(x.astype(np.float32), white.astype(np.float32)).astype(np.float64)
    stained = od[od.sum(1) > MIN_DENSITY]
    if len(stained) < 16:
        return None
    if len(stained) > MAX_POINTS:
        stained = stained[:: math.ceil(len(stained) / MAX_POINTS)]
    colours = stain_colours(stained)
    if colours is None:
        return None
    unmix = np.linalg.pinv(colours.T)  # (2, 3): amounts = OD @ unmix.T
    return Stain(white.astype(np.float32), unmix[0].astype(np.float32), colours.astype(np.float32))


def stain_colours(od: np.ndarray) -> np.ndarray | None:
    """(2, 3) unit OD vectors of the two stains of the ``(n, 3)`` optical densities ``od``
    (Macenko), the haematoxylin-like one (the larger share of red absorbed) first; None when
    they are less than :data:`MIN_STAIN_ANGLE` apart."""
    _, _, vt = np.linalg.svd(od, full_matrices=False)
    plane = vt[:2].T  # (3, 2)
    plane *= np.where(plane.sum(0) < 0, -1.0, 1.0)  # both directions into positive densities
    proj = od @ plane
    angles = np.arctan2(proj[:, 1], proj[:, 0])
    low, high = np.percentile(angles, [ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE])
    if math.degrees(high - low) < MIN_STAIN_ANGLE:
        return None
    colours = np.stack([plane @ [math.cos(a), math.sin(a)] for a in (low, high)])
    # an extreme direction may dip a hair below zero in one channel: densities are not negative
    colours = np.abs(colours) / np.linalg.norm(colours, axis=1, keepdims=True)
    red_share = colours[:, 0] / colours.sum(1)
    return colours[np.argsort(-red_share)]


class StainView:
    """An image's stain as a grey image: minus its amount (float32), so that what holds the
    stain is dark, as on the slide, and ``darkest``, ``brightest`` and the clusters' order by
    intensity mean what the user sees (dark nuclei are the ``darkest``). Indexed like the
    labels (the image's axes without C); each index reads only its block of the RGB image, so
    a lazy stack stays lazy."""

    def __init__(self, image, layout: Layout, stain: Stain) -> None:
        self.image, self.layout, self.stain = image, layout, stain
        self.shape = tuple(layout.label_shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, index) -> np.ndarray:
        read, kept = image_index(self.layout, index)
        return -self.stain.amount(np.asarray(self.image[read]), axis=kept.index("C"))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[()]
        return out if dtype is None else out.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]

"""Very noisy images smoothed before the fit: photon-starved fluorescence, high read noise.

Why: the shipped models were trained on images whose objects stand clear of the pixel noise.
Where they do not (a few photons per pixel: objects 3-8 counts above a background of 0.5,
or high read noise), the latents follow the noise: the default found speckles or "no
objects" (mean F1 0.00-0.81 per kind of noise) where Otsu's threshold with the polarity given
had 0.50-0.89; smoothed first, 0.62-0.95 (``benchmarks/bench_noise.py``). The signal-to-
noise ratio is read without any segmentation: the spread of the image smoothed at 1 px (its
0.1st to 99.9th percentile) over the pixel noise's standard deviation (:func:`.frames.noise_sd`,
from neighbouring pixels, which edges barely move). Below :data:`SNR_BELOW`, and when the image
holds structure beyond its noise at all (:data:`STRUCTURE_ABOVE`: noise alone, which is far
below the bar, is left as it is), the image (each channel, along Z, Y and X) is smoothed, by
a Gaussian of a fifth of the objects' typical radius (:data:`SIGMA_PER_RADIUS`, within
:data:`SIGMA_RANGE`): a wide blur erases spots 4-6 px
across (F1 0.62 -> 0.25 at sigma 2) as it clears objects 20 px across. The radius is read on
the image smoothed at 2 px and split by Otsu (the smaller of the two sides', objects being
the minority or the smaller pieces), which noise cannot fragment much at that scale.

The segmenter fits the image as it is first and smooths it only when that fit found no
objects, or objects less compact than clean discs, and keeps the smoothed fit only when its
objects are more compact (:meth:`.segmenter.DEMSegmenter._fit_smoothed`): smoothing blurs the
boundaries of tissue classes, and of a few sharp objects in a wide noisy field (four nuclei in
a 384 px field are under the bar, and were read well as they are).

Only arrays in memory are smoothed (a lazy stack is read as it is), and images that stand
clear of their noise are untouched: no image of the panel, its development seeds or the
families is smoothed (``spots``, whose small spots a blur would erase, read 7.7).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .frames import central_crop, noise_sd
from .layout import Layout

#: Images whose signal spread (image smoothed at 1 px, between the percentiles
#: :data:`SPREAD_PERCENTILE` and 100 minus it) is under this many standard deviations of the
#: pixel noise may be smoothed. Noise alone spreads 1.74 (6.2 times the 0.28 of its smoothed
#: standard deviation); the panel and the families 7.7 and more; photon-starved images (3-8
#: photons at the objects) 2.5-6.7. A bar of 6 left bright objects at 8 photons (6.3-6.7) as
#: they were, 2 of 3 below Otsu; at 7 they are smoothed, and the fields that a smoothed fit
#: would harm are kept out by the segmenter (only no objects, or ragged ones, are refitted).
SNR_BELOW = 7.0
#: The spread is read from the 0.1st to the 99.9th percentile, so that a sparse field (four
#: nuclei in a 384 px field, 1 % of it) shows its objects: between the 1st and the 99th
#: percentile it read as noise alone, was smoothed, and lost an object to its background.
SPREAD_PERCENTILE = 0.1
#: The smoothing sigma is this share of the objects' estimated radius ...
SIGMA_PER_RADIUS = 0.2
#: ... within these bounds (px).
SIGMA_RANGE = (0.5, 2.0)
#: Side (px) of the central crop of the middle plane that the ratio and the radius are read on.
CROP = 512
#: ... and an image is smoothed only when it holds structure beyond its noise: the spread of its
#: band-pass (Gaussians of :data:`BAND` px subtracted, which takes out ramps and uneven light)
#: exceeds this many times what white noise of its level gives. Noise alone (normal, Poisson,
#: on a lit ramp; 192-512 px) reads 0.97-1.05, the noisiest objects of ``bench_noise.py``
#: 1.53 and more. Smoothed, noise alone was read as two classes of its ramp.
STRUCTURE_ABOVE = 1.3
BAND = (2.0, 6.0)
#: p99 - p1 of white noise of unit standard deviation after the band-pass of :data:`BAND`
#: (sd 0.119: the variances of the two Gaussians' outputs minus twice their covariance).
NOISE_BAND_SPREAD = 0.553


def smoothing_sigma(image, layout: Layout) -> float:
    """The Gaussian sigma (px) ``image`` (a numpy array) is smoothed by before the fit, 0.0 when
    it stands clear of its noise or is not in memory."""
    if not isinstance(image, np.ndarray) or image.dtype.kind not in "uif" or image.size == 0:
        return 0.0
    plane = central_crop(image, layout, side=CROP).mean(0)  # channels averaged
    if min(plane.shape) < 4 * BAND[1] + 16:
        return 0.0
    noise = noise_sd(plane)
    if noise == 0:
        return 0.0
    smooth = ndi.gaussian_filter(plane, 1.0)
    spread = float(np.percentile(smooth, 100 - SPREAD_PERCENTILE) - np.percentile(smooth, SPREAD_PERCENTILE))
    if spread >= SNR_BELOW * noise or not _has_structure(plane, noise):
        return 0.0
    low, high = SIGMA_RANGE
    return float(np.clip(SIGMA_PER_RADIUS * _radius(plane), low, high))


def _has_structure(plane: np.ndarray, noise: float) -> bool:
    """Whether ``plane``'s band-pass spreads :data:`STRUCTURE_ABOVE` times wider than white noise
    of standard deviation ``noise`` would (its border, where the filters reflect, left out)."""
    band = ndi.gaussian_filter(plane, BAND[0]) - ndi.gaussian_filter(plane, BAND[1])
    margin = int(2 * BAND[1])
    band = band[margin:-margin, margin:-margin]
    spread = float(np.percentile(band, 99) - np.percentile(band, 1))
    return spread > STRUCTURE_ABOVE * NOISE_BAND_SPREAD * noise


def _radius(plane: np.ndarray) -> float:
    """The objects' typical radius (px): :func:`.refine.object_radius` of the smaller side of
    Otsu's split of ``plane`` smoothed at 2 px."""
    from skimage.filters import threshold_otsu

    from .refine import object_radius

    smooth = ndi.gaussian_filter(plane, 2.0)
    if np.ptp(smooth) == 0:
        return 0.0
    above = smooth > threshold_otsu(smooth)
    return min(object_radius(above), object_radius(~above))


def read_denoised(image, layout: Layout) -> tuple[object, float]:
    """``(image, sigma)``: ``image`` smoothed along Z, Y and X (each channel, each frame on its
    own) by a Gaussian of :func:`smoothing_sigma` (float32) when that is not 0, else ``(image,
    0.0)``. Along Z too: in photon-starved 32x128x128 stacks of nuclei, smoothing the planes
    alone left the noise between slices (F1 below Otsu's on 3 of 8, at most 0.10); with Z,
    above it on 7 of 8 (the eighth was not smoothed)."""
    sigma = smoothing_sigma(image, layout)
    if sigma == 0:
        return image, 0.0
    per_axis = [sigma if a in "ZYX" else 0.0 for a in layout.axes]
    return ndi.gaussian_filter(np.asarray(image, dtype=np.float32), per_axis), sigma


def denoise_note(sigma: float) -> str:
    """What the fit's decision says about it (:meth:`.decide.Decision.summary`)."""
    return f"a very noisy image, smoothed at {sigma:.1f} px before the fit"

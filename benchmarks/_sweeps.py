"""Classic baselines with an oracle parameter sweep: the strongest a tuned user could get.

Why an oracle: the panel asks whether DEM's *default* beats the classic methods at
*their best*, so each baseline tries a small grid (classes, smoothing, polarity, which
classes are foreground) and keeps the setting that scores best against the ground
truth. DEM gets no such help. Object baselines go through the same instance step as
DEM (``_common.watershed``), so differences in F1 come from the foreground.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
from scipy import ndimage as ndi
from skimage import segmentation
from skimage.color import rgb2hed
from skimage.feature import peak_local_max
from skimage.filters import threshold_multiotsu, threshold_otsu

from _common import watershed
from napari_dem.core.metrics import matched_class_dice

OBJECT_NAMES = {"multi-otsu": "multi-Otsu + ws", "gmm": "GMM + ws", "kmeans": "k-means + ws"}
#: Points a baseline mixture is fitted on (it then labels every pixel): keeps 3D cheap.
FIT_POINTS = 60_000


def grey_inputs(image: np.ndarray, axes: str) -> Iterator[tuple[str, np.ndarray]]:
    """The single-channel images a user could threshold: grey, and for RGB the hematoxylin channel."""
    if "C" not in axes:
        yield "", image.astype(np.float32)
        return
    rgb = np.moveaxis(image, axes.index("C"), -1).astype(np.float32)
    yield "grey", rgb.mean(-1)
    if rgb.shape[-1] == 3:
        yield "hematoxylin", rgb2hed(rgb / max(float(rgb.max()), 1e-9))[..., 0]


def _oriented(grey: np.ndarray, polarity: str) -> np.ndarray:
    return grey if polarity == "bright" else -grey


def _class_maps(grey: np.ndarray, method: str, k: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Labels 0..k-1 ordered by mean intensity from multi-Otsu, a diagonal GMM or k-means."""
    x = ndi.gaussian_filter(grey, sigma) if sigma > 0 else grey
    if method == "multi-otsu":
        return np.digitize(x, threshold_multiotsu(x, classes=k))
    feats = np.stack([f.ravel() for f in [x] + [ndi.gaussian_filter(grey, s) for s in (1, 2, 4)]], 1)
    if method == "kmeans":
        feats = feats[:, :1]
    fit = feats[rng.choice(len(feats), min(FIT_POINTS, len(feats)), replace=False)]
    if method == "gmm":
        from sklearn.mixture import GaussianMixture

        model = GaussianMixture(k, covariance_type="diag", random_state=0).fit(fit)
        centre = model.means_[:, 0]
    else:
        from sklearn.cluster import KMeans

        model = KMeans(k, n_init=3, random_state=0).fit(fit)
        centre = model.cluster_centers_[:, 0]
    rank = np.argsort(np.argsort(centre))
    return rank[model.predict(feats)].reshape(grey.shape)


def voronoi_otsu(grey: np.ndarray, spot_sigma: float, outline_sigma: float) -> np.ndarray:
    """The napari-segment-blobs-and-things-with-membranes recipe: blurred maxima as seeds,
    Otsu on a second blur as the mask, seeded watershed inside the mask."""
    spots = ndi.gaussian_filter(grey, spot_sigma)
    outline = ndi.gaussian_filter(grey, outline_sigma)
    mask = outline > threshold_otsu(outline)
    peaks = peak_local_max(spots, min_distance=1, labels=mask.astype(int), exclude_border=False)
    markers = np.zeros(grey.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return segmentation.watershed(-spots, markers, mask=mask)


def best_objects(
    image: np.ndarray, truth: np.ndarray, axes: str, spacing: Sequence[float] | None = None
) -> dict[str, tuple[float, float, str]]:
    """{baseline: (F1@0.5, fg IoU, best setting)} over each baseline's oracle sweep; ``spacing``:
    the voxel size DEM is given, which the instance step of every baseline gets too."""
    from _common import scores

    rng = np.random.default_rng(0)
    best: dict[str, tuple[float, float, str]] = {}

    def consider(name: str, setting: str, inst: np.ndarray) -> None:
        iou, f1 = scores(inst, truth)
        if name not in best or f1 > best[name][0]:
            best[name] = (f1, iou, setting)

    for (src, grey), pol in itertools.product(grey_inputs(image, axes), ("bright", "dark")):
        g = _oriented(grey, pol)
        tag = f"{src + ', ' if src else ''}{pol}"
        for spot, outline in itertools.product((1, 2, 3, 4, 6), (1, 2)):
            consider(
                "Voronoi-Otsu",
                f"{tag}, spot {spot}, outline {outline}",
                voronoi_otsu(g, spot, outline),
            )
        for method, ks, sigmas in (
            ("multi-otsu", (2, 3, 4), (0, 1, 2)),
            ("gmm", (2, 3, 4), (0,)),
            ("kmeans", (2, 3), (0,)),
        ):
            for k, sigma in itertools.product(ks, sigmas):
                lab = _class_maps(g, method, k, sigma, rng)
                for j in range(1, k):  # classes j..k-1 (the brightest after orientation) are objects
                    name = OBJECT_NAMES[method]
                    consider(
                        name,
                        f"{tag}, K={k}, sigma {sigma}, top {k - j}",
                        watershed(lab >= j, grey, spacing),
                    )
    return best


def best_classes(image: np.ndarray, truth: np.ndarray, axes: str, k: int) -> dict[str, tuple[float, str]]:
    """{baseline: (mean matched Dice, best setting)} with the true K given (an oracle too)."""
    rng = np.random.default_rng(0)
    best: dict[str, tuple[float, str]] = {}
    for src, grey in grey_inputs(image, axes):
        for method, sigmas in (("multi-otsu", (0, 1, 2)), ("gmm", (0, 1)), ("kmeans", (0, 1, 2))):
            for sigma in sigmas:
                dice = matched_class_dice(_class_maps(grey, method, k, sigma, rng), truth)
                name = {"multi-otsu": "multi-Otsu", "gmm": "GMM", "kmeans": "k-means"}[method]
                if name not in best or dice > best[name][0]:
                    best[name] = (dice, f"{src + ', ' if src else ''}K={k}, sigma {sigma}")
    return best

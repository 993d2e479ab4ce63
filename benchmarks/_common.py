"""Small helpers shared by the benchmark scripts: scoring, timing, Markdown tables, baselines.

The classic baselines live here so that every benchmark runs exactly the same
ones, with the same instance step as DEM (:func:`napari_dem.core.refine.split_instances`,
the distance-transform watershed ``segment_image(..., instances=True)`` uses), so a
difference in F1 comes from the foreground, not from the post-processing.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import gaussian, threshold_multiotsu, threshold_otsu

from napari_dem.core.metrics import foreground_iou, instance_f1
from napari_dem.core.refine import split_instances

T = TypeVar("T")


def _watershed_params() -> dict[str, object]:
    """The instance parameters ``segment_image`` uses by default, read from its signature."""
    from napari_dem.api import segment_image

    params = inspect.signature(segment_image).parameters
    return {k: params[k].default for k in ("min_distance", "smooth", "min_size") if k in params}


#: Passed to every baseline's ``split_instances`` so that it matches DEM's instance step.
WATERSHED = _watershed_params()


def fmt_params() -> str:
    return ", ".join(f"{k}={v}" for k, v in WATERSHED.items())


def watershed(
    fg: np.ndarray, grey: np.ndarray | None = None, spacing: Sequence[float] | None = None
) -> np.ndarray:
    """DEM's instance step (``split_instances`` with ``segment_image``'s defaults) on a foreground;
    with the image's intensity ``grey``, as DEM's default run has it: pieces under the size
    floor that stand out of their surround are kept; ``spacing``: the voxel size DEM was given
    (None: as DEM without one, read off the objects' shape)."""
    return split_instances(fg, grey=grey, spacing=spacing, **WATERSHED)


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """(result, wall seconds) of ``fn()``."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def scores(instances: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(foreground IoU, instance F1 at IoU 0.5) of predicted instances against true ones."""
    return foreground_iou(instances > 0, truth > 0), instance_f1(instances, truth, 0.5)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; floats are written with 3 decimals."""

    def fmt(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def multi_otsu_fg(img: np.ndarray) -> np.ndarray:
    """Multi-Otsu with 3 classes; the upper two classes are foreground.

    Computed on a float copy so that scikit-image uses a 256-bin histogram: on a
    uint16 image it histograms every integer value (50k bins on the synthetic
    images), and its O(bins^2) search then takes minutes.
    """
    x = img.astype(np.float32)
    return x > threshold_multiotsu(x, classes=3)[0]


def otsu_smoothed_fg(img: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Otsu's threshold on the Gaussian-smoothed image."""
    sm = gaussian(img.astype(np.float32), sigma, preserve_range=True)
    return sm > threshold_otsu(sm)


def components(fg: np.ndarray) -> np.ndarray:
    """Connected components (face connectivity) as instances.

    Holes are filled and small objects dropped first by ``split_instances``'s own step
    (``kept_foreground``), so that the only difference is the splitting.
    """
    from napari_dem.core.refine import kept_foreground

    return ndi.label(kept_foreground(fg, WATERSHED.get("min_size") or None))[0]


def smoothed_features(img: np.ndarray, sigmas: Sequence[float] = (1.0, 2.0, 4.0)) -> np.ndarray:
    """(pixels, 1 + len(sigmas)) features: intensity and Gaussian-smoothed copies."""
    x = img.astype(np.float32)
    feats = [x] + [ndi.gaussian_filter(x, s) for s in sigmas]
    return np.stack([f.ravel() for f in feats], axis=1)


def gmm_labels(img: np.ndarray, k: int = 3) -> np.ndarray:
    """GaussianMixture(k, diagonal) on intensity + smoothed copies; labels 0..k-1 by mean intensity."""
    from sklearn.mixture import GaussianMixture

    feats = smoothed_features(img)
    gmm = GaussianMixture(k, covariance_type="diag", random_state=0).fit(feats)
    rank = np.argsort(np.argsort(gmm.means_[:, 0]))
    return rank[gmm.predict(feats)].reshape(img.shape)


def kmeans_fg(img: np.ndarray) -> np.ndarray:
    """k-means with 2 clusters on intensity alone; the brighter cluster is foreground."""
    from sklearn.cluster import KMeans

    x = img.astype(np.float32).reshape(-1, 1)
    km = KMeans(2, n_init=3, random_state=0).fit(x)
    bright = int(np.argmax(km.cluster_centers_[:, 0]))
    return (km.labels_ == bright).reshape(img.shape)


def multi_otsu_watershed(img: np.ndarray) -> np.ndarray:
    """The main classic baseline: multi-Otsu foreground, then DEM's own instance step."""
    return watershed(multi_otsu_fg(img))


def model_fingerprint(ndim: int) -> str:
    """Which shipped model a table was measured with: file, short sha256, training summary.

    The default weights are retrained from time to time; a table is only meaningful
    next to the model it came from.
    """
    import hashlib

    from napari_dem.core.model import default_model_path, load_model

    path = default_model_path(ndim)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    meta = load_model(path, "cpu").metadata
    n_img = len(meta.get("training_images", []))
    return f"{path.name} sha256 {digest}… ({meta.get('training_steps', '?')} steps on {n_img} images)"


def training_seeds(ndim: int) -> set[int]:
    """Seeds of the synthetic images the shipped model was trained on (from its metadata)."""
    import re

    from napari_dem.core.model import default_model_path, load_model

    meta = load_model(default_model_path(ndim), "cpu").metadata
    return {int(m) for s in meta.get("training_images", []) for m in re.findall(r"seed=(\d+)", s)}

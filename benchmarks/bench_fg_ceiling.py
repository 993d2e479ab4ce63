"""How high can foreground IoU go on the stardist 3D nuclei from their intensity alone?

Why: the issue asks fg IoU >= 0.72 on this volume at default settings; DEM gives 0.673. Each
method below picks its threshold **with the ground truth** (an oracle DEM does not get), so
its row is a ceiling for that family of rules, not a method a user could run:

- one global threshold on the image smoothed by a Gaussian of each sigma (voxels, Z Y X);
- a threshold relative to each voxel's neighbourhood: background level + a fraction of the
  local maximum's height above it (the half-maximum rule of a blurred edge, per object).

And beyond any threshold: a **supervised** pixel classifier (logistic regression and gradient
boosting on the intensity and its Gaussian, Laplacian-of-Gaussian and gradient-magnitude
filters at sigma 0.5-4, as ilastik's pixel classifier uses): each half of the volume (split
along Z) is predicted by a classifier trained on the true labels of the other half, which shows
what the labels themselves would buy a per-voxel method.

Also shown: what DEM's own foreground loses to noise (its false voxels are bright, its
missed ones dim) and whether shifting or growing it by a voxel helps (it does not: the
labels and the image line up).

    OMP_NUM_THREADS=2 python benchmarks/bench_fg_ceiling.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import table
from _data import nuclei3d
from napari_dem.api import segment_image
from napari_dem.core.metrics import foreground_iou

#: Percentiles of the smoothed image tried as thresholds (the oracle's sweep).
PERCENTILES = np.arange(30, 95, 0.5)


def best_global(image: np.ndarray, truth: np.ndarray, sigma) -> tuple[float, float]:
    """(best fg IoU, its threshold) of ``smoothed > t`` over :data:`PERCENTILES`."""
    smooth = ndi.gaussian_filter(image, sigma) if np.any(sigma) else image
    return max((foreground_iou(smooth > t, truth), t) for t in np.percentile(smooth, PERCENTILES))


def best_local(image: np.ndarray, truth: np.ndarray, size: tuple[int, ...]) -> tuple[float, float]:
    """(best fg IoU, its fraction) of ``smooth > bg + a (local max - bg)``, bg the 30th percentile."""
    smooth = ndi.gaussian_filter(image, (0.5, 1, 1))
    background = np.percentile(smooth, 30)
    peak = ndi.maximum_filter(smooth, size=size)
    return max(
        (foreground_iou(smooth > background + a * (peak - background), truth), a)
        for a in np.arange(0.1, 0.9, 0.025)
    )


#: Sigmas (voxels) of the supervised classifier's filters.
FILTER_SIGMAS = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)


def filter_bank(image: np.ndarray) -> np.ndarray:
    """``(voxels, features)``: the standardised intensity and, at each of :data:`FILTER_SIGMAS`,
    its Gaussian, Laplacian of Gaussian and gradient magnitude."""
    x = (image - image.mean()) / image.std()
    feats = [x]
    for s in FILTER_SIGMAS:
        feats += [
            ndi.gaussian_filter(x, s),
            ndi.gaussian_laplace(x, s),
            ndi.gaussian_gradient_magnitude(x, s),
        ]
    return np.stack([f.ravel() for f in feats], axis=1)


def supervised_rows(image: np.ndarray, truth: np.ndarray) -> list[list[object]]:
    """Pixel classifiers cross-fitted on the two halves of the volume along Z: each half is
    predicted by a classifier trained on the other half's truth; fg IoU over the whole volume.
    (The filters reach a few slices across the cut, which can only help the classifier.)"""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    halves = np.indices(image.shape)[0].ravel() < image.shape[0] // 2
    x, y = filter_bank(image), truth.ravel()
    rows: list[list[object]] = []
    for name, make in (
        ("logistic regression", lambda: LogisticRegression(max_iter=2000)),
        ("gradient boosting", lambda: HistGradientBoostingClassifier(max_iter=200, random_state=0)),
    ):
        pred = np.zeros_like(y)
        for test in (halves, ~halves):
            pred[test] = make().fit(x[~test], y[~test]).predict(x[test])
        rows.append(
            [
                f"{name} on {x.shape[1]} filters (supervised)",
                foreground_iou(pred, y),
                "the other half's labels",
            ]
        )
    return rows


def main() -> None:
    image, labels = nuclei3d()
    image, truth = image.astype(np.float64), labels > 0
    fg = segment_image(image, "ZYX", device="cpu").labels > 0
    rows = [["DEM, default settings (no oracle)", foreground_iou(fg, truth), ""]]
    for sigma in (0, 0.5, 1.0, 1.5, 2.0, (0.5, 1, 1), (1, 1.5, 1.5)):
        iou, t = best_global(image, truth, sigma)
        rows.append([f"global threshold, Gaussian sigma {sigma} (oracle)", iou, f"threshold {t:.1f}"])
    for size in ((3, 7, 7), (5, 11, 11), (7, 15, 15)):
        iou, a = best_local(image, truth, size)
        rows.append([f"local half-maximum rule, window {size} (oracle)", iou, f"fraction {a:.3f}"])
    rows += supervised_rows(image, truth)
    print(f"stardist 3D nuclei {image.shape}, {len(np.unique(labels)) - 1} nuclei\n")
    print(table(["method", "fg IoU", "chosen with the truth"], rows))
    grown, shrunk = ndi.binary_dilation(fg), ndi.binary_erosion(fg)
    shifts = [foreground_iou(np.roll(fg, s, axis=a), truth) for a in range(3) for s in (-1, 1)]
    print(
        f"\nDEM: {int((fg & ~truth).sum())} false and {int((~fg & truth).sum())} missed voxels; mean "
        f"intensity {image[fg & ~truth].mean():.0f} on the false ones, {image[~fg & truth].mean():.0f} "
        f"on the missed ones (objects {image[truth].mean():.0f}, background {image[~truth].mean():.0f}). "
        f"Grown by a voxel {foreground_iou(grown, truth):.3f}, shrunk {foreground_iou(shrunk, truth):.3f}, "
        f"shifted by one voxel along an axis at best {max(shifts):.3f}."
    )


if __name__ == "__main__":
    main()

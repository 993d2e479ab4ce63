"""Bring large objects to the scale the shipped models know, then bring the labels back.

Why: the model's front end sees local contrast within a fixed context (about 16 px in
2D, 4 px in 3D), so objects much larger than that are found as rims (large discs, the
panel's ``large`` case: F1 0.46; big 3D nuclei: F1 0.08). cellpose meets the same limit
by estimating a diameter and rescaling the image to its training size; we do the same
with the object radius the fit estimates (:attr:`.decide.Decision.object_radius`),
for arrays held in memory. The image plane (Y and X) is shrunk by the radius in the plane;
in 3D mode Z is shrunk by the objects' own radius along Z
(:attr:`~.decide.Decision.object_radius_z`, in slices), so that a stack whose nuclei are
30-40 voxels deep is not handed to the 3D model as objects three times deeper than wide
(isotropic 60x256x256 stand-ins of a confocal stack, F1: 0.81 and 0.66 with the plane
shrunk alone, 1.00 and 0.95 with Z too; docs/benchmarks.md).
An anisotropic stack whose Z step already makes its objects thin along Z keeps its slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Radius (px) of the objects the shipped models were trained on, per mode.
MODEL_RADIUS = {"2d": 10.0, "3d": 6.0}
#: Objects whose estimated radius exceeds this many times :data:`MODEL_RADIUS` are rescaled. The
#: radius is measured on the full-size reading, where the model sees only part of a large
#: object, so it comes out low: at twice the model's radius (the bar before) discs of radius
#: 15-40 px in 2D and balls of radius 7-12 voxels in 3D were segmented at full size, below
#: Otsu's threshold (F1 0.49-0.84 and 0.35-0.79; ``benchmarks/bench_sizes.py``); DSB2018's
#: nuclei (11.8 px) stay just below this bar (shrunk all the same, they score F1 0.930 against
#: 0.917: the bar is not a cliff).
RESCALE_ABOVE = {"2d": 1.2, "3d": 1.2}
#: Radius (px) objects above that bar are shrunk to. In 2D a little under the model's own: since
#: the radius is measured on objects with their holes filled (:func:`.decide.solid`) it comes
#: out near the truth (a disc field of radius 35-55 px measured 21-25 px before, 40-48 now), and
#: at 9 px shrunk fields of 20-55 px objects and of nuclei with nucleoli scored best (F1 0.970
#: and 0.935 on two sets of 50 generated fields, 0.952 and 0.919 at 10 px, 0.929 and 0.874
#: before; docs/benchmarks.md, "Objects measured whole").
TARGET_RADIUS = {"2d": 9.0, "3d": MODEL_RADIUS["3d"]}


def zoom_for(object_radius: float, mode: str) -> float:
    """The factor (< 1) to shrink the image plane by, or 1.0 when the objects are not large."""
    if object_radius <= RESCALE_ABOVE[mode] * MODEL_RADIUS[mode]:
        return 1.0
    return TARGET_RADIUS[mode] / object_radius


def shrink(image: np.ndarray, axes: str, factor: float, z_factor: float = 1.0) -> np.ndarray:
    """``image`` with its Y and X axes scaled by ``factor`` and its Z axis by ``z_factor``
    (linear interpolation, smoothed first so that shrinking does not alias noise into the
    result). Samples that rounding puts a hair past the last pixel take its value: SciPy's
    default there is 0, which gave one shrink in twelve (e.g. 256 px at 0.61) a black last row
    or column, segmented as a dark object along the border."""
    per_axis = {"Y": factor, "X": factor, "Z": z_factor}
    zoom = [per_axis.get(a, 1.0) for a in axes]
    sigma = [0.5 / z if z < 1.0 else 0.0 for z in zoom]
    smooth = ndi.gaussian_filter(image.astype(np.float32), sigma)
    return ndi.zoom(smooth, zoom, order=1, mode="nearest")


def grow_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``labels`` resized to ``shape`` by nearest neighbour (ids are kept, none invented)."""
    zoom = [s / t for s, t in zip(shape, labels.shape, strict=True)]
    return _exactly(ndi.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest"), shape)


def grow_proba(proba: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Responsibilities ``(*spatial, K)`` resized to ``shape`` (linear in space), still summing to 1."""
    zoom = [s / t for s, t in zip(shape[:-1], proba.shape[:-1], strict=True)] + [1.0]
    out = _exactly(ndi.zoom(proba, zoom, order=1, grid_mode=True, mode="nearest"), shape)
    return (out / np.clip(out.sum(-1, keepdims=True), 1e-12, None)).astype(np.float32)


def _exactly(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``array`` cropped or edge-padded to ``shape`` (zoom rounds sizes to whole pixels)."""
    if array.shape == tuple(shape):
        return array
    pad = [(0, max(0, s - o)) for s, o in zip(shape, array.shape, strict=True)]
    return np.pad(array, pad, mode="edge")[tuple(slice(0, s) for s in shape)]

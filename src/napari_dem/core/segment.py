"""Segment an array of any layout with a DEM model in one call: :func:`segment`.

The work is done by :class:`~.segmenter.DEMSegmenter` (fit the normalisation and one
mixture, then predict tile by tile); this module keeps the shared limits and
defaults, the checks of an input image and of the mode, and ``segment()``, which
is ``DEMSegmenter(...).fit_predict(image)`` with the fitted state in the result.

Labels: for objects 0 = background, 1 = objects; for classes ``1..K`` numbered by
increasing mean intensity (see :mod:`.decide` for how the task is chosen).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .em import GMMParams
from .errors import InputError, InputTypeError
from .layout import Layout
from .model import DEMModel, load_default_model
from .progress import CancelToken, ProgressFn

if TYPE_CHECKING:
    from .decide import Decision
    from .segmenter import DEMSegmenter

#: Points used to fit the global mixture; the grid stride grows so that no more are taken.
DEFAULT_MAX_SAMPLES = 200_000
#: Latents are cached between the two passes while they take less memory than this.
CACHE_BYTES = 512 * 2**20
MAX_CLUSTERS = 255
#: Tile side when none is given: a 3D tile of 512^3 would hold gigabytes of activations.
DEFAULT_TILE = {"2d": 512, "3d": 128}


@dataclass
class SegmentationResult:
    labels: np.ndarray  #: input's shape minus the channel axis; objects 0/1, classes 1..K
    axes: str  #: axes of ``labels``
    n_clusters: int
    params: GMMParams  #: mixture over standardised latents, components in label order
    cluster_intensity: np.ndarray  #: mean normalised input intensity of labels 1..K
    mode: str  #: "2d" (per slice) or "3d"
    segmenter: DEMSegmenter  #: the fitted segmenter: predict more images with the same classes
    decision: Decision  #: K, task and objects as decided by the fit (or given)

    @property
    def task(self) -> str:
        return self.decision.task

    @property
    def instance_background(self) -> int:
        """The label that is not split into instances: 0 for objects, the darkest class for classes."""
        return 0 if self.task == "objects" else 1

    @classmethod
    def of(cls, segmenter: DEMSegmenter, labels: np.ndarray, axes: str) -> SegmentationResult:
        return cls(
            labels=labels,
            axes=axes,
            n_clusters=segmenter.n_clusters_,
            params=segmenter.params_.detach().to("cpu"),
            cluster_intensity=segmenter.cluster_intensity_,
            mode=segmenter.mode_,
            segmenter=segmenter,
            decision=segmenter.decision_,
        )


def validate_image(image: object) -> None:
    """Reject what cannot be segmented, with a message a user can act on."""
    dtype = getattr(image, "dtype", None)
    shape = getattr(image, "shape", None)
    if dtype is None or shape is None:
        raise InputTypeError(f"expected an array (numpy, dask or zarr), got {type(image).__name__}")
    kind = np.dtype(dtype).kind
    if kind not in "biuf":
        raise InputTypeError(f"cannot segment an image of dtype {np.dtype(dtype)}; use integers or floats")
    if math.prod(shape) == 0:
        raise InputError(f"the image is empty (shape {tuple(shape)})")


def min_side(model: DEMModel) -> int:
    """The smallest spatial side (pixels) ``model`` can segment: its receptive field must fit."""
    return 2 * (model.halo - model.encoder.context.radius) + 1


@functools.cache
def _default_3d_min_side() -> int:
    return min_side(load_default_model(3, "cpu"))


def choose_mode(layout: Layout, mode: str, model: DEMModel | None) -> str:
    """``auto`` is 3D when there is a Z axis deep enough for the 3D model in every spatial
    direction (the shipped one needs 15 slices), else 2D per slice."""
    mode = (mode or "auto").lower()
    if mode not in ("auto", "2d", "3d"):
        raise InputError(f"mode must be auto, 2d or 3d, got {mode!r}")
    if model is not None:
        model_mode = f"{model.config.ndim}d"
        if mode not in ("auto", model_mode):
            raise InputError(f"the model is a {model_mode.upper()} model but mode {mode!r} was asked for")
        mode = model_mode
    if mode == "auto":
        deep = layout.has_z and min(layout.size(a) for a in "ZYX") >= max(8, _default_3d_min_side())
        mode = "3d" if deep else "2d"
    if mode == "3d" and not layout.has_z:
        raise InputError(f"3D mode needs a Z axis, but the axes are {layout.axes!r}")
    return mode


def segment(
    image,
    axes: str | None = None,
    *,
    model: DEMModel | None = None,
    n_clusters: int | None = None,
    mode: str = "auto",
    tile_size: int | None = None,
    device: str | torch.device = "auto",
    seed: int = 0,
    em_steps: int | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    rgb: bool | None = None,
    out: np.ndarray | None = None,
    scribbles: np.ndarray | None = None,
    previous: np.ndarray | None = None,
    task: str = "auto",
    objects=None,
    background=None,
    stain: str = "auto",
    frames: str = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Segment ``image`` (numpy, dask or zarr; axes from ``axes`` or guessed) into ``n_clusters``.

    ``DEMSegmenter(model, n_clusters, ...).fit_predict(image, ...)``, see
    :class:`~.segmenter.DEMSegmenter` for the parameters. ``out`` may be any writable
    array of the label shape (a zarr array, a memmap); ``scribbles`` guide the fit, starting
    from the classes ``previous`` when given (the labels the strokes correct).

    Raises ``ValueError``/``TypeError`` with a clear message for bad input and
    :class:`~.progress.Cancelled` when cancelled.
    """
    from .layout import parse_axes
    from .segmenter import DEMSegmenter

    segmenter = DEMSegmenter(
        model=model,
        n_clusters=n_clusters,
        mode=mode,
        tile_size=tile_size,
        device=device,
        seed=seed,
        em_steps=em_steps,
        max_samples=max_samples,
        task=task,
        objects=objects,
        background=background,
        stain=stain,
        frames=frames,
    )
    labels = segmenter.fit_predict(
        image,
        axes,
        scribbles=scribbles,
        rgb=rgb,
        out=out,
        progress=progress,
        cancel=cancel,
        previous=previous,
    )
    return SegmentationResult.of(segmenter, labels, parse_axes(axes, image.shape, rgb).label_axes)

"""The public Python API: the functions the CLI and the napari widgets call.

>>> from napari_dem.api import segment_image
>>> out = segment_image(image, axes="ZYX", instances=True)
>>> out.semantic.decision.summary()  # the K and task the fit chose
>>> out.labels  # instance ids, 0 = background, same shape as image
>>> later = segment_image(other, axes="ZYX", segmenter=out.semantic.segmenter)  # same classes

For fitting once and predicting many images, use :class:`DEMSegmenter` directly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .core.layout import parse_axes
from .core.model import DEMModel, load_default_model, load_model, resolve_device
from .core.progress import CancelToken, ProgressFn
from .core.refine import instances_per_frame
from .core.segment import SegmentationResult
from .core.segmenter import DEMSegmenter


@dataclass
class SegmentOutput:
    labels: np.ndarray  #: objects 0/1 or classes 1..K; instances (0 = background) when asked for
    axes: str  #: axes of ``labels`` (the input's minus C)
    semantic: SegmentationResult
    instances: bool


def get_model(
    model: DEMModel | str | os.PathLike[str] | None, ndim: int, device: str | torch.device
) -> DEMModel:
    """A model object from a model, a file path, or None (the shipped default for ``ndim``)."""
    if isinstance(model, DEMModel):
        return model.to(resolve_device(device))
    if model is None:
        return load_default_model(ndim, device)
    return load_model(model, device)


def segment_image(
    image,
    axes: str | None = None,
    *,
    n_clusters: int | None = None,
    task: str = "auto",
    objects: str | int | Sequence[int] | None = None,
    background: str | int | Sequence[int] | None = None,
    stain: str = "auto",
    frames: str = "auto",
    instances: bool = False,
    model: DEMModel | str | os.PathLike[str] | None = None,
    mode: str = "auto",
    device: str = "auto",
    seed: int = 0,
    tile_size: int | None = None,
    rgb: bool | None = None,
    min_distance: int | None = None,
    smooth: float | None = None,
    min_size: int | None = None,
    scale: Sequence[float] | None = None,
    segmenter: DEMSegmenter | None = None,
    out: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SegmentOutput:
    """DEM segmentation of ``image``: objects on a background, or classes; optionally instances.

    At default settings the fit chooses K (``n_clusters=None``), the ``task`` (``auto``)
    and which clusters are objects; ``out.semantic.decision`` says what it chose. Objects:
    0 = background, 1 = objects (``objects``: ``brightest``, ``darkest`` or cluster ids
    overrides the choice; ``background`` says the same from the other side). Classes:
    ``1..K`` by increasing intensity. ``stain="auto"`` reads an RGB image of a stained slide
    (H&E, IHC) by its haematoxylin, the nuclear stain (``"none"``: by its channels' mean;
    :mod:`.core.stains`). ``frames="auto"`` brings the frames of a time-lapse (axes with T) to one
    brightness when it differs, as in photobleaching (``"none"``: read as they are;
    :mod:`.core.frames`). ``instances=True`` splits the objects (for classes:
    every class but the darkest) into separate objects (distance-transform watershed
    scaled to the object size; ``min_distance``/``smooth`` override; objects under a quarter of
    a typical one dropped, ``min_size`` pixels when given), connected across Z
    when there is a Z axis, frame by frame along T; ``scale`` (the pixel size of the
    spatial axes, e.g. Z, Y, X as napari's layer scale) makes that split physical on
    anisotropic stacks (not given: a Z step is read off the objects' shape,
    :func:`.core.refine.estimated_spacing`).

    ``segmenter``: an already fitted :class:`DEMSegmenter` (its K, task, mode and mixture;
    the fitting parameters are then ignored): the labels get the same ids as in the
    images it was fitted on. Otherwise one is fitted on ``image`` and returned in
    ``.semantic.segmenter``. ``out`` receives the semantic labels (any writable array of
    the label shape).
    """
    semantic = semantic_labels(
        image, axes, segmenter=segmenter, rgb=rgb, out=out, progress=progress, cancel=cancel,
        model=model, n_clusters=n_clusters, mode=mode, device=device, seed=seed, tile_size=tile_size,
        task=task, objects=objects, background=background, stain=stain, frames=frames,
    )  # fmt: skip
    if not instances:
        return SegmentOutput(semantic.labels, semantic.axes, semantic, False)
    inst = instances_per_frame(
        semantic.labels,
        semantic.axes,
        semantic.instance_background,
        min_distance=min_distance,
        smooth=smooth,
        min_size=min_size,
        spacing=scale,
        grey=objects_grey(image, axes, rgb, semantic),
    )
    if inst.max() < 2**16:
        inst = inst.astype(np.uint16)
    return SegmentOutput(inst, semantic.axes, semantic, True)


def objects_grey(image, axes: str | None, rgb: bool | None, semantic: SegmentationResult):
    """The intensity the instance step keeps small objects that stand out by
    (:func:`.core.refine.split_instances`), read frame by frame: for the objects task; None
    for classes (the size floor alone applies)."""
    if semantic.decision.task != "objects":
        return None
    return semantic.segmenter.grey(image, axes, rgb)


def semantic_labels(
    image,
    axes: str | None = None,
    *,
    segmenter: DEMSegmenter | None = None,
    rgb: bool | None = None,
    out: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    **settings,
) -> SegmentationResult:
    """Labels ``1..K`` from a fitted ``segmenter`` (predict), or from one fitted on ``image`` now
    with ``settings`` (:class:`DEMSegmenter`'s parameters; fit_predict)."""
    layout = parse_axes(axes, image.shape, rgb) if hasattr(image, "shape") else None
    axes = layout.axes if layout else axes
    if segmenter is not None:
        labels = segmenter.predict(image, axes, out=out, rgb=rgb, progress=progress, cancel=cancel)
    else:
        segmenter = DEMSegmenter(**settings)
        labels = segmenter.fit_predict(image, axes, rgb=rgb, out=out, progress=progress, cancel=cancel)
    return SegmentationResult.of(segmenter, labels, layout.label_axes)

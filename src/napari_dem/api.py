"""The public Python API: the functions the CLI and the napari widgets call.

>>> from napari_dem.api import segment_image
>>> out = segment_image(image, axes="ZYX", n_clusters=3, instances=True)
>>> out.labels  # instance ids, 0 = background, same shape as image
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from .core.layout import parse_axes
from .core.model import DEMModel, load_default_model, load_model, resolve_device
from .core.progress import CancelToken, ProgressFn
from .core.refine import background_id, instances_from_labels
from .core.segment import SegmentationResult, segment


@dataclass
class SegmentOutput:
    labels: np.ndarray  #: semantic 1..K, or instances (0 = background) when asked for
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
    instances: bool = False,
    background: str | int = "darkest",
    model: DEMModel | str | os.PathLike[str] | None = None,
    mode: str = "auto",
    device: str = "auto",
    seed: int = 0,
    tile_size: int | None = None,
    rgb: bool | None = None,
    min_distance: int | None = None,
    smooth: float | None = None,
    min_size: int = 8,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SegmentOutput:
    """Semantic DEM segmentation of ``image``, optionally split into instances.

    Semantic labels are ``1..K`` by increasing mean intensity (K = 3 in 2D and 2 in 3D
    when not given). With
    ``instances=True`` every cluster but ``background`` (``darkest``, ``brightest``
    or an id) becomes separated objects (distance-transform watershed), 0 = background.
    """
    layout = parse_axes(axes, getattr(image, "shape", ()), rgb) if hasattr(image, "shape") else None
    if n_clusters is not None:
        background_id(background, n_clusters)  # a bad background fails before the work
    dem = None
    if model is not None:
        ndim_hint = 3 if (mode == "3d") else 2
        dem = get_model(model, ndim_hint, device)
    result = segment(
        image,
        layout.axes if layout else axes,
        model=dem,
        n_clusters=n_clusters,
        mode=mode,
        device=device,
        seed=seed,
        tile_size=tile_size,
        rgb=rgb,
        progress=progress,
        cancel=cancel,
    )
    bg = background_id(background, result.n_clusters)
    if not instances:
        return SegmentOutput(result.labels, result.axes, result, False)
    # Instances over the spatial axes (Z Y X), frame by frame along T.
    axes_l = result.axes
    order = [axes_l.index(a) for a in "TZYX" if a in axes_l]
    moved = np.transpose(result.labels, order)
    spatial_ndim = sum(a in axes_l for a in "ZYX")
    inst = instances_from_labels(
        moved, bg, spatial_ndim=spatial_ndim, min_distance=min_distance, smooth=smooth, min_size=min_size
    )
    inst = np.transpose(inst, np.argsort(order))
    if inst.max() < 2**16:
        inst = inst.astype(np.uint16)
    return SegmentOutput(inst, axes_l, result, True)

"""Where the segmenter reads: units (a 2D slice or a 3D volume of one frame), tiles with a halo,
and the global grid of points the mixture is fitted on.

A *unit* is what the network sees at once: one YX slice (2D mode) or one ZYX volume
(3D mode) of one time point. Tiles cover a unit; each is read with a halo so that
tiled latents equal untiled ones. Pure index arithmetic and array reads, no torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from .layout import Layout

Region = tuple[slice, ...]


class Unit:
    """Reads blocks of one unit of the input as float32 ``(C, *spatial)``."""

    def __init__(self, image, layout: Layout, mode: str, t: int, z: int | None) -> None:
        self.image, self.layout, self.t, self.z = image, layout, t, z
        self.spatial_axes = "ZYX" if mode == "3d" else "YX"
        self.shape = tuple(layout.size(a) for a in self.spatial_axes)

    def read(self, region: Region) -> np.ndarray:
        index: list[object] = []
        for a in self.layout.axes:
            if a == "T":
                index.append(self.t)
            elif a == "C":
                index.append(slice(None))
            elif a in self.spatial_axes:
                index.append(region[self.spatial_axes.index(a)])
            else:  # Z in 2D mode
                index.append(self.z)
        block = np.asarray(self.image[tuple(index)])
        kept = [a for a in self.layout.axes if a == "C" or a in self.spatial_axes]
        order = [kept.index(a) for a in ("C", *self.spatial_axes) if a in kept]
        block = np.transpose(block, order)
        if "C" not in self.layout.axes:
            block = block[np.newaxis]
        return block.astype(np.float32, copy=False)

    def label_index(self, region: Region) -> tuple[object, ...]:
        """Index of ``region`` of this unit in the label image."""
        index: list[object] = []
        for a in self.layout.label_axes:
            if a == "T":
                index.append(self.t)
            elif a in self.spatial_axes:
                index.append(region[self.spatial_axes.index(a)])
            else:
                index.append(self.z)
        return tuple(index)


def units_of(image, layout: Layout, mode: str) -> list[Unit]:
    """Every unit of ``image``: one per frame in 3D mode; one per frame and slice in 2D mode."""
    ts = range(layout.size("T"))
    if mode == "3d" or not layout.has_z:
        pairs: list[tuple[int, int | None]] = [(t, None) for t in ts]
    else:
        pairs = [(t, z) for t in ts for z in range(layout.size("Z"))]
    return [Unit(image, layout, mode, t, z) for t, z in pairs]


def tile_regions(shape: tuple[int, ...], tile: int, halo: int) -> Iterator[tuple[Region, Region, Region]]:
    """(core region, read region with halo, core inside read) for a grid of tiles over ``shape``."""
    starts = [range(0, s, max(1, tile)) for s in shape]
    for corner in itertools.product(*starts):
        core = tuple(slice(a, min(a + tile, s)) for a, s in zip(corner, shape, strict=True))
        yield (core, *with_halo(core, shape, halo))


def with_halo(core: Region, shape: tuple[int, ...], halo: int) -> tuple[Region, Region]:
    """(read region: ``core`` widened by ``halo`` and clipped to ``shape``, ``core`` inside it)."""
    read = tuple(
        slice(max(0, c.start - halo), min(s, c.stop + halo)) for c, s in zip(core, shape, strict=True)
    )
    inner = tuple(slice(c.start - r.start, c.stop - r.start) for c, r in zip(core, read, strict=True))
    return read, inner


def grid_stride(groups: list[tuple[int, tuple[int, ...]]], max_samples: int) -> int:
    """Smallest stride of the sampling grid giving at most ``max_samples`` points in all.

    ``groups`` lists (number of units, unit shape) per image; every unit keeps at
    least one point, so the loop ends even with more units than samples.
    """
    longest = max(max(shape) for _, shape in groups)

    def points(stride: int) -> int:
        return sum(n * math.prod(math.ceil(s / stride) for s in shape) for n, shape in groups)

    stride = 1
    while stride < longest and points(stride) > max_samples:
        stride += 1
    return stride


def grid_points(core: Region, stride: int) -> list[np.ndarray] | None:
    """Local indices (one flat array per axis) of the global grid's points inside ``core``."""
    offset = stride // 2
    local = [np.arange(sl.start + ((offset - sl.start) % stride), sl.stop, stride) - sl.start for sl in core]
    if not all(len(ix) for ix in local):
        return None
    return [m.reshape(-1) for m in np.meshgrid(*local, indexing="ij")]

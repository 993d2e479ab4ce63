"""Segment an array of any layout with a DEM model: tiles in, one global mixture, labels out.

Two passes over the data, each one tile at a time so memory is bounded by the tile:

1. encode every tile (with a halo of :attr:`DEMModel.halo` pixels, so tiled latents
   equal untiled ones) and keep the latents at the points of a global sampling grid;
   fit one Gaussian mixture on those samples by the model's EM (same for every
   tile, slice and frame, so label ids mean the same thing everywhere);
2. encode again (or reuse the cached latents when they fit in memory) and assign
   each pixel to its most responsible component.

Labels are ``1..K`` numbered by increasing mean input intensity of the cluster.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .em import GMMParams, e_step, fit_gmm
from .layout import Layout, parse_axes
from .model import DEMModel, load_default_model, resolve_device
from .progress import CancelToken, ProgressFn, check_cancel, report

#: Points used to fit the global mixture; the grid stride grows so that no more are taken.
DEFAULT_MAX_SAMPLES = 200_000
#: Latents are cached between the two passes while they take less memory than this.
CACHE_BYTES = 512 * 2**20
MAX_CLUSTERS = 255
#: K when none is given, measured per mode: 3 (dim objects, bright objects, background) on
#: 2D fluorescence; 2 for the 3D model, whose third component splits the background.
DEFAULT_CLUSTERS = {"2d": 3, "3d": 2}
#: Tile side when none is given: a 3D tile of 512^3 would hold gigabytes of activations.
DEFAULT_TILE = {"2d": 512, "3d": 128}


@dataclass
class SegmentationResult:
    labels: np.ndarray  #: input's shape minus the channel axis; 1..K
    axes: str  #: axes of ``labels``
    n_clusters: int
    params: GMMParams  #: mixture over standardised latents, components in label order
    cluster_intensity: np.ndarray  #: mean normalised input intensity of labels 1..K
    mode: str  #: "2d" (per slice) or "3d"
    feature_mean: torch.Tensor
    feature_std: torch.Tensor


def validate_image(image: object) -> None:
    """Reject what cannot be segmented, with a message a user can act on."""
    dtype = getattr(image, "dtype", None)
    shape = getattr(image, "shape", None)
    if dtype is None or shape is None:
        raise TypeError(f"expected an array (numpy, dask or zarr), got {type(image).__name__}")
    kind = np.dtype(dtype).kind
    if kind not in "biuf":
        raise TypeError(f"cannot segment an image of dtype {np.dtype(dtype)}; use integers or floats")
    if math.prod(shape) == 0:
        raise ValueError(f"the image is empty (shape {tuple(shape)})")


class _Volume:
    """Reads blocks of one unit (a 2D slice or a 3D volume) of the input as float32 ``(C, *spatial)``."""

    def __init__(self, image, layout: Layout, mode: str, t: int, z: int | None) -> None:
        self.image, self.layout, self.t, self.z = image, layout, t, z
        self.spatial_axes = "ZYX" if mode == "3d" else "YX"
        self.shape = tuple(layout.size(a) for a in self.spatial_axes)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
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

    def label_index(self, region: tuple[slice, ...]) -> tuple[object, ...]:
        index: list[object] = []
        for a in self.layout.label_axes:
            if a == "T":
                index.append(self.t)
            elif a in self.spatial_axes:
                index.append(region[self.spatial_axes.index(a)])
            else:
                index.append(self.z)
        return tuple(index)


def _units(layout: Layout, mode: str) -> list[tuple[int, int | None]]:
    ts = range(layout.size("T"))
    if mode == "3d" or not layout.has_z:
        return [(t, None) for t in ts]
    return [(t, z) for t in ts for z in range(layout.size("Z"))]


def tile_regions(
    shape: tuple[int, ...], tile: int, halo: int
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """(core region, read region with halo, core inside read) for a grid of tiles over ``shape``."""
    starts = [range(0, s, max(1, tile)) for s in shape]
    for corner in itertools.product(*starts):
        core, read, inner = [], [], []
        for a, s in zip(corner, shape, strict=True):
            b = min(a + tile, s)
            ra, rb = max(0, a - halo), min(s, b + halo)
            core.append(slice(a, b))
            read.append(slice(ra, rb))
            inner.append(slice(a - ra, a - ra + (b - a)))
        yield tuple(core), tuple(read), tuple(inner)


def _grid_stride(n_units: int, shape: tuple[int, ...], max_samples: int) -> int:
    """Smallest grid stride giving at most ``max_samples`` points (at least one per unit)."""
    stride = 1
    while stride < max(shape) and n_units * math.prod(math.ceil(s / stride) for s in shape) > max_samples:
        stride += 1
    return stride


def normalization(image, layout: Layout, max_samples: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (1st, 99.8th) percentiles from a strided subsample of the whole array.

    Percentiles, as in CSBDeep/StarDist, keep a few hot pixels from squashing the
    contrast. A subsample keeps this cheap and bounded on dask/zarr stacks.
    """
    # Stride the non-channel axes only: striding C too dropped channels (and a later
    # reshape then failed) on any multichannel image above ~2 Mpx.
    sizes = [s for a, s in zip(layout.axes, layout.shape, strict=True) if a != "C"]
    step = max(1, math.ceil((math.prod(sizes) * layout.channels / max_samples) ** (1 / len(sizes))))
    index = tuple(slice(None) if a == "C" else slice(None, None, step) for a in layout.axes)
    sample = np.asarray(image[index], dtype=np.float64)
    if not np.isfinite(sample).all():
        raise ValueError("the image contains NaN or infinite values; replace them first")
    c_axis = layout.axes.index("C") if "C" in layout.axes else None
    sample = (
        np.moveaxis(sample, c_axis, 0).reshape(sample.shape[c_axis], -1)
        if c_axis is not None
        else sample.reshape(1, -1)
    )
    lo = np.percentile(sample, 1.0, axis=1)
    hi = np.percentile(sample, 99.8, axis=1)
    flat = hi <= lo
    lo = np.where(flat, sample.min(1), lo)
    hi = np.where(flat, sample.max(1), hi)
    if np.all(hi <= lo):
        raise ValueError(f"the image is constant (every pixel is {lo[0]:g}): there is nothing to segment")
    hi = np.where(hi > lo, hi, lo + 1.0)
    return lo.astype(np.float32), hi.astype(np.float32)


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
        raise ValueError(f"mode must be auto, 2d or 3d, got {mode!r}")
    if model is not None:
        model_mode = f"{model.config.ndim}d"
        if mode not in ("auto", model_mode):
            raise ValueError(f"the model is a {model_mode.upper()} model but mode {mode!r} was asked for")
        mode = model_mode
    if mode == "auto":
        deep = layout.has_z and min(layout.size(a) for a in "ZYX") >= max(8, _default_3d_min_side())
        mode = "3d" if deep else "2d"
    if mode == "3d" and not layout.has_z:
        raise ValueError(f"3D mode needs a Z axis, but the axes are {layout.axes!r}")
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
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> SegmentationResult:
    """Segment ``image`` (numpy, dask or zarr; axes from ``axes`` or guessed) into ``n_clusters``.

    ``n_clusters=None`` takes :data:`DEFAULT_CLUSTERS` for the mode (3 in 2D, 2 in 3D).

    ``out`` may be any writable array of the label shape (a zarr array, a memmap):
    labels are written into it tile by tile.

    ``scribbles`` (label shape, 0 = unpainted, k = "this pixel is label k") turns the
    fit into semi-supervised EM: painted pixels join the fit with their
    responsibilities clamped to their class, so a few strokes can fix a wrong split.
    Label ids then follow the painted classes (painted class k is label k).

    Raises ``ValueError``/``TypeError`` with a clear message for bad input and
    :class:`~.progress.Cancelled` when cancelled.
    """
    validate_image(image)
    layout = parse_axes(axes, image.shape, rgb)
    if n_clusters is None:
        n_clusters = DEFAULT_CLUSTERS[choose_mode(layout, mode, model)]
    if not isinstance(n_clusters, int | np.integer) or not 2 <= n_clusters <= MAX_CLUSTERS:
        raise ValueError(
            f"the number of clusters must be an integer from 2 to {MAX_CLUSTERS}, got {n_clusters}"
        )
    if tile_size is None:
        tile_size = DEFAULT_TILE[choose_mode(layout, mode, model)]
    if tile_size < 16:
        raise ValueError(f"tile size must be at least 16 pixels, got {tile_size}")
    if max_samples < 100:
        raise ValueError(f"max_samples must be at least 100, got {max_samples}")
    mode = choose_mode(layout, mode, model)
    dev = resolve_device(device)
    if model is None:
        model = load_default_model(3 if mode == "3d" else 2, dev)
    model = model.to(dev).eval()
    if layout.channels > 64:
        raise ValueError(f"{layout.channels} channels along axis C: is the axes string right?")

    units = _units(layout, mode)
    volumes = [_Volume(image, layout, mode, t, z) for t, z in units]
    spatial = volumes[0].shape
    need = min_side(model)
    if min(spatial) < need:
        raise ValueError(
            f"the image is too small: {mode.upper()} segmentation needs at least {need} pixels "
            f"along {''.join(volumes[0].spatial_axes)}, got {spatial}"
            + ("; try mode 2d" if mode == "3d" else "")
        )
    if np.dtype(image.dtype).kind == "f" and isinstance(image, np.ndarray) and not np.isfinite(image).all():
        raise ValueError("the image contains NaN or infinite values; replace them first")
    lo, hi = normalization(image, layout)
    lo_t = torch.from_numpy(lo).to(dev).view(-1, 1, *([1] * len(spatial)))
    scale_t = torch.from_numpy(1.0 / (hi - lo)).to(dev).view_as(lo_t)

    stride = _grid_stride(len(units), spatial, max_samples)
    offset = stride // 2
    regions = list(tile_regions(spatial, tile_size, model.halo))
    n_pix = len(units) * math.prod(spatial)
    feat_dim = model.config.latent_dim * layout.channels
    cache: dict[tuple[int, int], torch.Tensor] | None = {} if n_pix * feat_dim * 4 <= CACHE_BYTES else None
    total = 2 * len(units) * len(regions)
    done = 0

    def encode(
        vol: _Volume, read: tuple[slice, ...], inner: tuple[slice, ...]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        block = vol.read(read)
        if not np.isfinite(block).all():
            raise ValueError("the image contains NaN or infinite values; replace them first")
        x = (torch.from_numpy(block).to(dev).unsqueeze(1) - lo_t) * scale_t  # (C, 1, *sp)
        with torch.inference_mode():
            z = model.encode(x)
        z = z[(slice(None), slice(None), *inner)]
        core_int = x[(slice(None), 0, *inner)].mean(0)  # normalised intensity, channel mean
        # (C, D, *sp) -> (*sp, C*D): channel-major feature vector per pixel.
        feats = z.reshape(-1, *z.shape[2:]).movedim(0, -1)
        return feats, core_int

    if scribbles is not None:
        scribbles = np.asarray(scribbles)
        if scribbles.shape != layout.label_shape:
            raise ValueError(f"scribbles have shape {scribbles.shape}, the labels {layout.label_shape}")
        if scribbles.max(initial=0) > n_clusters or scribbles.min(initial=0) < 0:
            raise ValueError(f"scribble classes must lie in 1..{n_clusters} (0 = unpainted)")
    n_spatial = math.prod(spatial)

    # Pass 1: latents at the global grid points (and the cache).
    keys, samples, intensities, clamps = [], [], [], []
    for u, vol in enumerate(volumes):
        for r, (core, read, inner) in enumerate(regions):
            check_cancel(cancel)
            feats, core_int = encode(vol, read, inner)
            if cache is not None:
                cache[(u, r)] = feats.cpu()
            local = [
                torch.arange(sl.start + ((offset - sl.start) % stride), sl.stop, stride) - sl.start
                for sl in core
            ]
            if all(len(ix) for ix in local):
                mesh = torch.meshgrid(*local, indexing="ij")
                flat_local = [m.reshape(-1) for m in mesh]
                samples.append(feats[tuple(ix.to(dev) for ix in flat_local)].cpu())
                intensities.append(core_int[tuple(ix.to(dev) for ix in flat_local)].cpu())
                glob = np.ravel_multi_index(
                    tuple((ix + sl.start).numpy() for ix, sl in zip(flat_local, core, strict=True)), spatial
                )
                keys.append(torch.from_numpy(glob + u * n_spatial))
                clamps.append(torch.full((len(glob),), -1, dtype=torch.long))
            if scribbles is not None:
                painted = np.nonzero(scribbles[vol.label_index(core)])
                if len(painted[0]):
                    ix = tuple(torch.from_numpy(p).to(dev) for p in painted)
                    samples.append(feats[ix].cpu())
                    intensities.append(core_int[ix].cpu())
                    cls = scribbles[vol.label_index(core)][painted]
                    glob = np.ravel_multi_index(
                        tuple(p + sl.start for p, sl in zip(painted, core, strict=True)), spatial
                    )
                    # Offset past every grid key: painted points sort after the grid, in order.
                    keys.append(torch.from_numpy(glob + u * n_spatial + len(units) * n_spatial))
                    clamps.append(torch.from_numpy(cls.astype(np.int64) - 1))
            done += 1
            report(progress, done, total, "encoding")
    order = torch.argsort(torch.cat(keys))
    x_s = torch.cat(samples)[order].to(dev)
    int_s = torch.cat(intensities)[order].to(dev)
    clamp = torch.cat(clamps)[order].to(dev)
    has_clamp = bool((clamp >= 0).any())
    weights = None
    if has_clamp:
        # A few strokes must outweigh thousands of grid points: painted pixels together
        # count for a quarter of the fit.
        n_paint = int((clamp >= 0).sum())
        w_paint = max(1.0, 0.25 * (len(clamp) - n_paint) / n_paint)
        weights = torch.where(clamp >= 0, w_paint, 1.0).to(x_s.dtype).unsqueeze(0)
    n_distinct = int(torch.unique(int_s).numel())
    if n_clusters > n_distinct:
        raise ValueError(
            f"the image has only {n_distinct} distinct values: it cannot be split into {n_clusters} clusters"
        )
    # Same scaling as in training (model.standardize): centred, one common spread.
    mean = x_s.mean(0)
    std = (x_s - mean).pow(2).mean().sqrt().expand_as(mean) + 1e-5
    gen = torch.Generator().manual_seed(int(seed))
    with torch.inference_mode():
        params, log_resp, _ = fit_gmm(
            ((x_s - mean) / std).unsqueeze(0),
            n_clusters,
            em_steps or model.config.em_steps,
            reg_covar=model.config.reg_covar,
            generator=gen,
            clamp=clamp.unsqueeze(0) if has_clamp else None,
            point_weights=weights,
        )
        resp = log_resp[0].exp()
        cluster_int = (resp * int_s.unsqueeze(1)).sum(0) / resp.sum(0).clamp(min=1e-12)
    # Label k+1 <- component perm[k]: by intensity, unless painted classes fix the ids.
    perm = torch.arange(n_clusters, device=dev) if has_clamp else torch.argsort(cluster_int)
    params = GMMParams(params.log_weights[:, perm], params.means[:, perm], params.variances[:, perm])

    # Pass 2: assign every pixel.
    labels = out if out is not None else np.zeros(layout.label_shape, dtype=np.uint8)
    if tuple(labels.shape) != layout.label_shape:
        raise ValueError(f"out has shape {tuple(labels.shape)}, expected {layout.label_shape}")
    for u, vol in enumerate(volumes):
        for r, (core, read, inner) in enumerate(regions):
            check_cancel(cancel)
            feats = cache.pop((u, r)).to(dev) if cache is not None else encode(vol, read, inner)[0]
            with torch.inference_mode():
                f = ((feats.reshape(-1, feats.shape[-1]) - mean) / std).unsqueeze(0)
                lr, _ = e_step(f, params)
                lab = (lr[0].argmax(-1) + 1).to(torch.uint8).reshape(feats.shape[:-1]).cpu().numpy()
            if scribbles is not None:  # painted pixels keep the class the user gave them
                painted = scribbles[vol.label_index(core)]
                lab = np.where(painted > 0, painted, lab).astype(np.uint8)
            labels[vol.label_index(core)] = lab
            done += 1
            report(progress, done, total, "assigning")
    return SegmentationResult(
        labels=labels,
        axes=layout.label_axes,
        n_clusters=int(n_clusters),
        params=params.detach().to("cpu"),
        cluster_intensity=cluster_int[perm].cpu().numpy(),
        mode=mode,
        feature_mean=mean.cpu(),
        feature_std=std.cpu(),
    )

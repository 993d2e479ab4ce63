"""Batch segmentation: many files (or one huge stack) with bounded memory, resumable, local or on dask.

- :func:`expand_inputs` turns files, folders and glob patterns into a sorted list of images;
- :func:`batch_segment` segments each one to ``OUT/NAME_labels.EXT``. An existing output
  is skipped (resume) unless ``overwrite``; every output is written under a temporary,
  dot-prefixed ``.part`` name and renamed only when complete, so a killed run never
  leaves a file that looks finished (the next run removes the stale temp); a file that
  fails is recorded with a one-line reason and the run goes on;
- :func:`segment_to_zarr` segments a lazy input (dask, zarr, memory map) straight into a
  zarr array, tile by tile, so memory does not grow with the stack's length.

With ``scheduler="tcp://host:port"`` one task per file runs on a ``dask.distributed``
cluster; each task calls :func:`process_file`, which loads the model itself.
"""

from __future__ import annotations

import glob
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .core.errors import USER_ERRORS, InputError
from .core.layout import parse_axes
from .core.progress import Cancelled, CancelToken, ProgressFn
from .io import IMAGE_SUFFIXES, atomic_path, remove_path

if TYPE_CHECKING:
    from .core.segmenter import DEMSegmenter

#: Inputs with more pixels than this (or .zarr inputs) are written incrementally when the output is .zarr.
BIG_PIXELS = 64 * 2**20
_STRIP_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.zarr", ".tiff", ".tif", ".npy", ".zarr", ".png")


@dataclass
class BatchSettings:
    n_clusters: int | None = None
    axes: str | None = None
    instances: bool = False
    task: str = "auto"
    objects: str | int | None = None  #: None: chosen by the fit
    background: str | int | None = None  #: the complement of ``objects``; give one of them
    stain: str = "auto"  #: "auto": a stained slide (H&E, IHC) is read by its haematoxylin; "none"
    frames: str = "auto"  #: "auto": a time-lapse's frames brought to one brightness; "none"
    model: str | None = None
    mode: str = "auto"
    device: str = "auto"
    seed: int = 0
    tile_size: int | None = None  #: None: 512 in 2D, 128 in 3D
    out_format: str = ".tif"
    #: Pixel size of the spatial axes (Z Y X), over the files' own; see provenance.resolve_scale.
    scale: tuple[float, ...] | None = None
    level: int = 0  #: OME-Zarr inputs: the resolution level to read (0 = highest)
    #: Extra fields for every output's provenance record (e.g. the command line).
    record: dict | None = None

    def segment_kwargs(self) -> dict[str, object]:
        """The keywords of :func:`napari_dem.api.segment_image` these settings stand for (model aside)."""
        return {
            "n_clusters": self.n_clusters,
            "instances": self.instances,
            "task": self.task,
            "objects": self.objects,
            "background": self.background,
            "stain": self.stain,
            "frames": self.frames,
            "mode": self.mode,
            "device": self.device,
            "seed": self.seed,
            "tile_size": self.tile_size,
        }


def output_record(
    settings: BatchSettings, seg, scale: tuple[float, ...] | None, source: str | os.PathLike[str] | None
) -> dict:
    """The provenance record of an output made with ``settings`` (``seg``: the core's
    :class:`~napari_dem.core.segment.SegmentationResult`, for the K and mode it chose)."""
    from .provenance import segment_record

    return segment_record(
        model=settings.model,
        mode=seg.mode,
        n_clusters=seg.n_clusters,
        seed=settings.seed,
        axes=seg.axes,
        scale=scale,
        instances=settings.instances,
        background=settings.background,
        source=None if source is None else str(source),
        decision=seg.decision.summary(),
        labels_are=seg.task,  # "objects" (0 = background) or "classes" (1..K), as decided
        **(settings.record or {}),
    )


def label_scale(
    settings: BatchSettings, axes: str, file_scale: dict[str, float] | None = None
) -> tuple[float, ...] | None:
    """Pixel size per axis of the labels (``axes``: the input's or the labels'), explicit > file."""
    from .provenance import resolve_scale, scale_tuple

    scale = resolve_scale(axes, explicit=settings.scale, from_file=file_scale)
    return scale_tuple(scale, axes.replace("C", ""))


@dataclass
class BatchSummary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  #: (input, one-line reason)
    cancelled: bool = False

    def line(self) -> str:
        text = (
            f"{len(self.done)} done, {len(self.skipped)} skipped (already there), {len(self.failed)} failed"
        )
        return text + ", cancelled" if self.cancelled else text


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def expand_inputs(specs: list[str]) -> list[Path]:
    """Files, folders (every supported image inside, sorted) and glob patterns -> image paths.

    A folder gives its own files, not its subfolders'; a pattern's ``**`` matches any
    depth (``data/**/*.tif``: every TIFF under ``data``), ``*`` one level.

    Order follows ``specs``; duplicates are dropped. Raises ``ValueError`` when a spec
    matches nothing (or nothing matches at all).
    """
    paths: list[Path] = []
    for spec in specs:
        spec = str(spec)
        p = Path(spec)
        if p.is_dir() and p.suffix.lower() != ".zarr":
            found = sorted(c for c in p.iterdir() if _is_image(c))
            if not found:
                raise InputError(f"no {', '.join(IMAGE_SUFFIXES)} image in folder {p}")
            paths += found
        elif p.exists():
            paths.append(p)
        elif glob.has_magic(spec):
            # recursive: ``**`` matches any depth of subfolders (the Batch widget's pattern too)
            found = sorted(Path(m) for m in glob.glob(spec, recursive=True) if _is_image(Path(m)))
            if not found:
                raise InputError(f"no image matches {spec!r}")
            paths += found
        else:
            raise FileNotFoundError(f"no such file: {spec}")
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise InputError("no input images")
    return unique


def output_path(src: Path, out_dir: Path, out_format: str) -> Path:
    """``out_dir / NAME_labels.EXT`` where NAME is ``src``'s name without its image suffix."""
    stem = Path(src).name
    for suf in _STRIP_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
            break
    ext = out_format if out_format.startswith(".") else f".{out_format}"
    return Path(out_dir) / f"{stem}_labels{ext}"


def temp_path(out: Path) -> Path:
    """The temporary name ``out`` is written under: ``.NAME_labels.part.EXT`` beside it
    (``EXT`` keeps ``.ome.zarr`` whole: the writer tells OME-Zarr from the name)."""
    from .io import is_ome_zarr

    ext = ".ome.zarr" if is_ome_zarr(out) else out.suffix
    return out.parent / f".{out.name[: len(out.name) - len(ext)]}.part{ext}"


def _remove_stale_temps(out: Path) -> None:
    """Temps a killed run may have left for ``out`` (ours, and :func:`io.write_array`'s)."""
    remove_path(temp_path(out))
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.part*"):
        remove_path(stale)
    remove_path(_semantic_temp(out))


def _semantic_temp(out: Path) -> Path:
    """Where :func:`segment_to_zarr` keeps the semantic labels while it splits instances."""
    return out.parent / f".{out.stem}.sem.part.zarr"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Models: load once per process (and per task on a cluster worker)

_MODELS: dict[tuple[object, ...], object] = {}


def _model_for(settings: BatchSettings, ndim: int):
    """The settings' model file (cached per process), or None for the shipped default.

    The cache key holds the file's modification time and size beside its path, so a model
    saved again under the same name (a new fine-tune) is loaded again, not served stale.
    """
    if settings.model is None:
        return None
    from .api import get_model

    path = Path(settings.model).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError:  # missing: get_model says so in a clear message
        return get_model(settings.model, ndim, settings.device)
    key = (str(path), stat.st_mtime_ns, stat.st_size, ndim, str(settings.device))
    if key not in _MODELS:
        _MODELS[key] = get_model(str(path), ndim, settings.device)
    return _MODELS[key]


def _model_ndim(settings: BatchSettings) -> int:
    return 3 if settings.mode == "3d" else 2


# ---------------------------------------------------------------------------------------------
# One stack -> zarr, incrementally


def segment_to_zarr(
    image,
    out_path: Path,
    settings: BatchSettings,
    *,
    overwrite: bool = False,
    segmenter: DEMSegmenter | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    source: str | os.PathLike[str] | None = None,
    file_scale: dict[str, float] | None = None,
) -> Path:
    """Segment a (lazy) array into the zarr array ``out_path``, one tile at a time.

    The output carries the provenance record (:func:`output_record`, ``source`` naming
    the input) and the pixel size (``settings.scale`` over ``file_scale``); a
    ``.ome.zarr`` output is an OME-Zarr 0.4 multiscale group with the labels at ``"0"``.

    The labels go into ``.NAME.part.zarr`` as they are computed and the directory is
    renamed to ``out_path`` when complete. Semantic labels are uint8 ``1..K``; with
    ``settings.instances`` the instances (uint32, 0 = background, ids unique across
    the stack) are computed frame by frame (:func:`~.core.refine.instances_per_frame`)
    from the written semantic labels. ``segmenter``: a fitted one to predict with.
    """

    from .api import objects_grey, semantic_labels
    from .core.layout import parse_axes
    from .core.refine import instances_per_frame
    from .core.segment import validate_image
    from .io import create_zarr, is_ome_zarr, set_zarr_record

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".zarr":
        raise InputError(f"segment_to_zarr writes .zarr, got {out_path.name}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass --overwrite to replace it")
    validate_image(image)
    layout = parse_axes(settings.axes, image.shape)
    shape, sem_tmp = layout.label_shape, _semantic_temp(out_path)
    label_axes, ome = layout.label_axes, is_ome_zarr(out_path)
    scale = label_scale(settings, layout.axes, file_scale)
    with atomic_path(out_path, temp_path(out_path)) as tmp:
        try:
            if settings.instances:
                sem = create_zarr(sem_tmp, shape, np.uint8)
            else:
                sem = create_zarr(tmp, shape, np.uint8, axes=label_axes, scale=scale, ome=ome)
            result = semantic_labels(
                image, layout.axes, segmenter=segmenter, out=sem, progress=progress, cancel=cancel,
                **_segmenter_settings(settings),
            )  # fmt: skip
            if settings.instances:
                bg = result.instance_background
                inst = create_zarr(tmp, shape, np.uint32, axes=label_axes, scale=scale, ome=ome)
                grey = objects_grey(image, layout.axes, None, result)
                instances_per_frame(
                    sem, result.axes, bg, out=inst, grey=grey, progress=progress, cancel=cancel
                )
            set_zarr_record(tmp, output_record(settings, result, scale, source))
        finally:
            remove_path(sem_tmp)
    return out_path


#: Files a shared mixture is fitted on at most (evenly spread over the inputs): the fit's sample
#: is bounded anyway, and encoding thousands of files twice would double a batch's time.
SHARED_FIT_FILES = 8


def fit_shared(
    inputs: list[Path],
    settings: BatchSettings,
    *,
    max_files: int = SHARED_FIT_FILES,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> DEMSegmenter:
    """One segmenter fitted on up to ``max_files`` of ``inputs`` (evenly spread), to label every
    input with the same classes: "one mixture for all files" (the CLI's ``--fit-on``)."""
    from .core.segmenter import DEMSegmenter
    from .io import open_image

    if not inputs:
        raise InputError("no files to fit one mixture on")
    picks = sorted({round(i * (len(inputs) - 1) / max(1, max_files - 1)) for i in range(max_files)})
    opened = [open_image(inputs[i], settings.level) for i in picks]
    segmenter = DEMSegmenter(**_segmenter_settings(settings))
    axes = [settings.axes or f.axes for f in opened]
    return segmenter.fit([f.data for f in opened], axes, progress=progress, cancel=cancel)


def _segmenter_settings(settings: BatchSettings) -> dict[str, object]:
    """:class:`DEMSegmenter`'s parameters from the settings (the model loaded once per process)."""
    return {
        "model": _model_for(settings, _model_ndim(settings)),
        "n_clusters": settings.n_clusters,
        "mode": settings.mode,
        "tile_size": settings.tile_size,
        "device": settings.device,
        "seed": settings.seed,
        "task": settings.task,
        "objects": settings.objects,
        "background": settings.background,
        "stain": settings.stain,
        "frames": settings.frames,
    }


# ---------------------------------------------------------------------------------------------
# One file: the task of a batch, and of the CLI's single file


def _n_pixels(shape) -> int:
    return int(math.prod(shape))


def streams_to_zarr(src: str | os.PathLike[str], data, out: str | os.PathLike[str]) -> bool:
    """Whether ``data`` (read from ``src``) goes to ``out`` tile by tile (:func:`segment_to_zarr`):
    a ``.zarr`` output of a ``.zarr`` input or of more than :data:`BIG_PIXELS` pixels."""
    big = Path(src).suffix.lower() == ".zarr" or _n_pixels(getattr(data, "shape", ())) > BIG_PIXELS
    return Path(out).suffix.lower() == ".zarr" and big


@dataclass
class FileResult:
    """What :func:`segment_file` wrote."""

    labels: object  #: the labels: in memory, or the written zarr array when streamed
    axes: str  #: axes of ``labels``
    n_clusters: int | None  #: K (None when streamed: the labels were never in memory)
    streamed: bool  #: written tile by tile (never whole in memory)
    decision: str = ""  #: what the fit chose (K, task, objects), one line


def segment_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: BatchSettings,
    *,
    image: tuple[object, str | None] | None = None,
    file_scale: dict[str, float] | None = None,
    segmenter: DEMSegmenter | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> FileResult:
    """Segment one image into ``out`` (replaced, atomically); raises on any problem.

    The image is read from ``src`` (with the axes and pixel size its metadata give)
    unless ``image`` = (array, axes) is given, with ``file_scale`` (the CLI, which has
    read it already). The output carries the provenance record and the pixel size. A big
    or ``.zarr`` stack going to ``.zarr`` streams tile by tile
    (:func:`streams_to_zarr`); anything else is segmented in memory and written whole.
    """
    from .api import segment_image
    from .io import open_image, write_array

    if image is not None:
        data, file_axes = image
    else:
        opened = open_image(src, settings.level)  # axes and pixel size from the file's metadata
        data, file_axes, file_scale = opened.data, opened.axes, opened.scale
    local = BatchSettings(**{**settings.__dict__, "axes": settings.axes or file_axes})
    if streams_to_zarr(src, data, out):
        segment_to_zarr(
            data, Path(out), local, overwrite=True, segmenter=segmenter, progress=progress, cancel=cancel,
            source=src, file_scale=file_scale,
        )  # fmt: skip
        labels = open_image(out).data
        return FileResult(labels, parse_axes(local.axes, data.shape).label_axes, None, True)
    label_axes = parse_axes(local.axes, data.shape).label_axes
    scale = label_scale(settings, label_axes, file_scale)
    result = segment_image(
        data,
        local.axes,
        segmenter=segmenter,
        model=_model_for(settings, _model_ndim(settings)),
        scale=scale,  # instances are split in physical distances on anisotropic stacks
        progress=progress,
        cancel=cancel,
        **settings.segment_kwargs(),
    )
    record = output_record(settings, result.semantic, scale, src)
    write_array(out, result.labels, overwrite=True, axes=result.axes, metadata=record, scale=scale)
    decision = result.semantic.decision.summary()
    return FileResult(result.labels, result.axes, result.semantic.n_clusters, False, decision)


def process_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: BatchSettings,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    segmenter: DEMSegmenter | None = None,
) -> tuple[str, str]:
    """Segment one file to ``out``: ``("done"|"skipped"|"failed", reason)``.

    Module-level and picklable: it is the task a dask cluster runs. Raises
    :class:`Cancelled` (after removing its temporary output) when cancelled.
    """
    src, out = Path(src), Path(out)
    if out.exists() and not overwrite:
        _remove_stale_temps(out)
        return "skipped", ""
    _on_worker_threads()
    try:
        _remove_stale_temps(out)
        segment_file(src, out, settings, segmenter=segmenter, progress=progress, cancel=cancel)
        return "done", ""
    except (Cancelled, KeyboardInterrupt):
        _remove_stale_temps(out)
        raise
    except Exception as exc:
        _remove_stale_temps(out)
        if not isinstance(exc, USER_ERRORS):  # a bug or a system failure: keep its traceback
            logging.getLogger("napari_dem").exception("segmenting %s failed", src)
        return "failed", _one_line(exc)


def _on_worker_threads() -> None:
    """On a dask worker, give torch the worker's threads (not every core of the machine)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import torch

    torch.set_num_threads(max(1, int(getattr(worker.state, "nthreads", 1))))


# ---------------------------------------------------------------------------------------------
# Many files


def batch_segment(
    inputs: list[Path],
    out_dir: Path,
    settings: BatchSettings,
    *,
    overwrite: bool = False,
    scheduler: str | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: CancelToken | None = None,
    file_progress: ProgressFn | None = None,
    segmenter: DEMSegmenter | None = None,
) -> BatchSummary:
    """Segment every input to ``out_dir/NAME_labels.EXT``; see the module docstring.

    ``progress(files_finished, n_files, message)`` reports the run as a whole;
    ``file_progress(done, total, message)`` the file being segmented (local runs only).
    On cancel the run stops (between files, and inside a file through the core's
    token), removes the unfinished temp and returns the summary with ``cancelled=True``.
    ``segmenter``: a fitted :class:`DEMSegmenter` that labels every file with the same
    classes (one mixture for all files) instead of one fit per file.
    """
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    fmt = settings.out_format if settings.out_format.startswith(".") else f".{settings.out_format}"
    if Path(f"x{fmt}").suffix.lower() not in IMAGE_SUFFIXES:  # .ome.zarr is a .zarr
        raise InputError(f"unsupported output type {fmt!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"the output must be a directory, and {out_dir} is a file")
    outputs = [output_path(p, out_dir, fmt) for p in inputs]
    if len(set(outputs)) != len(outputs):
        raise InputError("two inputs would write the same output name; give them distinct names")
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary()
    n = len(inputs)

    def record(i: int, src: Path, status: str, reason: str) -> None:
        if status == "done":
            summary.done.append(str(src))
        elif status == "skipped":
            summary.skipped.append(str(src))
        else:
            summary.failed.append((str(src), reason))
        if progress is not None:
            what = f"failed: {reason}" if status == "failed" else status
            progress(i, n, f"{src.name}: {what}")

    if scheduler:
        _run_distributed(inputs, outputs, settings, overwrite, scheduler, record, cancel, summary, segmenter)
        return summary
    for i, (src, out) in enumerate(zip(inputs, outputs, strict=True)):
        if cancel is not None and cancel.cancelled:
            summary.cancelled = True
            break
        if progress is not None:
            progress(i, n, f"{src.name}: segmenting")
        try:
            status, reason = process_file(src, out, settings, overwrite, file_progress, cancel, segmenter)
        except Cancelled:
            summary.cancelled = True
            break
        record(i + 1, src, status, reason)
    return summary


def _run_distributed(
    inputs, outputs, settings, overwrite, address, record, cancel, summary, segmenter
) -> None:
    from distributed import Client, as_completed

    with Client(address) as client:
        futures = {}
        for src, out in zip(inputs, outputs, strict=True):
            fut = client.submit(
                process_file, str(src), str(out), settings, overwrite, None, None, segmenter, pure=False
            )
            futures[fut] = src
        finished = 0
        for fut in as_completed(list(futures)):
            src = futures[fut]
            if cancel is not None and cancel.cancelled:
                summary.cancelled = True
                client.cancel(list(futures))
                break
            try:
                status, reason = fut.result()
            except Exception as exc:  # the task itself died (worker lost, unpicklable...)
                status, reason = "failed", _one_line(exc)
            finished += 1
            record(finished, src, status, reason)
    # Keep the summary in input order, whatever order the tasks finished in.
    order = {str(p): i for i, p in enumerate(inputs)}
    summary.done.sort(key=order.__getitem__)
    summary.skipped.sort(key=order.__getitem__)
    summary.failed.sort(key=lambda item: order[item[0]])

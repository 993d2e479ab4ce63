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
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .core.progress import Cancelled, CancelToken, ProgressFn, check_cancel
from .io import IMAGE_SUFFIXES

#: Inputs with more pixels than this (or .zarr inputs) are written incrementally when the output is .zarr.
BIG_PIXELS = 64 * 2**20
_STRIP_SUFFIXES = (".ome.tif", ".tiff", ".tif", ".npy", ".zarr", ".png")


@dataclass
class BatchSettings:
    n_clusters: int | None = None
    axes: str | None = None
    instances: bool = False
    background: str | int = "darkest"
    model: str | None = None
    mode: str = "auto"
    device: str = "auto"
    seed: int = 0
    tile_size: int | None = None  #: None: 512 in 2D, 128 in 3D
    out_format: str = ".tif"

    def segment_kwargs(self) -> dict[str, object]:
        """The keywords of :func:`napari_dem.api.segment_image` these settings stand for (model aside)."""
        return {
            "n_clusters": self.n_clusters,
            "instances": self.instances,
            "background": self.background,
            "mode": self.mode,
            "device": self.device,
            "seed": self.seed,
            "tile_size": self.tile_size,
        }


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
                raise ValueError(f"no {', '.join(IMAGE_SUFFIXES)} image in folder {p}")
            paths += found
        elif p.exists():
            paths.append(p)
        elif glob.has_magic(spec):
            found = sorted(Path(m) for m in glob.glob(spec) if _is_image(Path(m)))
            if not found:
                raise ValueError(f"no image matches {spec!r}")
            paths += found
        else:
            raise FileNotFoundError(f"no such file: {spec}")
    unique = list(dict.fromkeys(paths))
    if not unique:
        raise ValueError("no input images")
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
    """The temporary name ``out`` is written under: ``.NAME_labels.part.EXT`` beside it."""
    return out.parent / f".{out.stem}.part{out.suffix}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_stale_temps(out: Path) -> None:
    """Temps a killed run may have left for ``out`` (ours, and :func:`io.write_array`'s)."""
    _remove(temp_path(out))
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.part*"):
        _remove(stale)
    for stale in out.parent.glob(f".{glob.escape(out.stem)}.sem.part*"):
        _remove(stale)


def _finish(tmp: Path, out: Path) -> None:
    if out.exists():
        _remove(out)
    os.replace(tmp, out)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Models: load once per process (and per task on a cluster worker)

_MODELS: dict[tuple[str, int, str], object] = {}


def _model_for(settings: BatchSettings, ndim: int):
    """The settings' model file (cached per process), or None for the shipped default."""
    if settings.model is None:
        return None
    from .api import get_model

    key = (str(settings.model), ndim, str(settings.device))
    if key not in _MODELS:
        _MODELS[key] = get_model(settings.model, ndim, settings.device)
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
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Segment a (lazy) array into the zarr array ``out_path``, one tile at a time.

    The labels go into ``.NAME.part.zarr`` as they are computed and the directory is
    renamed to ``out_path`` when complete. Semantic labels are uint8 ``1..K``; with
    ``settings.instances`` the instances (uint32, 0 = background, ids unique across
    the stack) are computed frame by frame (one 2D slice, or one 3D volume in 3D mode)
    from the written semantic labels.
    """
    import zarr

    from .core.layout import parse_axes
    from .core.refine import background_id, instances_from_labels
    from .core.segment import segment, validate_image
    from .io import _chunks

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".zarr":
        raise ValueError(f"segment_to_zarr writes .zarr, got {out_path.name}")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass --overwrite to replace it")
    validate_image(image)
    layout = parse_axes(settings.axes, image.shape)
    if settings.n_clusters is not None:
        background_id(settings.background, settings.n_clusters)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out_path)
    sem_tmp = out_path.parent / f".{out_path.stem}.sem.part.zarr"
    _remove(tmp)
    _remove(sem_tmp)
    shape = layout.label_shape
    try:
        target = sem_tmp if settings.instances else tmp
        sem = zarr.open_array(str(target), mode="w", shape=shape, dtype=np.uint8, chunks=_chunks(shape))
        result = segment(
            image,
            layout.axes,
            model=_model_for(settings, _model_ndim(settings)),
            n_clusters=settings.n_clusters,
            mode=settings.mode,
            tile_size=settings.tile_size,
            device=settings.device,
            seed=settings.seed,
            out=sem,
            progress=progress,
            cancel=cancel,
        )
        if settings.instances:
            bg = background_id(settings.background, result.n_clusters)
            axes_l = result.axes
            spatial = "ZYX" if result.mode == "3d" else "YX"
            frame_axes = [i for i, a in enumerate(axes_l) if a not in spatial]
            inst = zarr.open_array(str(tmp), mode="w", shape=shape, dtype=np.uint32, chunks=_chunks(shape))
            offset = 0
            frames = list(np.ndindex(*[shape[i] for i in frame_axes])) or [()]
            for n, idx in enumerate(frames):
                check_cancel(cancel)
                index: list[object] = [slice(None)] * len(shape)
                for i, v in zip(frame_axes, idx, strict=True):
                    index[i] = v
                frame = np.asarray(sem[tuple(index)])
                lab = instances_from_labels(frame, bg, spatial_ndim=frame.ndim)
                lab = lab.astype(np.uint32)
                lab[lab > 0] += offset
                offset = max(offset, int(lab.max()))
                inst[tuple(index)] = lab
                if progress is not None:
                    progress(n + 1, len(frames), "instances")
            _remove(sem_tmp)
        _finish(tmp, out_path)
    except BaseException:
        _remove(tmp)
        _remove(sem_tmp)
        raise
    return out_path


# ---------------------------------------------------------------------------------------------
# One file


def _n_pixels(shape) -> int:
    return int(math.prod(shape))


def streams_to_zarr(src: str | os.PathLike[str], data, out: str | os.PathLike[str]) -> bool:
    """Whether ``data`` (read from ``src``) goes to ``out`` tile by tile (:func:`segment_to_zarr`):
    a ``.zarr`` output of a ``.zarr`` input or of more than :data:`BIG_PIXELS` pixels."""
    big = Path(src).suffix.lower() == ".zarr" or _n_pixels(getattr(data, "shape", ())) > BIG_PIXELS
    return Path(out).suffix.lower() == ".zarr" and big


def process_file(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    settings: BatchSettings,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
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
        from .api import segment_image
        from .io import read_image, write_array

        data, file_axes = read_image(src)
        settings_axes = settings.axes or file_axes
        if streams_to_zarr(src, data, out):
            local = BatchSettings(**{**settings.__dict__, "axes": settings_axes})
            segment_to_zarr(data, out, local, overwrite=True, progress=progress, cancel=cancel)
            return "done", ""
        result = segment_image(
            data,
            settings_axes,
            model=_model_for(settings, _model_ndim(settings)),
            progress=progress,
            cancel=cancel,
            **settings.segment_kwargs(),
        )
        tmp = temp_path(out)
        write_array(tmp, result.labels, overwrite=True, axes=result.axes)
        _finish(tmp, out)
        return "done", ""
    except (Cancelled, KeyboardInterrupt):
        _remove_stale_temps(out)
        raise
    except Exception as exc:
        _remove_stale_temps(out)
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
) -> BatchSummary:
    """Segment every input to ``out_dir/NAME_labels.EXT``; see the module docstring.

    ``progress(files_finished, n_files, message)`` reports the run as a whole;
    ``file_progress(done, total, message)`` the file being segmented (local runs only).
    On cancel the run stops (between files, and inside a file through the core's
    token), removes the unfinished temp and returns the summary with ``cancelled=True``.
    """
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    fmt = settings.out_format if settings.out_format.startswith(".") else f".{settings.out_format}"
    if fmt.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"unsupported output type {fmt!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"the output must be a directory, and {out_dir} is a file")
    outputs = [output_path(p, out_dir, fmt) for p in inputs]
    if len(set(outputs)) != len(outputs):
        raise ValueError("two inputs would write the same output name; give them distinct names")
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
        _run_distributed(inputs, outputs, settings, overwrite, scheduler, record, cancel, summary)
        return summary
    for i, (src, out) in enumerate(zip(inputs, outputs, strict=True)):
        if cancel is not None and cancel.cancelled:
            summary.cancelled = True
            break
        if progress is not None:
            progress(i, n, f"{src.name}: segmenting")
        try:
            status, reason = process_file(src, out, settings, overwrite, file_progress, cancel)
        except Cancelled:
            summary.cancelled = True
            break
        record(i + 1, src, status, reason)
    return summary


def _run_distributed(inputs, outputs, settings, overwrite, address, record, cancel, summary) -> None:
    from distributed import Client, as_completed

    with Client(address) as client:
        futures = {}
        for src, out in zip(inputs, outputs, strict=True):
            fut = client.submit(process_file, str(src), str(out), settings, overwrite, pure=False)
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

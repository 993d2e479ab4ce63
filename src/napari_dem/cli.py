"""``napari-dem``: the command line face of the core (segment, fine-tune).

Contract: progress goes to stderr; a bad input ends the run with a non-zero exit
code and a one-line reason (``napari-dem: error: ...``); outputs are written under
a temporary name and renamed when complete; an existing output is refused unless
``--overwrite``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .core.decide import TASKS
from .core.errors import InputError
from .core.frames import FRAME_CHOICES
from .core.stains import STAIN_CHOICES

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class CliError(InputError):
    """A problem to report in one line and exit with :data:`EXIT_BAD_INPUT`."""


def _clusters(text: str) -> int | None:
    """``--clusters``: ``auto`` (None) or an integer K >= 2."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"K must be auto or an integer, got {text!r}") from exc
    return value


def _positive(name: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from exc
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {value}")
        return value

    return parse


def _scale(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"scale must be numbers separated by commas, got {text!r}") from exc
    if any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"pixel sizes must be > 0, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-dem",
        description="Unsupervised segmentation with Deep Expectation-Maximization (DEM).",
    )
    parser.add_argument("--version", action="version", version=f"napari-dem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_segment_parser(sub)
    _add_fine_tune_parser(sub)
    _add_cluster_parser(sub)
    return parser


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also write the log (tracebacks of unexpected errors included) to stderr",
    )
    return common


def _add_segment_parser(sub) -> None:
    seg = sub.add_parser(
        "segment", help="segment images into K clusters (or instances)", parents=[_common_options()]
    )
    seg.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=".tif/.tiff, .npy, .zarr or .png image(s), folders, glob patterns ('data/*.tif'), "
        "or 'sample:nuclei2d'",
    )
    seg.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output file, or a directory for several inputs"
    )
    seg.add_argument(
        "--clusters",
        type=_clusters,
        default=None,
        metavar="K",
        help="number of clusters K, or auto (default: auto, the intensity modes of the image; "
        "objects get one more cluster for dim objects when that keeps them compact)",
    )
    seg.add_argument(
        "--axes",
        default=None,
        help="axes of the input, e.g. YX, YXC, ZYX, TYX, TZYX, CZYX (default: from file or guessed)",
    )
    seg.add_argument(
        "--scale",
        type=_scale,
        default=None,
        metavar="Z,Y,X",
        help="pixel size of the spatial axes, e.g. 2,0.5,0.5 for ZYX or 0.5 for all; recorded in the "
        "output (default: from the file's metadata, else none: --instances then reads a Z step "
        "off the objects' shape)",
    )
    seg.add_argument(
        "--level",
        type=int,
        default=0,
        help="OME-Zarr input: the resolution level to segment (default 0, the highest resolution)",
    )
    seg.add_argument(
        "--task",
        default="auto",
        choices=TASKS,
        help="objects (0 = background, 1 = objects), classes (1..K by intensity; regions of one "
        "brightness that differ in grain: 1..K from smooth to rough), or auto (default: objects "
        "when the image shows compact islands on a background, else classes)",
    )
    seg.add_argument(
        "--objects",
        default=None,
        metavar="WHICH",
        help="which clusters are objects: brightest, darkest or ids like 2,3 (default: chosen from "
        "the image, both polarities)",
    )
    seg.add_argument(
        "--background",
        default=None,
        metavar="WHICH",
        help="the same choice from the other side: darkest, brightest or ids (give --objects or this)",
    )
    seg.add_argument(
        "--stain",
        default="auto",
        choices=STAIN_CHOICES,
        help="auto (default): an RGB image of a stained slide (H&E, IHC) is read by its haematoxylin, "
        "the nuclear stain; none: by the mean of its channels, as any image",
    )
    seg.add_argument(
        "--frames",
        default="auto",
        choices=FRAME_CHOICES,
        help="auto (default): the frames of a time-lapse (axes with T) whose brightness differs "
        "(photobleaching, a reporter turning on) are brought to one brightness; none: read as they are",
    )
    seg.add_argument(
        "--instances",
        action="store_true",
        help="split the objects into separate instances (for classes: every class but the darkest)",
    )
    seg.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "2d", "3d"),
        help="2D per slice or 3D convolutions (default auto)",
    )
    _add_segment_compute_options(seg)
    _add_segment_output_options(seg)


def _add_segment_compute_options(seg: argparse.ArgumentParser) -> None:
    """Which model runs where, and how the work is cut."""
    seg.add_argument("--model", default=None, metavar="PATH", help="model file (default: the shipped model)")
    seg.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    seg.add_argument("--seed", type=int, default=0, help="seed of the mixture initialisation (default 0)")
    seg.add_argument(
        "--tile-size",
        type=_positive("tile size"),
        default=None,
        help="tile side in pixels (default 512 in 2D, 128 in 3D)",
    )


def _add_segment_output_options(seg: argparse.ArgumentParser) -> None:
    """Where and how ``segment`` writes, and what it fits on."""
    seg.add_argument(
        "--format",
        default=None,
        choices=(".tif", ".tiff", ".npy", ".zarr", ".ome.zarr", ".png"),
        help="output type when OUT is a directory (default .tif; .ome.zarr: OME-Zarr 0.4)",
    )
    seg.add_argument(
        "--overlay",
        default=None,
        metavar="PNG",
        help="also write a PNG overlay of labels on the image (one input)",
    )
    seg.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing outputs (in a batch, finished outputs are otherwise skipped)",
    )
    seg.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the batch on a dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 "
        "(default: local threads)",
    )
    seg.add_argument(
        "--fit-on",
        nargs="+",
        default=None,
        metavar="FILE",
        help="fit the normalisation and the mixture on these images (files, folders, patterns) "
        "and label every input with it, so a label means the same class in all outputs "
        "(default: each input is fitted on itself); put it after the inputs",
    )
    seg.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


def _add_fine_tune_parser(sub) -> None:
    ft = sub.add_parser(
        "fine-tune", help="adapt a model to your images, without labels", parents=[_common_options()]
    )
    ft.add_argument("inputs", nargs="+", metavar="INPUT", help="training image(s)")
    ft.add_argument(
        "-o", "--output", required=True, metavar="MODEL", help="where to write the fine-tuned model (.pt)"
    )
    ft.add_argument("--steps", type=_positive("steps"), default=100, help="training steps (default 100)")
    ft.add_argument(
        "--model", default=None, metavar="START", help="model to start from (default: the shipped model)"
    )
    ft.add_argument("--axes", default=None, help="axes of the inputs (default: from file or guessed)")
    ft.add_argument(
        "--mode",
        default="auto",
        choices=("auto", "2d", "3d"),
        help="train a 2D or 3D model (default: from the start model, else auto)",
    )
    ft.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    ft.add_argument(
        "--patch-size",
        type=_positive("patch size"),
        default=None,
        help="training patch side (default 96 in 2D, 32 in 3D)",
    )
    ft.add_argument(
        "--batch-size",
        type=_positive("batch size"),
        default=None,
        help="patches per step (default 8 in 2D, 4 in 3D)",
    )
    ft.add_argument(
        "--no-augment", action="store_true", help="switch off flips, rotations and intensity jitter"
    )
    ft.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default auto)")
    ft.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    ft.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")

    info = sub.add_parser(
        "info", help="print how a label file was made (its provenance record)", parents=[_common_options()]
    )
    info.add_argument("file", metavar="FILE", help="a .tif/.tiff or .zarr file written by napari-dem")
    info.add_argument("--json", action="store_true", help="print the record as JSON")


def _add_cluster_parser(sub) -> None:
    cl = sub.add_parser(
        "cluster",
        help="group the images or volumes of a stack or folder into K clusters",
        parents=[_common_options()],
    )
    cl.add_argument(
        "input",
        metavar="INPUT",
        help="a stack (.npy/.tif, first axis = items) or a folder of images and/or volumes",
    )
    cl.add_argument(
        "-o", "--output", required=True, metavar="OUT", help="output CSV (index,cluster,confidence)"
    )
    cl.add_argument("--clusters", type=int, required=True, metavar="K", help="number of clusters K (>= 2)")
    cl.add_argument(
        "--method",
        default="gedi",
        choices=("gedi", "dem", "joint", "depict", "nmm"),
        help="objective (default gedi; joint also clusters a mix of 2D images and 3D volumes)",
    )
    cl.add_argument(
        "--axes",
        choices=("NYX", "NYXC", "NZYX"),
        help="axes of a stack: images, colour images or volumes (default: NYX for 3D; a 4D stack "
        "is NZYX volumes unless its last axis has 3 or 4 entries)",
    )
    cl.add_argument(
        "--steps",
        type=_positive("steps"),
        default=None,
        help="step cap (default 600); training stops earlier once fewer than 0.5 %% of the items "
        "change cluster between two checks 100 steps apart",
    )
    cl.add_argument(
        "--size", type=_positive("size"), default=28, help="model input side in pixels (default 28)"
    )
    cl.add_argument(
        "--no-align",
        action="store_true",
        help="volumes as they are: by default each is turned to its object's principal axes and "
        "scaled to its extent (one object per volume); use this for whole 3D scenes",
    )
    cl.add_argument(
        "--scale",
        type=_scale,
        default=None,
        metavar="Z,Y,X",
        help="voxel size of the volumes, e.g. 2,0.5,0.5, for their pose (default: cubic voxels)",
    )
    cl.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    cl.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    cl.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    cl.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")


_CLUSTER_SUFFIXES = {".tif", ".tiff", ".npy", ".png"}


def _load_cluster_input(spec: str) -> tuple[list[np.ndarray] | np.ndarray, list[str] | None]:
    from .io import read_image

    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {spec}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _CLUSTER_SUFFIXES)
        if not files:
            raise CliError(f"no images in folder {spec}")
        return [np.asarray(read_image(f)[0]) for f in files], [f.name for f in files]
    data = np.asarray(read_image(path)[0])
    if data.ndim < 3 or data.shape[0] == 0:
        raise CliError(f"{spec}: expected a stack with images along the first axis, got shape {data.shape}")
    return data, None


def cmd_cluster(args: argparse.Namespace) -> int:
    import csv

    from .core.cluster import cluster_images, guess_axes, prepare_images
    from .core.progress import StderrProgress
    from .io import atomic_path
    from .provenance import resolve_scale, scale_tuple

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise CliError(f"{out} already exists; pass --overwrite to replace it")
    if args.clusters < 2:
        raise CliError(f"--clusters must be >= 2, got {args.clusters}")
    stack, names = _load_cluster_input(args.input)
    if args.axes and not isinstance(stack, np.ndarray):
        raise CliError("--axes applies to a single stack file, not to a folder")
    if isinstance(stack, np.ndarray):
        axes = args.axes or guess_axes(stack.ndim, stack.shape)
        if len(axes) != stack.ndim:
            raise CliError(f"--axes {axes} does not fit the stack's shape {stack.shape}")
    try:
        # the project's one scale rule: one value for all axes, else one per spatial axis
        spacing = scale_tuple(resolve_scale("ZYX", explicit=args.scale), "ZYX")
        images, notes = prepare_images(
            stack, args.size, axes=args.axes, align=not args.no_align, spacing=spacing
        )
    except ValueError as exc:  # prepare_images only checks the images: a bad input
        raise CliError(str(exc)) from exc
    if args.clusters > len(images):
        raise CliError(
            f"cannot split {len(images)} items into {args.clusters} clusters (K > number of items)"
        )
    for note in notes:
        print(f"napari-dem: note: {note}", file=sys.stderr)
    progress = None if args.quiet else StderrProgress("cluster: ")
    result = cluster_images(
        images, args.clusters, method=args.method, steps=args.steps, seed=args.seed,
        device=args.device, progress=progress,
    )  # fmt: skip
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["index", "cluster", "confidence"] + (["file"] if names else []))
        for i, (lab, conf) in enumerate(zip(result.labels, result.confidence, strict=True)):
            writer.writerow([i, int(lab), f"{float(conf):.4f}"] + ([names[i]] if names else []))
    if not args.quiet:
        sizes = np.bincount(result.labels, minlength=args.clusters + 1)[1:]
        print(f"napari-dem: {args.method}: {result.steps} steps, {result.stop_reason}", file=sys.stderr)
        print(f"saved {out}: {len(result.labels)} items, cluster sizes {sizes.tolist()}", file=sys.stderr)
    return 0


def _load_input(spec: str, axes: str | None, level: int = 0):
    """``(data, axes, name, file_scale)``: the image, its axes (given, else the file's),
    a name for messages and the pixel size the file records (or None)."""
    from .io import open_image

    if spec.startswith("sample:"):
        from ._sample_data import SAMPLES

        name = spec.split(":", 1)[1]
        if name not in SAMPLES:
            raise CliError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
        data, sample_axes = SAMPLES[name]()
        return data, axes or sample_axes, name, None
    image = open_image(spec, level)
    return image.data, axes or image.axes, Path(spec).name, image.scale


def _output_paths(inputs: list[str], output: str, fmt: str | None) -> list[Path]:
    out = Path(output)
    if len(inputs) == 1 and out.suffix:
        return [out]
    if out.exists() and not out.is_dir():
        raise CliError(f"OUT must be a directory when several inputs are given, and {out} is a file")
    from .batch import output_path

    names = [
        output_path(Path(spec.split(":", 1)[1] if spec.startswith("sample:") else spec), out, fmt or ".tif")
        for spec in inputs
    ]
    if len(set(names)) != len(names):
        raise CliError("two inputs would write the same output name; give them distinct names")
    return names


def _settings_from_args(args: argparse.Namespace):
    """The ``segment`` options as :class:`~napari_dem.batch.BatchSettings`, for one file or a batch."""
    from .batch import BatchSettings

    return BatchSettings(
        n_clusters=args.clusters,
        axes=args.axes,
        instances=args.instances,
        task=args.task,
        objects=args.objects,
        background=args.background,
        stain=args.stain,
        frames=args.frames,
        model=args.model,
        mode=args.mode,
        device=args.device,
        seed=args.seed,
        tile_size=args.tile_size,
        out_format=args.format or ".tif",
        scale=args.scale,
        level=args.level,
        record={"command": args.command_line} if getattr(args, "command_line", None) else None,
    )


def _is_batch(args: argparse.Namespace) -> bool:
    """Several inputs, a folder, a glob pattern or a scheduler: the resumable batch path."""
    if len(args.inputs) > 1 or args.scheduler:
        return True
    spec = args.inputs[0]
    if spec.startswith("sample:"):
        return False
    path = Path(spec)
    if path.is_dir() and path.suffix.lower() != ".zarr":
        return True
    import glob

    return not path.exists() and glob.has_magic(spec)


def cmd_batch(args: argparse.Namespace) -> int:
    """The batch path: resumable, one line per file, a summary; exit 1 when a file failed."""
    from .batch import _model_for, _model_ndim, batch_segment, expand_inputs
    from .core.progress import StderrProgress

    if any(spec.startswith("sample:") for spec in args.inputs):
        raise CliError("sample: inputs are segmented one at a time, not in a batch")
    if args.overlay:
        raise CliError("--overlay needs exactly one input")
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"OUT must be a directory for a batch, and {out_dir} is a file")
    inputs = expand_inputs(args.inputs)
    settings = _settings_from_args(args)
    if settings.model is not None and not args.scheduler:
        _model_for(settings, _model_ndim(settings))  # a bad model file is a bad argument (exit 2)
    segmenter = _fitted_segmenter(args)
    state = {"bar": None, "t0": time.perf_counter()}

    def progress(done: int, total: int, message: str) -> None:
        if args.quiet:
            return
        name, _, what = message.partition(": ")
        if what == "segmenting":
            state["bar"] = StderrProgress(f"[{done + 1}/{total}] {name}: ")
            state["t0"] = time.perf_counter()
        else:
            took = (
                f" ({time.perf_counter() - state['t0']:.1f} s)"
                if what == "done" and not args.scheduler
                else ""
            )
            print(f"[{done}/{total}] {name}: {what}{took}", file=sys.stderr)

    def file_progress(done: int, total: int, message: str) -> None:
        if state["bar"] is not None:
            state["bar"](done, total, message)

    summary = batch_segment(
        inputs,
        out_dir,
        settings,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        progress=progress,
        file_progress=None if args.quiet else file_progress,
        segmenter=segmenter,
    )
    for src, reason in summary.failed:
        print(f"napari-dem: {src}: failed: {reason}", file=sys.stderr)
    if summary.failed:
        from ._logging import log_file

        print(f"napari-dem: tracebacks of unexpected failures are in {log_file()}", file=sys.stderr)
    print(
        f"napari-dem: {len(summary.done)} done, {len(summary.skipped)} skipped, {len(summary.failed)} failed",
        file=sys.stderr,
    )
    return EXIT_FAILED if summary.failed else 0


def _fitted_segmenter(args: argparse.Namespace):
    """With ``--fit-on FILE...``: one segmenter fitted on those images, to label every input
    with the same classes; else None (each input gets its own fit)."""
    if not args.fit_on:
        return None
    from .batch import expand_inputs
    from .core.progress import StderrProgress
    from .core.segmenter import DEMSegmenter

    samples = [s for s in args.fit_on if s.startswith("sample:")]
    files = [s for s in args.fit_on if not s.startswith("sample:")]
    specs = samples + ([str(p) for p in expand_inputs(files)] if files else [])
    loaded = [_load_input(spec, args.axes)[:3] for spec in specs]
    segmenter = DEMSegmenter(
        model=args.model,
        n_clusters=args.clusters,
        mode=args.mode,
        tile_size=args.tile_size,
        device=args.device,
        seed=args.seed,
        task=args.task,
        objects=args.objects,
        background=args.background,
        stain=args.stain,
        frames=args.frames,
    )
    progress = None if args.quiet else StderrProgress("fit: ")
    segmenter.fit([d for d, _, _ in loaded], [a for _, a, _ in loaded], progress=progress)
    if not args.quiet:
        names = ", ".join(name for _, _, name in loaded)
        print(f"fitted on {names}: {segmenter.decision_.summary()}", file=sys.stderr)
    return segmenter


def cmd_segment(args: argparse.Namespace) -> int:
    from .batch import segment_file
    from .core.decide import parse_objects
    from .core.progress import StderrProgress
    from .io import check_writable, overlay_rgb, plane_for_overlay, write_array

    parse_objects(args.objects, args.background)  # both given, or a bad id list: one line, exit 2
    if args.clusters is not None and args.clusters < 2:
        raise CliError(f"--clusters must be at least 2 (or auto), got {args.clusters}")
    if _is_batch(args):
        return cmd_batch(args)
    (out_path,) = _output_paths(args.inputs, args.output, args.format)
    check_writable(out_path, args.overwrite)
    if args.overlay:
        check_writable(args.overlay, args.overwrite)
    segmenter = _fitted_segmenter(args)
    t0 = time.perf_counter()
    spec = args.inputs[0]
    data, axes, name, file_scale = _load_input(spec, args.axes, args.level)
    progress = None if args.quiet else StderrProgress(f"{name}: ")
    settings = dataclasses.replace(_settings_from_args(args), axes=axes)
    written = segment_file(
        spec,
        out_path,
        settings,
        image=(data, axes),
        file_scale=file_scale,
        segmenter=segmenter,
        progress=progress,
    )
    if args.overlay:
        from .core.layout import parse_axes

        img_axes = parse_axes(axes, data.shape).axes
        img, lab = plane_for_overlay(data, written.labels, img_axes, written.axes)
        write_array(args.overlay, overlay_rgb(img, lab), overwrite=args.overwrite)
    if not args.quiet:
        took = f"({time.perf_counter() - t0:.1f} s)"
        if written.streamed:
            print(f"{name}: written tile by tile -> {out_path} {took}", file=sys.stderr)
        else:
            n = int(written.labels.max())
            what = f"{n} objects" if args.instances or n == 0 else f"{written.n_clusters} clusters"
            print(f"{name}: {what} -> {out_path} {took}; {written.decision}", file=sys.stderr)
    return 0


def fine_tune_settings(args: argparse.Namespace, ndim: int):
    """``fine-tune``'s options as :class:`~napari_dem.core.train.TrainSettings` for a ``ndim`` model
    (patch and batch size default per dimension); benchmarks read the CLI's defaults through it."""
    from .core.train import TrainSettings

    return TrainSettings(
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        patch_size=args.patch_size or (96 if ndim == 2 else 32),
        batch_size=args.batch_size or (8 if ndim == 2 else 4),
        flips=not args.no_augment,
        rotations=not args.no_augment,
        intensity_jitter=0.0 if args.no_augment else 0.2,
    )


def cmd_fine_tune(args: argparse.Namespace) -> int:
    from .api import get_model
    from .core.layout import parse_axes
    from .core.model import save_model
    from .core.segment import choose_mode
    from .core.train import fine_tune, training_units

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise CliError(f"{out} already exists; pass --overwrite to replace it")
    images = [_load_input(spec, args.axes)[:3] for spec in args.inputs]
    start = None
    if args.model is not None:
        start = get_model(args.model, 2, "cpu")
    first, axes0, _ = images[0]
    mode = choose_mode(parse_axes(axes0, first.shape), args.mode, start)
    ndim = 3 if mode == "3d" else 2
    model = start or get_model(None, ndim, "cpu")
    units = []
    for data, axes, _ in images:
        units += training_units(np.asarray(data), axes, ndim)
    settings = fine_tune_settings(args, ndim)
    t0 = time.perf_counter()

    def progress(rec):
        if not args.quiet and (rec.step % 10 == 0 or rec.step == rec.total):
            losses = " ".join(f"{k}={v:.4f}" for k, v in rec.losses.items())
            print(f"step {rec.step}/{rec.total} {losses} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    history = fine_tune(model, units, settings, device=args.device, progress=progress)
    save_model(
        model,
        out,
        training_images=[f"{name} {tuple(data.shape)}" for data, _, name in images],
        training_steps=args.steps,
        best_step=history.best_step,
        seed=args.seed,
        fine_tuned_from=str(args.model or "default"),
    )
    if not args.quiet:
        print(f"saved {out} (best step {history.best_step})", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print the provenance record a napari-dem output carries (and its shape, axes, scale)."""
    import json

    from .io import read_image, read_record
    from .provenance import format_record

    data, axes = read_image(args.file)
    record = read_record(args.file)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0 if record is not None else EXIT_FAILED
    print(f"file: {args.file}")
    print(f"shape: {tuple(data.shape)} {data.dtype}, axes: {axes or '(not recorded)'}")
    if record is None:
        print("napari-dem: this file carries no napari-dem record", file=sys.stderr)
        return EXIT_FAILED
    print(format_record(record))
    return 0


def _run(args: argparse.Namespace) -> int:
    if args.command == "segment":
        return cmd_segment(args)
    if args.command == "cluster":
        return cmd_cluster(args)
    if args.command == "info":
        return cmd_info(args)
    return cmd_fine_tune(args)


def main(argv: list[str] | None = None) -> int:
    """Run a command. Exit codes: 0 success; 2 a problem the user can fix (one line);
    1 anything else (a failed file in a batch, a bug, a torch error): one line here, the
    traceback in the log file whose path is printed; 130 interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._logging import LogSession, logger
    from .core.errors import USER_ERRORS
    from .provenance import command_line

    args.command_line = command_line(argv)
    log = LogSession(verbose=args.verbose)
    logger.debug(
        "napari-dem %s: %s", __version__, " ".join(sys.argv if argv is None else ["napari-dem", *argv])
    )
    try:
        return _run(args)
    except USER_ERRORS as exc:
        logger.info("bad input: %s", exc)
        print(f"napari-dem: error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("napari-dem: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except Exception as exc:
        logger.exception("napari-dem %s failed", args.command)
        print(
            f"napari-dem: error: {type(exc).__name__}: {_first_line(exc)} (unexpected; "
            f"the traceback is in {log.where()})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        log.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def console() -> None:
    """The ``napari-dem`` command: :func:`main`, then exit at once with its code.

    Why not ``sys.exit``: a normal interpreter exit tears torch down (its libraries and
    thread pools), which took 0.3-0.5 s of every command here, a tenth of a default run on
    a 2048x2048 image. By then every output is written and closed and the log session is
    closed (:func:`main`), so only the standard streams are left to flush.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()

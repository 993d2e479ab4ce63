"""Reading images and writing label files: .tif/.tiff, .npy, .zarr, .png.

Writes are atomic: the data go to a temporary name beside the target, which is
renamed only when complete, so an interrupted run never leaves a file that looks
finished. An existing output is refused unless ``overwrite`` is set.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .core.errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr", ".png")


def suffix_of(path: str | os.PathLike[str]) -> str:
    s = Path(path).suffix.lower()
    if s not in IMAGE_SUFFIXES:
        raise InputError(
            f"unsupported file type {s or '(none)'!r} for {path}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    return s


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, str | None]:
    """The image at ``path`` and the axes its format records (or None).

    ``.npy`` is memory-mapped and ``.zarr`` opened lazily, so large files are not
    read whole here.
    """
    path = Path(path)
    suffix = suffix_of(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                axes = series.axes.upper().replace("S", "C")
                data = series.asarray()
            return data, axes if set(axes) <= set("TZCYX") and len(set(axes)) == len(axes) else None
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None
        if suffix == ".zarr":
            import zarr

            node = zarr.open(str(path), mode="r")
            if hasattr(node, "shape"):
                return node, None
            arrays = sorted(name for name, _ in node.arrays())
            if not arrays:
                raise InputError("the zarr group holds no array")
            return node[arrays[0]], None  # multiscale: "0" is the full resolution
        from skimage import io as skio

        data = skio.imread(path)
        return data, "YXC" if data.ndim == 3 else None
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def _temp_sibling(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part" + path.suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    return Path(tmp)


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove a file, a link or a directory tree (a .zarr), if there is one."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike[str], tmp: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed to ``path`` only if the block succeeds.

    The one atomic write of the package: an interrupted or failed write (any exception,
    a cancel, Ctrl+C) removes the temporary and leaves no file that looks finished.
    ``tmp`` names the temporary (default: a unique dot-prefixed ``.part`` name), for
    callers that must find stale ones later. An existing ``path`` (file or directory)
    is replaced.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tmp) if tmp is not None else _temp_sibling(path)
    remove_path(tmp)
    try:
        yield tmp
        if path.exists() or path.is_symlink():
            remove_path(path)  # os.replace cannot replace a directory (a .zarr)
        os.replace(tmp, path)
    finally:
        remove_path(tmp)


def check_writable(path: str | os.PathLike[str], overwrite: bool) -> Path:
    path = Path(path)
    suffix_of(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass --overwrite to replace it")
    return path


def write_array(
    path: str | os.PathLike[str], data: np.ndarray, *, overwrite: bool = False, axes: str | None = None
) -> Path:
    """Write ``data`` to ``path`` (format from the suffix), atomically."""
    path = check_writable(path, overwrite)
    suffix = suffix_of(path)
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            import tifffile

            meta = {"axes": axes} if axes else None
            tifffile.imwrite(tmp, data, compression="zlib", metadata=meta)
        elif suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(data), allow_pickle=False)
        elif suffix == ".zarr":
            import zarr

            arr = zarr.open_array(
                str(tmp), mode="w", shape=data.shape, dtype=data.dtype, chunks=_chunks(data.shape)
            )
            arr[...] = np.asarray(data)
        else:
            if data.ndim != 2 and not (data.ndim == 3 and data.shape[-1] in (3, 4)):
                raise InputError(
                    f"PNG holds a 2D image, but the result has shape {data.shape}; use .tif, .npy or .zarr"
                )
            from skimage import io as skio

            out = data if data.dtype in (np.uint8, np.uint16) else data.astype(np.uint16)
            skio.imsave(tmp, out, check_contrast=False)
    return path


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of one plane (or at most 1024 x 1024 of it) for label images."""
    return tuple([1] * (len(shape) - 2) + [min(s, 1024) for s in shape[-2:]])


def overlay_rgb(image: np.ndarray, labels: np.ndarray, alpha: float = 0.35) -> np.ndarray:
    """uint8 RGB picture: the image in grey with coloured label boundaries and a light fill."""
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries

    from .core.intensity import to_grey

    img = np.asarray(image)
    img = to_grey(img) if img.ndim == 3 and img.shape[-1] in (3, 4) else img.astype(np.float32)
    lo, hi = np.percentile(img, [1, 99.8])
    gray = np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)
    rgb = label2rgb(labels, image=gray, alpha=alpha, bg_label=0, image_alpha=1.0, kind="overlay")
    edges = find_boundaries(labels, mode="inner") & (labels > 0)
    rgb[edges] = label2rgb(labels, bg_label=0)[edges]
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def plane_for_overlay(
    image: np.ndarray, labels: np.ndarray, image_axes: str, label_axes: str
) -> tuple[np.ndarray, np.ndarray]:
    """The middle YX plane of a stack (first frame), with channels kept last, for a PNG overlay."""
    img_index = tuple(
        slice(None) if a in "YXC" else image.shape[i] // 2 if a == "Z" else 0
        for i, a in enumerate(image_axes)
    )
    img = np.asarray(image[img_index])
    kept = [a for a in image_axes if a in "YXC"]
    img = np.transpose(img, [kept.index(a) for a in "YXC" if a in kept])
    lab_index = tuple(
        slice(None) if a in "YX" else labels.shape[i] // 2 if a == "Z" else 0
        for i, a in enumerate(label_axes)
    )
    return img, np.asarray(labels[lab_index])

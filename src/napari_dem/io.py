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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .core.errors import InputError
from .provenance import RECORD_KEY

IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr", ".png")


def suffix_of(path: str | os.PathLike[str]) -> str:
    s = Path(path).suffix.lower()
    if s not in IMAGE_SUFFIXES:
        raise InputError(
            f"unsupported file type {s or '(none)'!r} for {path}; use one of {', '.join(IMAGE_SUFFIXES)}"
        )
    return s


@dataclass
class ImageFile:
    """An image as read from a file, with what its metadata say about it."""

    data: Any  #: numpy array, memory map or lazy zarr array
    axes: str | None  #: ``TZCYX`` letters the file records, or None
    scale: dict[str, float] | None = None  #: pixel size per axis letter the file records


def read_image(path: str | os.PathLike[str]) -> tuple[np.ndarray, str | None]:
    """The image at ``path`` and the axes its format records (or None); see :func:`open_image`."""
    image = open_image(path)
    return image.data, image.axes


def open_image(path: str | os.PathLike[str], level: int = 0) -> ImageFile:
    """The image at ``path`` with the axes and pixel size its metadata record.

    ``.npy`` is memory-mapped and ``.zarr`` opened lazily, so large files are not read
    whole here. An OME-Zarr (NGFF 0.4 on zarr v2, 0.5 on zarr v3) gives its axes and
    scale from the multiscale metadata; ``level`` picks the resolution level (0, the
    default, is the highest resolution). TIFF gives napari-dem's own record, ImageJ
    metadata (``spacing``, resolution) or centimetre resolution tags (as micrometres).
    """
    path = Path(path)
    suffix = suffix_of(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        if suffix in (".tif", ".tiff"):
            return _open_tiff(path)
        if suffix == ".npy":
            return ImageFile(np.load(path, mmap_mode="r", allow_pickle=False), None)
        if suffix == ".zarr":
            return _open_zarr(path, level)
        from skimage import io as skio

        data = skio.imread(path)
        return ImageFile(data, "YXC" if data.ndim == 3 else None)
    except (FileNotFoundError, ValueError):
        raise
    except Exception as exc:
        raise InputError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc


def _valid_axes(axes: str | None, ndim: int) -> str | None:
    if not axes:
        return None
    axes = axes.upper().replace("S", "C")
    ok = set(axes) <= set("TZCYX") and len(set(axes)) == len(axes) == ndim
    return axes if ok else None


def _open_tiff(path: Path) -> ImageFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = _valid_axes(series.axes, data.ndim)
        shaped = tif.shaped_metadata[0] if tif.shaped_metadata else {}
        page = tif.pages[0]
        if shaped.get("scale") is not None and axes and len(shaped["scale"]) == len(axes):
            return ImageFile(data, axes, {a: float(v) for a, v in zip(axes, shaped["scale"], strict=True)})
        scale: dict[str, float] = {}
        x_res, y_res = page.resolution if page.resolution else (0, 0)
        per_unit = None
        if tif.is_imagej:
            ij = tif.imagej_metadata or {}
            per_unit = 1.0 if ij.get("unit") else None  # pixels per ImageJ unit (microns, usually)
            spacing = ij.get("spacing")
            if spacing and axes and "Z" in axes:
                scale["Z"] = float(spacing)
        elif int(page.resolutionunit) == 3:  # centimetre
            per_unit = 1e4
        if per_unit and x_res and y_res:
            scale.update({"Y": per_unit / y_res, "X": per_unit / x_res})
    return ImageFile(data, axes, scale or None)


#: NGFF axis name (or type) -> napari-dem axis letter.
_NGFF_LETTERS = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X", "time": "T", "channel": "C"}


def _ngff_letter(axis: str | dict) -> str:
    """``"t"`` / ``{"name": "t", "type": "time"}`` -> ``"T"``; ``"?"`` for an axis napari-dem
    has no letter for (NGFF 0.3 lists names, 0.4 and 0.5 give name, type and unit)."""
    if isinstance(axis, str):
        return _NGFF_LETTERS.get(axis.lower(), "?")
    name = str(axis.get("name", "")).lower()
    return _NGFF_LETTERS.get(name) or _NGFF_LETTERS.get(str(axis.get("type", "")).lower(), "?")


def _ngff_multiscale(attrs: dict) -> dict | None:
    """The first multiscale of an OME-Zarr group's attributes: NGFF 0.4 keeps it at the top,
    0.5 under ``"ome"``."""
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    return multiscales[0] if multiscales else None


def _ngff_scale(transforms: list[dict] | None, ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for t in transforms or []:
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            scale = [a * float(b) for a, b in zip(scale, t["scale"], strict=True)]
    return scale


def _open_zarr(path: Path, level: int) -> ImageFile:
    import zarr

    node = zarr.open(str(path), mode="r")
    attrs = dict(node.attrs)
    if hasattr(node, "shape"):  # a plain array (napari-dem writes axes and scale into its attributes)
        axes = _valid_axes(attrs.get("axes"), node.ndim)
        scale = attrs.get("scale")
        by_axis = dict(zip(axes, map(float, scale), strict=True)) if axes and scale else None
        return ImageFile(node, axes, by_axis)
    multiscale = _ngff_multiscale(attrs)
    if multiscale is None:
        arrays = sorted(name for name, _ in node.arrays())
        if not arrays:
            raise InputError("the zarr group holds no array")
        return ImageFile(node[arrays[0]], None)
    datasets = multiscale["datasets"]
    if not 0 <= level < len(datasets):
        raise InputError(f"{path.name} has resolution levels 0..{len(datasets) - 1}, not {level}")
    data = node[datasets[level]["path"]]
    letters = "".join(_ngff_letter(a) for a in multiscale.get("axes", []))
    axes = _valid_axes(letters, data.ndim)
    if axes is None:
        return ImageFile(data, None)
    transforms = [
        *(datasets[level].get("coordinateTransformations") or []),
        *(multiscale.get("coordinateTransformations") or []),  # the multiscale's, applied to every level
    ]
    scale = _ngff_scale(transforms, data.ndim)
    return ImageFile(data, axes, {a: s for a, s in zip(axes, scale, strict=True) if a != "C"})


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


def is_ome_zarr(path: str | os.PathLike[str]) -> bool:
    """``.ome.zarr`` paths are written as OME-Zarr (NGFF 0.4); other ``.zarr`` paths as a plain array."""
    return Path(path).name.lower().endswith(".ome.zarr")


def write_array(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    overwrite: bool = False,
    axes: str | None = None,
    metadata: dict | None = None,
    scale: tuple[float, ...] | None = None,
) -> Path:
    """Write ``data`` to ``path`` (format from the suffix), atomically.

    ``metadata`` (a JSON-able dict, e.g. :func:`napari_dem.provenance.segment_record`) and
    ``scale`` (pixel size per axis of ``data``) travel with the file where the format can
    hold them: TIFF keeps them in its JSON image description (and Y/X pixel size in the
    resolution tags, read as micrometres), zarr in its attributes (``.zattrs``; OME-Zarr
    multiscale metadata for ``.ome.zarr``). ``.npy`` and ``.png`` hold pixels only.
    """
    path = check_writable(path, overwrite)
    suffix = suffix_of(path)
    if scale is not None and len(scale) != data.ndim:
        raise InputError(f"scale {tuple(scale)} has {len(scale)} values for a {data.ndim}D array")
    with atomic_path(path) as tmp:
        if suffix in (".tif", ".tiff"):
            _write_tiff(tmp, data, axes, metadata, scale)
        elif suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(data), allow_pickle=False)
        elif suffix == ".zarr":
            arr = create_zarr(
                tmp, data.shape, data.dtype, axes=axes, metadata=metadata, scale=scale, ome=is_ome_zarr(path)
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


def _file_attrs(axes: str | None, metadata: dict | None, scale: tuple[float, ...] | None) -> dict:
    """What a TIFF's JSON description or a plain zarr array's attributes hold: axes, scale
    (one value per axis) and the provenance record; :func:`open_image` reads them back."""
    attrs: dict = {}
    if axes:
        attrs["axes"] = axes
    if scale is not None:
        attrs["scale"] = [float(s) for s in scale]
    if metadata is not None:
        attrs[RECORD_KEY] = metadata
    return attrs


def _write_tiff(
    path: Path, data: np.ndarray, axes: str | None, metadata: dict | None, scale: tuple[float, ...] | None
) -> None:
    import tifffile

    shaped = _file_attrs(axes, metadata, scale)
    extra: dict = {}
    if scale is not None:
        y, x = (axes.index("Y"), axes.index("X")) if axes and {"Y", "X"} <= set(axes) else (-2, -1)
        # TIFF resolution is pixels per unit, and centimetre is a unit every reader knows;
        # pixel sizes are taken as micrometres (1 cm = 1e4 um).
        extra = {"resolution": (1e4 / float(scale[x]), 1e4 / float(scale[y])), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, data, compression="zlib", metadata=shaped or None, **extra)


#: NGFF axis type of each axis letter.
_NGFF_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def create_zarr(
    path: str | os.PathLike[str],
    shape: tuple[int, ...],
    dtype,
    *,
    axes: str | None = None,
    metadata: dict | None = None,
    scale: tuple[float, ...] | None = None,
    ome: bool = False,
):
    """A new zarr (format 2) array at ``path`` to fill with labels, ``metadata`` in its attributes.

    With ``ome`` the array is level ``"0"`` of an OME-Zarr 0.4 multiscale group whose
    metadata give the axes and ``scale`` (one level: readers such as napari-ome-zarr
    open it at full resolution); the record goes into the group's attributes.
    """
    import zarr

    chunks = _chunks(tuple(shape))
    if not ome:
        arr = zarr.open_array(
            str(path), mode="w", shape=shape, dtype=dtype, chunks=chunks, zarr_format=2, fill_value=0
        )
        arr.attrs.update(_file_attrs(axes, metadata, scale))
        return arr
    from .core.layout import CANONICAL, guess_axes

    axes = axes or guess_axes(shape)
    if [a for a in CANONICAL if a in axes] != list(axes):
        raise InputError(f"OME-Zarr needs the axes in T C Z Y X order, got {axes!r}; write .zarr or .tif")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    arr = group.create_array(
        "0", shape=shape, dtype=dtype, chunks=chunks, fill_value=0,
        chunk_key_encoding={"name": "v2", "separator": "/"},
    )  # fmt: skip
    multiscale = {
        "version": "0.4",
        "name": Path(path).name,
        "axes": [{"name": a.lower(), "type": _NGFF_TYPES[a]} for a in axes],
        "datasets": [
            {
                "path": "0",
                "coordinateTransformations": [
                    {"type": "scale", "scale": [float(s) for s in (scale or [1.0] * len(shape))]}
                ],
            }
        ],
    }
    group.attrs.update({"multiscales": [multiscale], **({RECORD_KEY: metadata} if metadata else {})})
    return arr


def set_zarr_record(path: str | os.PathLike[str], record: dict) -> None:
    """Store ``record`` in the attributes of the zarr array or (OME-Zarr) group at ``path``:
    for outputs whose settings (K, mode) are only known once the labels are written."""
    import zarr

    zarr.open(str(path), mode="r+").attrs[RECORD_KEY] = record


def read_record(path: str | os.PathLike[str]) -> dict | None:
    """The provenance record napari-dem wrote into ``path`` (see :mod:`napari_dem.provenance`), or None."""
    path = Path(path)
    suffix = suffix_of(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if suffix in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shaped = tif.shaped_metadata or ()
        return next((m[RECORD_KEY] for m in shaped if RECORD_KEY in m), None)
    if suffix == ".zarr":
        import zarr

        return dict(zarr.open(str(path), mode="r").attrs).get(RECORD_KEY)
    return None


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

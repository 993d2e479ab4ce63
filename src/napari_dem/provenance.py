"""The record of how a label image was made, written into every output file.

A scientist must be able to say, months later, which model, K, mode, seed and package
version made a label image, and open it at its physical scale. :func:`segment_record`
builds that record as a plain JSON-able dict; :func:`napari_dem.io.write_array` stores it
(TIFF: the JSON image description; zarr: the attributes) and ``napari-dem info FILE``
prints it back. The record is open: callers add fields (``extra``) and readers ignore
fields they do not know, so the widgets can record more (a model fine-tuned in the
session, its training settings) without a format change.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .core.errors import InputError

#: Key of the record inside a file's metadata (TIFF shaped description, zarr attributes).
RECORD_KEY = "napari-dem"
#: What the record says for the model when the package's shipped model was used.
DEFAULT_MODEL = "default model"


@functools.lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file (cached per path, size and modification time: a batch hashes once)."""
    st = os.stat(path)
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def model_identity(model: str | os.PathLike[str] | None, mode: str) -> dict[str, str]:
    """``{"path": ..., "sha256": ...}`` of a model file, or of the shipped model for ``mode``
    with ``path`` = :data:`DEFAULT_MODEL` (its hash says which default, as defaults change)."""
    if model is None:
        from .core.model import default_model_path

        shipped = default_model_path(3 if mode == "3d" else 2)
        return {"path": DEFAULT_MODEL, "file": shipped.name, "sha256": file_sha256(shipped)}
    return {"path": str(Path(model).resolve()), "sha256": file_sha256(model)}


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed (program name and arguments), for the record."""
    import shlex

    args = sys.argv[1:] if argv is None else argv
    return shlex.join(["napari-dem", *args])


def scale_by_axis(scale: tuple[float, ...] | None, axes: str) -> dict[str, float] | None:
    """``{"Z": 2.0, "Y": 0.5, "X": 0.5}`` from a per-dimension scale and its axes."""
    if scale is None:
        return None
    if len(scale) != len(axes):
        raise InputError(f"scale {tuple(scale)} has {len(scale)} values for the {len(axes)} axes {axes!r}")
    return {a: float(s) for a, s in zip(axes, scale, strict=True)}


def resolve_scale(
    axes: str,
    *,
    explicit: tuple[float, ...] | None = None,
    from_file: dict[str, float] | None = None,
    from_layer: dict[str, float] | None = None,
) -> dict[str, float] | None:
    """The pixel size of each axis in ``axes``, by the one precedence rule of napari-dem:

    **explicit option > file metadata > layer scale**, axis by axis. ``explicit`` (the CLI's
    ``--scale``) gives the spatial axes (Z Y X, as many as ``axes`` has, in their order; one
    value means the same for all); the others come from the file or the layer. Channels
    have no scale. None when no source gives any.
    """
    spatial = [a for a in axes if a in "ZYX"]
    given: dict[str, float] = {}
    if explicit is not None:
        values = [float(v) for v in explicit]
        if len(values) == 1:
            values = values * len(spatial)
        if len(values) != len(spatial):
            raise InputError(
                f"--scale gives {len(values)} values but the image has {len(spatial)} spatial axes "
                f"({''.join(spatial)})"
            )
        if any(not v > 0 for v in values):
            raise InputError(f"pixel sizes must be > 0, got {values}")
        given = dict(zip(spatial, values, strict=True))
    out: dict[str, float] = {}
    for a in axes:
        if a == "C":
            continue
        for source in (given, from_file or {}, from_layer or {}):
            if a in source:
                out[a] = float(source[a])
                break
    return out or None


def scale_tuple(scale: dict[str, float] | None, axes: str) -> tuple[float, ...] | None:
    """A per-axis scale as one value per letter of ``axes`` (1.0 where none is known)."""
    if scale is None:
        return None
    return tuple(float(scale.get(a, 1.0)) for a in axes)


def segment_record(
    *,
    model: str | os.PathLike[str] | None,
    mode: str,
    n_clusters: int,
    seed: int,
    axes: str,
    scale: tuple[float, ...] | None,
    instances: bool,
    background: str | int = "darkest",
    source: str | None = None,
    command: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The provenance of one segmentation; ``extra`` fields are added as they are."""
    record: dict[str, Any] = {
        "software": "napari-dem",
        "version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": "instances" if instances else "semantic",
        "model": model_identity(model, mode),
        "n_clusters": int(n_clusters),
        "mode": mode,
        "seed": int(seed),
        "axes": axes,
        "scale": scale_by_axis(scale, axes),
    }
    if instances:
        record["background"] = background
    if source is not None:
        record["source"] = source
    if command is not None:
        record["command"] = command
    record.update(extra)
    return record


def format_record(record: dict[str, Any]) -> str:
    """The record as ``key: value`` lines (nested dicts as ``key.sub``), for ``napari-dem info``."""
    lines: list[str] = []

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                add(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            lines.append(f"{prefix}: {value}")

    add("", record)
    return "\n".join(lines)

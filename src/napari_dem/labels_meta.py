"""What a label image records about how it was made: ``layer.metadata["dem"]``.

Segment and Batch write a :class:`LabelsMeta`; Refine reads it back to re-run the
same segmentation with scribbles. Keeping the record a dataclass (pure, no Qt) makes
the contract between the widgets one definition instead of string keys that one
side forgets to write, and lets a scientist tell, months later, which model, K,
seed and version made a label image.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__

#: ``ModelIdentity.source`` values.
DEFAULT, FILE, SESSION = "default", "file", "session"


class LabelsMetaError(ValueError):
    """A labels layer's metadata is missing or lacks what a re-run needs."""


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in chunks: model files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a result: the bundled default, a file (path + hash), or one fine-tuned
    in this napari session (its id in the session and its training settings)."""

    source: str = DEFAULT  #: "default", "file" or "session"
    ndim: int = 2  #: 2 or 3
    path: str = ""  #: the file (default and file models)
    sha256: str = ""  #: hash of that file when it was used
    session_id: str = ""  #: e.g. "fine-tuned #1" (session models)
    training: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def of_file(cls, path: str | Path, ndim: int, *, default: bool = False) -> ModelIdentity:
        path = Path(path)
        return cls(DEFAULT if default else FILE, int(ndim), str(path), file_sha256(path))

    @classmethod
    def of_default(cls, ndim: int) -> ModelIdentity:
        from .core.model import default_model_path

        return cls.of_file(default_model_path(ndim), ndim, default=True)

    def describe(self) -> str:
        """A short line for a widget: which model this is."""
        if self.source == SESSION:
            return f"{self.session_id} in this session ({self.ndim}D)"
        if self.source == FILE:
            return f"{Path(self.path).name} ({self.ndim}D file)"
        return f"bundled default ({self.ndim}D)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str | None) -> ModelIdentity:
        if not data:
            return cls()
        if isinstance(data, str):  # records written before the identity existed: a path
            return cls(FILE, 2, data)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class LabelsMeta:
    """How a label image was made (``layer.metadata["dem"]``); see the module docstring."""

    image: str  #: the source Image layer (or input file) name
    axes: str  #: axes of the source data, C included
    mode: str  #: "2d" or "3d", as run (never "auto")
    n_clusters: int  #: K used (the chosen one when "auto" was asked for)
    n_clusters_asked: int = 0  #: K given by the user; 0 = auto
    task: str = (
        "classes"  #: what the labels are: "classes" (1..K) or "objects" (0/1); "auto" = decided by the fit
    )
    objects: str = ""  #: clusters asked to be objects (brightest, darkest, ids); "" = found by the fit
    instances: bool = False  #: split into objects (ids are then objects, not classes)
    stain: str = "auto"  #: "auto": a stained slide is read by its haematoxylin; "none": channel mean
    background: str | int = "darkest"
    seed: int = 0
    device: str = "auto"
    level: int = 0  #: multiscale level segmented
    scale: tuple[float, ...] = ()  #: physical pixel size per label axis
    tile_size: int | None = None  #: None: the default per mode
    model: ModelIdentity = field(default_factory=ModelIdentity)
    version: str = __version__  #: napari-dem version that made the labels
    output: str = ""  #: file written (Batch), if any

    #: keys without which a record cannot be re-run
    REQUIRED = ("image", "axes", "mode", "n_clusters")

    @property
    def label_axes(self) -> str:
        return self.axes.replace("C", "")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model"] = self.model.to_dict()
        out["scale"] = [float(s) for s in self.scale]
        out["label_axes"] = self.label_axes
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, layer_name: str = "the labels layer") -> LabelsMeta:
        """Read a record back; a missing or partial one raises :class:`LabelsMetaError` naming what lacks."""
        if not data:
            raise LabelsMetaError(
                f"{layer_name!r} was not made by napari-dem (Segment or Batch): no settings to re-run"
            )
        missing = [k for k in cls.REQUIRED if k not in data]
        if missing:
            raise LabelsMetaError(
                f"{layer_name!r} lacks {', '.join(missing)} in its napari-dem record "
                "(made by an older napari-dem?): segment it again"
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["model"] = ModelIdentity.from_dict(data.get("model"))
        kwargs["scale"] = tuple(float(s) for s in data.get("scale", ()))
        kwargs["n_clusters"] = int(data["n_clusters"])
        meta = cls(**kwargs)
        if meta.mode not in ("2d", "3d"):
            raise LabelsMetaError(f"{layer_name!r} records mode {meta.mode!r}; expected 2d or 3d")
        if meta.n_clusters < 2 and not meta.instances:
            raise LabelsMetaError(f"{layer_name!r} records K = {meta.n_clusters}; expected at least 2")
        return meta

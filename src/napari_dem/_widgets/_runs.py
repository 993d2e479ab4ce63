"""The core calls that Segment and Refine share: which model to use, and one segmentation run.

Both widgets segment "with these settings and this model"; Refine re-runs what a
:class:`~napari_dem.labels_meta.LabelsMeta` records, so the model it names (a file,
the default, or one fine-tuned in this session) is found here in one way.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)
from napari_dem.labels_meta import DEFAULT, FILE, SESSION, LabelsMeta, ModelIdentity, file_sha256

if TYPE_CHECKING:
    from napari_dem.core.model import DEMModel
    from napari_dem.core.segment import SegmentationResult

    from ._session import DemSession


def snapshot(data):
    """A private copy of in-memory layer data, taken when Run is pressed: painting or editing
    the layer during the run cannot change the result. Lazy arrays (dask, zarr) are left
    as they are (napari does not edit them, and copying would load them whole)."""
    return np.array(data, copy=True) if isinstance(data, np.ndarray) else data


def session_model_for(session: DemSession, ndim: int, path: str) -> tuple[DEMModel | None, ModelIdentity]:
    """What a run will use: the file ``path`` if named, else the session's model for ``ndim``
    (a private copy), else the bundled default. The file's hash is filled in by :func:`load_run_model`."""
    if path:
        return None, ModelIdentity(FILE, ndim, str(Path(path).expanduser()))
    model, identity = session.model_copy(ndim)
    if model is not None and identity is not None:
        return model, identity
    return None, ModelIdentity(DEFAULT, ndim)


def load_run_model(
    session: DemSession, identity: ModelIdentity, device: str, model: DEMModel | None = None
) -> tuple[DEMModel | None, ModelIdentity]:
    """The model object for ``identity`` and the identity with its file hash (worker thread).

    A file whose hash differs from the recorded one is refused (it is not the model that
    made the labels); a session model this session does not have is an error too.
    """
    from napari_dem.core.model import default_model_path, load_model

    if model is not None:  # a private copy of the session's model in use
        return model, identity
    if identity.source == SESSION:
        model = session.trained_model(identity)
        if model is None:
            raise ValueError(
                f"the labels were made with a model {identity.session_id} in another napari session: "
                "load that model (Fine-tune > Load…) and segment again"
            )
        return model, identity
    path = Path(identity.path) if identity.source == FILE else default_model_path(identity.ndim)
    if not path.is_file():
        raise ValueError(f"model file not found: {path}")
    digest = file_sha256(path)
    if identity.sha256 and identity.sha256 != digest:
        raise ValueError(f"the model file {path} changed since these labels were made (its hash differs)")
    identity = ModelIdentity(identity.source, identity.ndim, str(path), digest)
    if identity.source == DEFAULT:
        return None, identity  # the core loads the default itself
    return load_model(path, device="cpu" if device == "auto" else device), identity


def run_segment(
    image,
    meta: LabelsMeta,
    model: DEMModel | None,
    scribbles=None,
    progress=None,
    cancel=None,
    previous=None,
) -> SegmentationResult:
    """Segment ``image`` with the settings of ``meta`` and ``model`` (None: the default);
    ``scribbles`` guide the fit, starting from the classes ``previous`` (the labels they correct)."""
    from napari_dem.core.segment import segment

    return segment(
        image,
        meta.axes,
        model=model,
        n_clusters=meta.n_clusters or None,  # 0 = auto: chosen from the image
        mode=meta.mode,
        device=meta.device,
        seed=int(meta.seed),
        tile_size=meta.tile_size,
        task=meta.task,
        objects=meta.objects or None,
        stain=meta.stain,
        scribbles=scribbles,
        previous=previous,
        progress=progress,
        cancel=cancel,
    )

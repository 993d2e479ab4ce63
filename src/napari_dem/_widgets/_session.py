"""The state that one viewer's napari-dem widgets share: :class:`DemSession`, one per viewer.

Fine-tune swaps a model in; Segment, Batch and Refine use it and must not run while
it trains. Keeping that here (and not in module globals of the Fine-tune widget) means
the widgets never import each other, and two viewers in one process each have their
own models and training flag. Found with :func:`session_of`.
"""

from __future__ import annotations

import copy
import itertools
import threading
import weakref
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from napari_dem.labels_meta import SESSION, ModelIdentity

if TYPE_CHECKING:
    from napari_dem.core.model import DEMModel


class DemSession:
    """Active models per dimension (2 or 3), with their identity, and a "training" flag.

    ``model_changed(ndim)`` is emitted whenever the model in use for ``ndim`` changes;
    ``training_changed(bool)`` when a fine-tuning starts or ends. Every model a session
    fine-tuned stays findable by its identity, so Refine can re-run labels made with
    it even after another fine-tuning replaced it.
    """

    model_changed = Signal(int)
    training_changed = Signal(bool)

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._active: dict[int, tuple[DEMModel, ModelIdentity]] = {}
        self._trained: dict[str, DEMModel] = {}
        self._training = False
        self._counter = itertools.count(1)
        self._segmenters: list[weakref.ref] = []
        #: jobs running that segment with the session's model (Segment, Batch, Refine)
        self.segmenting = 0

    # ------------------------------------------------------------------ models
    def model(self, ndim: int) -> DEMModel | None:
        """The model in use for ``ndim`` (None: the bundled default). Shared: do not modify it."""
        with self._lock:
            entry = self._active.get(int(ndim))
            return entry[0] if entry else None

    def identity(self, ndim: int) -> ModelIdentity | None:
        """Identity of the model in use for ``ndim`` (None: the bundled default)."""
        with self._lock:
            entry = self._active.get(int(ndim))
            return entry[1] if entry else None

    def model_copy(self, ndim: int) -> tuple[DEMModel | None, ModelIdentity | None]:
        """A private deep copy of the model in use (a worker may move it to a device) and its identity."""
        with self._lock:
            entry = self._active.get(int(ndim))
            if entry is None:
                return None, None
            return copy.deepcopy(entry[0]), entry[1]

    def base_model(self, ndim: int) -> DEMModel:
        """The model a fine-tuning starts from: the one in use, else the bundled default."""
        from napari_dem.core.model import load_default_model

        return self.model(ndim) or load_default_model(ndim)

    def set_model(self, model: DEMModel, identity: ModelIdentity) -> None:
        ndim = int(model.config.ndim)
        with self._lock:
            self._active[ndim] = (model, identity)
            if identity.source == SESSION:
                self._trained[identity.session_id] = model
        self.model_changed.emit(ndim)

    def set_trained_model(self, model: DEMModel, training: dict[str, Any]) -> ModelIdentity:
        """Put a model fine-tuned in this session in use, with a new session id; returns its identity."""
        name = f"fine-tuned #{next(self._counter)}"
        identity = ModelIdentity(SESSION, int(model.config.ndim), session_id=name, training=training)
        self.set_model(model, identity)
        return identity

    def trained_model(self, identity: ModelIdentity) -> DEMModel | None:
        """A deep copy of the session model with this identity (None if this session never had it)."""
        with self._lock:
            model = self._trained.get(identity.session_id)
            return copy.deepcopy(model) if model is not None else None

    def clear_models(self) -> None:
        """Back to the bundled defaults (the trained models stay findable)."""
        with self._lock:
            dims = list(self._active)
            self._active.clear()
        for ndim in dims:
            self.model_changed.emit(ndim)

    # ------------------------------------------------------------------ training flag
    @property
    def training(self) -> bool:
        return self._training

    def begin_training(self) -> bool:
        """Set the training flag unless it is set already (atomically); True if this call set it."""
        with self._lock:
            if self._training:
                return False
            self._training = True
        self.training_changed.emit(True)
        return True

    def end_training(self) -> None:
        with self._lock:
            was = self._training
            self._training = False
        if was:
            self.training_changed.emit(False)

    # ------------------------------------------------------------------ segment widgets
    def add_segmenter(self, widget: object) -> None:
        """Register a Segment widget, for Fine-tune's "Segment again" (no import between widgets)."""
        self._segmenters.append(weakref.ref(widget))

    def remove_segmenter(self, widget: object) -> None:
        self._segmenters = [r for r in self._segmenters if r() is not None and r() is not widget]

    def segmenter(self) -> Any | None:
        """The first Segment widget registered and still there, or None."""
        for ref in self._segmenters:
            widget = ref()
            if widget is not None:
                return widget
        return None


class _Registry:
    """Sessions keyed by viewer; an entry goes when its viewer is garbage collected."""

    def __init__(self) -> None:
        self._sessions: dict[int, DemSession] = {}

    def get(self, viewer: object) -> DemSession:
        # napari hands plugin widgets a proxy of the viewer, a new one per widget: key by the viewer
        viewer = getattr(viewer, "__wrapped__", viewer)
        key = id(viewer)
        session = self._sessions.get(key)
        if session is None:
            session = self._sessions[key] = DemSession()
            weakref.finalize(viewer, self._sessions.pop, key, None)
        return session


_REGISTRY = _Registry()


def session_of(viewer: object) -> DemSession:
    """The :class:`DemSession` of ``viewer`` (made on first use)."""
    return _REGISTRY.get(viewer)

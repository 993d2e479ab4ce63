"""Helpers shared by the widgets: axes from a layer, geometry, undoable edits, the dock widget base."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import QComboBox, QLabel, QWidget

import napari_dem.core  # noqa: F401  (crash guard first)
from napari_dem.core.layout import AxesError, guess_axes, parse_axes

from ._jobs import Job
from ._session import session_of

if TYPE_CHECKING:
    import napari

#: A multiscale layer is segmented on the finest level whose spatial sides are all at most this.
MAX_LEVEL_SIDE = 2048

_LABEL_LETTERS = {
    "t": "T",
    "time": "T",
    "frame": "T",
    "frames": "T",
    "z": "Z",
    "depth": "Z",
    "plane": "Z",
    "slice": "Z",
    "c": "C",
    "ch": "C",
    "channel": "C",
    "channels": "C",
    "y": "Y",
    "x": "X",
}

#: Name of the Labels layer Segment and Batch add for an image: ``"<image>" + LABELS_SUFFIX``.
LABELS_SUFFIX = " DEM labels"

ERROR_STYLE = "color: #ff5555;"
INFO_STYLE = "color: #aaaaaa;"


def data_shape(layer) -> tuple[int, ...]:
    """Shape of the layer's (finest) data array, channel axis of RGB layers included."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(int(s) for s in data.shape)


def axes_from_layer(layer) -> str:
    """Axes letters of an Image layer's data, from ``rgb``, ``axis_labels`` and ``ndim``."""
    shape = data_shape(layer)
    rgb = bool(getattr(layer, "rgb", False))
    labels = [str(a).strip().lower() for a in getattr(layer, "axis_labels", ())]
    letters = [_LABEL_LETTERS.get(a, "?") for a in labels]
    if len(letters) == layer.ndim:
        # unnamed last two axes (napari's default '-2', '-1') are Y and X
        spatial = [i for i, a in enumerate(letters) if a != "C"]
        if len(spatial) >= 2:
            for i, letter in zip(spatial[-2:], "YX", strict=True):
                if letters[i] == "?":
                    letters[i] = letter
        # one unknown leading axis in a 3D stack: leave it to the guess
        axes = "".join(letters) + ("C" if rgb else "")
        if "?" not in axes:
            try:
                parse_axes(axes, shape, rgb)
                return axes
            except AxesError:
                pass
    try:
        return guess_axes(shape, rgb)
    except AxesError:
        return ""


def pick_level(layer) -> int:
    """Level of a multiscale layer to segment (0 for single-scale layers)."""
    if not getattr(layer, "multiscale", False):
        return 0
    rgb = bool(getattr(layer, "rgb", False))
    for level, arr in enumerate(layer.data):
        spatial = arr.shape[-3:-1] if rgb else arr.shape[-2:]
        if max(spatial) <= MAX_LEVEL_SIDE:
            return level
    return len(layer.data) - 1


def level_data(layer, level: int):
    return layer.data[level] if getattr(layer, "multiscale", False) else layer.data


def labels_geometry(layer, axes: str, level: int = 0) -> dict[str, Any]:
    """Keyword arguments that put a label image (``axes`` minus C) exactly on ``layer``.

    The channel axis of an RGB layer is not a layer dimension (its transforms have
    ``ndim`` entries already); a non-RGB channel axis is dropped from every transform.
    A multiscale level's downsampling multiplies the scale (napari's own convention).
    """
    rgb = bool(getattr(layer, "rgb", False))
    layer_axes = axes[:-1] if rgb and axes.endswith("C") else axes
    keep = [i for i, a in enumerate(layer_axes) if a != "C"]
    from napari.utils.transforms import CompositeAffine

    d2p = CompositeAffine(
        scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear, ndim=layer.ndim
    ).set_slice(keep)
    scale = np.asarray(d2p.scale, dtype=float)
    if level:
        full = np.asarray(data_shape(layer), dtype=float)
        lev = np.asarray(level_data(layer, level).shape, dtype=float)
        factor = (full / lev)[: layer.ndim][keep]
        scale = scale * factor
    geometry = {
        "scale": tuple(scale),
        "translate": tuple(np.asarray(d2p.translate, dtype=float)),
        "rotate": np.asarray(d2p.rotate),
        "shear": np.asarray(d2p.shear),
        "affine": layer.affine.set_slice(keep).affine_matrix,
        "axis_labels": tuple(layer.axis_labels[i] for i in keep),
        "units": tuple(layer.units[i] for i in keep),
    }
    return geometry


def apply_undoable(labels_layer, new: np.ndarray, region: tuple[slice, ...] | None = None) -> int:
    """Write ``new`` into ``labels_layer.data`` (or into ``region`` of it) as one undoable edit.

    Returns the number of changed pixels.
    """
    data = labels_layer.data
    region = region or tuple(slice(None) for _ in range(data.ndim))
    old = np.asarray(data[region])
    new = np.asarray(new)
    if new.shape != old.shape:
        raise ValueError(f"new labels have shape {new.shape}, the layer region {old.shape}")
    if new.size and new.max(initial=0) > np.iinfo(data.dtype).max:
        raise ValueError(f"labels up to {int(new.max())} do not fit the layer's {data.dtype}")
    changed = np.nonzero(old != new)
    if changed[0].size == 0:
        return 0
    values = new[changed].astype(data.dtype, copy=False)
    offsets = [s.indices(n)[0] for s, n in zip(region, data.shape, strict=True)]
    indices = tuple(c + o for c, o in zip(changed, offsets, strict=True))
    labels_layer.data_setitem(indices, values)
    return int(changed[0].size)


def fill_combo(combo: QComboBox, names: list[str], preferred: str | None = None) -> None:
    """Refill a layer combo with ``names``, keeping its current choice, else ``preferred``;
    no change signals fire while it is rebuilt."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentText(current)
    elif preferred in names:
        combo.setCurrentText(preferred)
    combo.blockSignals(False)


def combo_layer(viewer: napari.viewer.Viewer, combo: QComboBox, kind: type):
    """The layer of type ``kind`` named by ``combo``, or ``None`` (gone, renamed, other type)."""
    name = combo.currentText()
    if name in viewer.layers and isinstance(viewer.layers[name], kind):
        return viewer.layers[name]
    return None


#: Above this K the widget warns: DEM separates a few classes (2 to 10 is usual), not hundreds.
MANY_CLUSTERS = 16


def many_clusters_warning(k: int) -> str:
    """The warning for a K far above what DEM separates (empty when K is reasonable)."""
    if k <= MANY_CLUSTERS:
        return ""
    return (
        f"warning: K = {k} is many classes: DEM separates a few (2 to 10 is usual); "
        "most of them will be noise"
    )


def unwrap(obj):
    """The object behind napari's plugin proxy (widgets get proxies of the viewer and its layers)."""
    return getattr(obj, "__wrapped__", obj)


def user_message(exc: BaseException) -> str:
    """One line for the user: the exception's text, without its class name (``str(exc)`` of a
    ``KeyError`` is the quoted key only, so that one says what was missing)."""
    if isinstance(exc, KeyError):
        return f"missing setting {exc}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def notify(text: str, error: bool = False) -> None:
    """A napari notification (the bell in the status bar): errors and finished jobs."""
    from napari.utils.notifications import show_error, show_info

    (show_error if error else show_info)(text)


class DemDockWidget(QWidget):
    """What every napari-dem dock widget shares: the viewer, its session, one job at a time,
    a message line.

    ``last_status`` is the status of the last finished job (tests wait on it);
    ``run_synchronously`` runs jobs in the GUI thread (debugging, screenshots).
    A job is tied to its widget and layers: closing the widget cancels it, and deleting
    one of the layers it reads or writes cancels it with a message. A click on the
    Run/Cancel button within :data:`DEBOUNCE_S` of the last one is ignored, so a double
    click on Run does not cancel the job it started.
    """

    DEBOUNCE_S = 0.3
    #: True for widgets whose jobs segment with the session's model (Fine-tune waits for them).
    uses_model = False

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session = session_of(napari_viewer)
        self.job: Job | None = None
        self.last_status: str | None = None
        self.run_synchronously = False
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self._last_click = -1.0
        self._job_layers: list = []
        self.viewer.layers.events.removed.connect(self._on_layer_removed)

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def debounced(self) -> bool:
        """True if this click comes too soon after the last one (a double click): ignore it."""
        now = time.monotonic()
        if now - self._last_click < self.DEBOUNCE_S:
            return True
        self._last_click = now
        return False

    def watch_layers(self, refresh: Callable[..., None]) -> None:
        """Call ``refresh`` now and whenever a layer is added, removed or replaced (combos stay current)."""
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.changed):
            event.connect(refresh)
        refresh()

    def connect_session(self, signal, slot) -> None:
        """Connect ``slot`` to a session signal for as long as this widget exists."""
        signal.connect(slot)
        self.destroyed.connect(lambda *_: signal.disconnect(slot, missing_ok=True))

    def show_error(self, text: str) -> None:
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(text)

    def show_info(self, text: str) -> None:
        self.message.setStyleSheet(INFO_STYLE)
        self.message.setText(text)

    def fail(self, exc: BaseException) -> None:
        """Show an error of a job or a check in the widget and as a napari notification."""
        text = user_message(exc)
        self.show_error(text)
        notify(f"{self.title()}: {text}", error=True)

    def title(self) -> str:
        return type(self).__name__.removesuffix("Widget")

    def start_job(
        self, fn, *, desc: str, on_result, running_text: str, button, button_text: str, layers=()
    ) -> Job:
        """Start ``fn`` as this widget's job; errors go to the message line and a notification.

        ``self.job`` is set before the job starts, so ``fn`` may read ``self.job.token``
        (also when it runs at once, synchronously). Deleting one of ``layers`` cancels it.
        """
        job = Job(
            fn,
            desc=desc,
            on_result=on_result,
            on_error=self.fail,
            on_done=self._job_done,
            sync=self.run_synchronously,
        )
        self.job = job
        self._job_layers = [unwrap(layer) for layer in layers if layer is not None]
        self.last_status = None
        self._last_click = time.monotonic()
        button.setText(button_text)
        self.show_info(running_text)
        self.destroyed.connect(lambda *_, token=job.token: token.cancel())  # the viewer closed
        if self.uses_model:
            self.session.segmenting += 1
        job.start()
        return job

    def cancel_job(self, reason: str = "") -> None:
        if self.busy:
            self.job.cancel(reason)

    def run(self) -> Job | None:  # overridden by each widget with a Run button
        raise NotImplementedError

    def cancel(self) -> None:  # overridden by each widget with a Run button
        raise NotImplementedError

    def _on_run_clicked(self) -> None:
        """The Run button: Run, or Cancel while a job runs (:meth:`_start_or_stop`)."""
        self._start_or_stop(self.busy, self.cancel, self.run)

    def _start_or_stop(self, running: bool, stop: Callable[[], object], start: Callable[[], object]) -> None:
        """A button that starts a job and stops it while it runs: ``stop()`` when ``running``,
        else ``start()``. The second click of a double click is ignored (:meth:`debounced`), so
        it does not stop the job the first one started."""
        if self.debounced():
            return
        if running:
            stop()
        else:
            start()

    def _on_layer_removed(self, event) -> None:
        if self.busy and any(unwrap(event.value) is layer for layer in self._job_layers):
            self.cancel_job(f"the layer {event.value.name!r} was deleted: the run stopped")

    def _job_done(self, status: str) -> None:
        job = self.job
        self._job_layers = []
        if self.uses_model:
            self.session.segmenting -= 1
        self._on_done(status)
        if job is not None and job.reason and status == "cancelled":
            self.show_error(job.reason)
            notify(f"{self.title()}: {job.reason}", error=True)
        elif status == "done" and not self.run_synchronously:
            notify(f"{self.title()}: {self.message.text() or 'done'}")

    def _on_done(self, status: str) -> None:  # overridden by each widget
        self.last_status = status

    def closeEvent(self, event) -> None:
        self.cancel_job("the widget was closed: the run stopped")
        super().closeEvent(event)

    def event(self, event) -> bool:
        """napari takes a dock widget it closes out of its dock (``setParent(None)``): cancel then."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cancel_job("the widget was closed: the run stopped")
        return super().event(event)

"""Helpers shared by the widgets: axes from a layer, geometry, undoable edits, workers."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import QComboBox, QLabel, QWidget

import napari_dem.core  # noqa: F401  (crash guard first)
from napari_dem.core.layout import AxesError, guess_axes, parse_axes

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


def core_generator(fn: Callable[[Callable[[int, int, str], None]], Any], token) -> Iterator:
    """Generator for ``napari.qt.threading``: runs ``fn(progress)`` in a helper thread.

    Yields ``(done, total, message)`` for each progress report and ``None`` every
    50 ms, so that the worker can be quit at a yield; on quit or close, the token is
    cancelled so the core stops at its next tile. Returns ``fn``'s result.
    """
    q: queue.SimpleQueue = queue.SimpleQueue()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(lambda done, total, msg: q.put((int(done), int(total), str(msg))))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="napari-dem-core", daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not q.empty():
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                item = None
            yield item
    finally:
        if thread.is_alive():
            token.cancel()
    if "error" in box:
        raise box["error"]
    return box.get("result")


class Job:
    """One background run of a core function, with a napari progress bar and cancel.

    ``on_result(result)`` runs on the main thread when ``fn`` returns; ``on_error(exc)``
    when it raises (not for a cancel); ``on_done(status)`` always, with status one of
    ``"done"``, ``"cancelled"``, ``"error"``. ``sync=True`` runs everything at once in
    the calling thread (debugging, screenshots).
    """

    def __init__(self, fn, *, desc, on_result, on_error, on_done, sync=False) -> None:
        from napari_dem.core.progress import CancelToken

        self.fn, self.desc = fn, desc
        self.on_result, self.on_error, self.on_done = on_result, on_error, on_done
        self.token = CancelToken()
        self.worker = None
        self.pbar = None
        self.status: str | None = None
        self.sync = sync

    def start(self) -> None:
        from napari_dem.core.progress import Cancelled

        if self.sync:
            try:
                result = self.fn(None)
            except Cancelled:
                return self._finish("cancelled")
            except Exception as exc:
                self.on_error(exc)
                return self._finish("error")
            self.on_result(result)
            return self._finish("done")

        from napari.qt.threading import create_worker
        from napari.utils import progress

        self.pbar = progress(total=0, desc=self.desc)
        worker = create_worker(core_generator, self.fn, self.token, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(lambda: setattr(self, "status", "cancelled"))
        worker.finished.connect(lambda: self._finish(self.status or "cancelled"))
        self.worker = worker
        worker.start()

    @property
    def running(self) -> bool:
        return self.status is None and (self.worker is not None or self.sync)

    def cancel(self) -> None:
        self.token.cancel()
        if self.worker is not None:
            self.worker.quit()

    def _on_yield(self, item) -> None:
        pbar = self.pbar
        if item is None or pbar is None or self.status is not None:
            return
        done, total, msg = item
        if total and pbar.total != total:
            pbar.total = total
        target = min(done, total) if total else done
        if target > pbar.n:
            pbar.update(target - pbar.n)
        pbar.set_description(f"{self.desc}: {msg}" if msg else self.desc)

    def _on_returned(self, result) -> None:
        if self.token.cancelled:
            self.status = "cancelled"
            return
        try:
            self.on_result(result)
            self.status = "done"
        except Exception as exc:
            self.on_error(exc)
            self.status = "error"

    def _on_errored(self, exc) -> None:
        from napari_dem.core.progress import Cancelled

        if isinstance(exc, Cancelled) or self.token.cancelled:
            self.status = "cancelled"
        else:
            self.status = "error"
            self.on_error(exc)

    def _finish(self, status: str) -> None:
        self.status = status
        if self.pbar is not None:
            self.pbar.close()
            self.pbar = None
        self.on_done(status)


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


class DemDockWidget(QWidget):
    """What every napari-dem dock widget shares: the viewer, one job at a time, a message line.

    ``last_status`` is the status of the last finished job (tests wait on it);
    ``run_synchronously`` runs jobs in the GUI thread (debugging, screenshots).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.job: Job | None = None
        self.last_status: str | None = None
        self.run_synchronously = False
        self.message = QLabel("")
        self.message.setWordWrap(True)

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running

    def watch_layers(self, refresh: Callable[..., None]) -> None:
        """Call ``refresh`` now and whenever a layer is added, removed or replaced (combos stay current)."""
        events = self.viewer.layers.events
        for event in (events.inserted, events.removed, events.changed):
            event.connect(refresh)
        refresh()

    def show_error(self, text: str) -> None:
        self.message.setStyleSheet(ERROR_STYLE)
        self.message.setText(text)

    def show_info(self, text: str) -> None:
        self.message.setStyleSheet(INFO_STYLE)
        self.message.setText(text)

    def start_job(self, fn, *, desc: str, on_result, running_text: str, button, button_text: str) -> Job:
        """Start ``fn`` as this widget's job; errors go to the message line.

        ``self.job`` is set before the job starts, so ``fn`` may read ``self.job.token``
        (also when it runs at once, synchronously).
        """
        job = Job(
            fn,
            desc=desc,
            on_result=on_result,
            on_error=lambda exc: self.show_error(f"{type(exc).__name__}: {exc}"),
            on_done=self._on_done,
            sync=self.run_synchronously,
        )
        self.job = job
        self.last_status = None
        button.setText(button_text)
        self.show_info(running_text)
        job.start()
        return job

    def _on_done(self, status: str) -> None:  # overridden by each widget
        self.last_status = status

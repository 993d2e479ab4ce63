"""Background jobs of the widgets: a core computation in a thread, a progress bar, cancel.

The rule this module keeps: a job ends only when its computation has ended. Cancel
only raises the job's token (the GUI thread never waits); the core stops at its
next tile and the job reports "cancelled" once the computation thread has returned,
so a widget that shows "Run" again has no work going on behind it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import napari_dem.core  # noqa: F401  (crash guard first)

#: Name of the thread that runs a job's computation (tests look for it).
CORE_THREAD = "napari-dem-core"


def core_generator(fn: Callable[[Callable[[int, int, str], None]], Any], token) -> Iterator:
    """Generator for ``napari.qt.threading``: runs ``fn(progress)`` in a helper thread.

    Yields ``(done, total, message)`` for each progress report and ``None`` every
    50 ms; it returns (or raises) only after the helper thread has finished, also
    after a cancel, so nothing runs on once the job is over. If the generator is
    closed early, the token is cancelled and the thread waited for.
    """
    q: queue.SimpleQueue = queue.SimpleQueue()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn(lambda done, total, msg: q.put((int(done), int(total), str(msg))))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=CORE_THREAD, daemon=True)
    thread.start()
    try:
        while thread.is_alive() or not q.empty():
            try:
                item = q.get(timeout=0.05)
            except queue.Empty:
                item = None
            yield item
    finally:
        if thread.is_alive():  # closed early: stop the core and wait (never on the GUI thread)
            token.cancel()
            thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


class Job:
    """One background run of a core function, with a napari progress bar and cancel.

    ``on_result(result)`` runs on the main thread when ``fn`` returns; ``on_error(exc)``
    when it raises (not for a cancel); ``on_done(status)`` always, once the computation
    has ended, with status ``"done"``, ``"cancelled"`` or ``"error"``. ``sync=True``
    runs everything at once in the calling thread (debugging, screenshots).
    ``cancel(reason)`` keeps the first reason given (e.g. "the layer was deleted").
    """

    def __init__(self, fn, *, desc, on_result, on_error, on_done, sync=False) -> None:
        from napari_dem.core.progress import CancelToken

        self.fn, self.desc = fn, desc
        self.on_result, self.on_error, self.on_done = on_result, on_error, on_done
        self.token = CancelToken()
        self.worker = None
        self.pbar = None
        self.status: str | None = None
        self.reason = ""
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
            if self.token.cancelled:
                return self._finish("cancelled")
            self._on_returned(result)
            return self._finish(self.status or "done")

        from napari.qt.threading import create_worker
        from napari.utils import progress

        self.pbar = progress(total=0, desc=self.desc)
        worker = create_worker(core_generator, self.fn, self.token, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_yield)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(lambda: self._finish(self.status or "cancelled"))
        self.worker = worker
        worker.start()

    @property
    def running(self) -> bool:
        return self.status is None and (self.worker is not None or self.sync)

    def cancel(self, reason: str = "") -> None:
        """Ask the computation to stop at its next tile; the job ends when it has."""
        if reason and not self.reason:
            self.reason = reason
        self.token.cancel()

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

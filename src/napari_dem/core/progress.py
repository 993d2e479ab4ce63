"""Progress callbacks and cooperative cancellation shared by every long-running core function.

The core never imports Qt: a widget passes a callback that forwards to a napari
progress bar, the CLI passes one that prints to stderr, and both pass a
:class:`CancelToken` that the compute loop checks between tiles or steps.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

#: ``progress(done, total, message)``
ProgressFn = Callable[[int, int, str], None]


class Cancelled(Exception):
    """Raised inside a compute loop when its :class:`CancelToken` was set."""


class CancelToken:
    """A thread-safe flag: ``cancel()`` from any thread, ``check()`` inside the loop."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


def check_cancel(token: CancelToken | None) -> None:
    if token is not None:
        token.check()


def report(progress: ProgressFn | None, done: int, total: int, message: str) -> None:
    if progress is not None:
        progress(done, total, message)


class StderrProgress:
    """A progress callback for terminals: one self-overwriting line, at most ~4 updates a second."""

    def __init__(self, label: str = "", stream=None, min_interval: float = 0.25) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if done < total and now - self._last < self.min_interval:
            return
        self._last = now
        pct = 100.0 * done / max(total, 1)
        end = "\n" if done >= total else "\r"
        self.stream.write(f"{self.label}{message} [{done}/{total}] {pct:5.1f}%{end}")
        self.stream.flush()

"""Where napari-dem's log goes: ``logging.getLogger("napari_dem")`` to a file in the user's log
directory (and to stderr with the CLI's ``--verbose``).

A user sees one line for an error; the traceback a maintainer needs is in the file,
whose path the CLI prints. ``NAPARI_DEM_LOG_DIR`` moves the directory (tests, clusters).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOGGER_NAME = "napari_dem"
logger = logging.getLogger(LOGGER_NAME)
_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d]: %(message)s"


def log_dir() -> Path:
    """``$NAPARI_DEM_LOG_DIR``, else the platform's user log directory for napari-dem."""
    override = os.environ.get("NAPARI_DEM_LOG_DIR")
    if override:
        return Path(override)
    from platformdirs import user_log_dir

    return Path(user_log_dir("napari-dem", appauthor=False))


def log_file() -> Path:
    return log_dir() / "napari-dem.log"


class LogSession:
    """Handlers for one CLI run, removed again by :meth:`close` (``main`` may run many times
    in one process, as in the tests)."""

    def __init__(self, verbose: bool = False) -> None:
        self.handlers: list[logging.Handler] = []
        self.path: Path | None = None
        try:
            path = log_file()
            path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.FileHandler(path, encoding="utf-8", delay=True)
            self.path = path
        except OSError:  # a read-only home must not stop a run; the traceback then goes to stderr
            handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.INFO)
        self.handlers.append(handler)
        if verbose:
            self.handlers.append(logging.StreamHandler(sys.stderr))
        for h in self.handlers:
            h.setFormatter(logging.Formatter(_FORMAT))
            logger.addHandler(h)
        self._level = logger.level
        logger.setLevel(logging.DEBUG if verbose else logging.INFO)

    def where(self) -> str:
        return str(self.path) if self.path is not None else "stderr"

    def close(self) -> None:
        for h in self.handlers:
            logger.removeHandler(h)
            h.close()
        logger.setLevel(self._level)

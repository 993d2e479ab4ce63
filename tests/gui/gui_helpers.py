"""Helpers the GUI tests share: dock a napari-dem widget, run its job and wait for the end."""

from __future__ import annotations

DEFAULT_TIMEOUT = 60_000  # ms


def dock(viewer, name: str):
    """Dock the napari-dem widget ``name`` the way a user opens it (through the plugin manifest)."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-dem", name)
    return widget


def run_job(qtbot, widget, timeout: int = DEFAULT_TIMEOUT):
    """Start ``widget.run()`` and wait until its job ends; it must end ``"done"``.

    A job that times out is cancelled, so no worker runs on into the next test.
    """
    job = widget.run()
    assert job is not None, widget.message.text()
    try:
        qtbot.waitUntil(lambda: widget.last_status is not None, timeout=timeout)
    except BaseException:
        if widget.job is not None:
            widget.job.cancel()
        raise
    assert widget.last_status == "done", widget.message.text()
    return job

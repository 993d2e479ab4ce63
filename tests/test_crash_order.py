"""napari first, plugin second: the order users follow must not crash the process.

With CUDA builds of torch, importing torchvision (which imports triton) after
napari created its OpenGL canvas under Mesa segfaults (LLVM clash). This runs that
order in a fresh process, on a real X server, and checks that it ends cleanly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.gui

SCRIPT = textwrap.dedent(
    """
    import sys
    import tempfile
    import numpy as np
    import napari
    from qtpy.QtCore import QSettings
    from qtpy.QtWidgets import QApplication

    # the widgets remember their fields: start from the defaults, never from the user's file
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())

    viewer = napari.Viewer(show=True)
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="img")
    for _ in range(5):
        QApplication.processEvents()
    assert "torchvision" not in sys.modules, "napari itself imported torchvision"

    # Only now the plugin's core: fine-tuning runs torch.optim and imports torchvision.transforms.v2.
    from napari_dem.core.model import DEMConfig, DEMModel
    from napari_dem.core.segment import segment
    from napari_dem.core.train import TrainSettings, fine_tune, training_units
    from napari_dem.data.synthetic import synthetic_nuclei

    img, _ = synthetic_nuclei((64, 64), seed=1)
    model = DEMModel(DEMConfig(width=4, latent_dim=2, context_sigma=4.0))
    settings = TrainSettings(steps=2, batch_size=2, patch_size=32)
    fine_tune(model, training_units(img, "YX", 2), settings, device="cpu")
    assert "torchvision" in sys.modules
    labels = segment(img, "YX", model=model, device="cpu").labels
    viewer.add_labels(labels, name="dem")

    # And each dock widget of the plugin, with a segmentation run through the widget.
    viewer.add_image(img, name="nuclei")
    _, seg = viewer.window.add_plugin_dock_widget("napari-dem", "Segment (DEM)")
    _, ref = viewer.window.add_plugin_dock_widget("napari-dem", "Refine labels (DEM)")
    seg.image_combo.setCurrentText("nuclei")
    seg.run_synchronously = True
    seg.run()
    for _ in range(5):
        QApplication.processEvents()
    assert seg.last_status == "done", seg.message.text()
    assert any(layer.name == "nuclei DEM labels" for layer in viewer.layers)
    viewer.close()
    print("CLEAN-EXIT", flush=True)
    """
)


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs an X server: run the suite under xvfb-run")
@pytest.mark.slow
def test_torchvision_after_opengl_canvas_does_not_crash() -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\\n{proc.stderr[-3000:]}"
    assert "CLEAN-EXIT" in proc.stdout

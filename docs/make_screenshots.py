"""Screenshots of the napari widgets for docs/napari.md.

Run headless with ``xvfb-run -a python docs/make_screenshots.py``.
"""

from __future__ import annotations

from pathlib import Path

import napari_dem.core  # noqa: F401  (crash guard first)

OUT = Path(__file__).parent / "images"


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_dem._sample_data import nuclei2d

    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 900)
    data, kwargs, _ = nuclei2d()[0]
    viewer.add_image(data, **kwargs)
    _, seg = viewer.window.add_plugin_dock_widget("napari-dem", "Segment (DEM)")
    _, ref = viewer.window.add_plugin_dock_widget("napari-dem", "Refine labels (DEM)")
    seg.run_synchronously = True
    seg.sync_check.setChecked(True)
    seg.run()
    labels = seg.labels_layer
    labels.opacity = 0.5
    ref.labels_combo.setCurrentText(labels.name)
    for _ in range(20):
        QApplication.processEvents()
    viewer.window._qt_window.grab().save(str(OUT / "segment_widget.png"))

    ref.set_background()
    ref.split_instances()
    for _ in range(20):
        QApplication.processEvents()
    viewer.window._qt_window.grab().save(str(OUT / "refine_widget.png"))
    viewer.close()
    print("wrote", sorted(p.name for p in OUT.glob("*.png")))


if __name__ == "__main__":
    main()

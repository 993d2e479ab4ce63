"""Screenshots of napari-dem in a real napari viewer, for docs/napari.md and docs/guides/.

Every figure opens a fresh viewer on a bundled sample, docks the plugin's widgets and runs
the real segmentation through them (in the background, as a user's click does). Run headless:

    xvfb-run -a python docs/make_screenshots.py                # every figure
    xvfb-run -a python docs/make_screenshots.py zstack timelapse
    xvfb-run -a python docs/make_screenshots.py --out /tmp/shots batch_folder
    python docs/make_screenshots.py --list

The images go to docs/images/ (or ``--out``). Each figure function's docstring starts with the
file names it writes; tests/test_docs.py checks that every image in docs/images has one.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import napari_dem.core  # noqa: F401  (crash guard first)

OUT = Path(__file__).parent / "images"
#: Window size of the guide screenshots (wide enough for a docked widget and the canvas).
SIZE = (1300, 820)
#: Width of the dock area, so that no field of a widget is cut off.
DOCK_WIDTH = 420


# ---------------------------------------------------------------------- helpers
def _viewer(size: tuple[int, int] = SIZE):
    import napari

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(*size)
    _settle()
    return viewer


def _sample(viewer, name: str):
    """Add a bundled sample as napari's File > Open Sample does."""
    from napari_dem import _sample_data

    data, kwargs, _ = getattr(_sample_data, name)()[0]
    return viewer.add_image(data, **kwargs)


def _dock(viewer, name: str, width: int = DOCK_WIDTH):
    """Dock a napari-dem widget (as Plugins > napari DEM > NAME does); returns (dock, widget)."""
    from qtpy.QtCore import Qt

    dock, widget = viewer.window.add_plugin_dock_widget("napari-dem", name)
    if hasattr(widget, "remembered"):  # every figure starts from the defaults, not the last figure's
        widget.remembered.restore_defaults()
    viewer.window._qt_window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
    return dock, widget


def _settle(rounds: int = 20) -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.01)


def _wait(widget, start: Callable[[], object], timeout: float = 600.0) -> None:
    """Start a widget's background job and let Qt run until it is done."""
    from qtpy.QtWidgets import QApplication

    job = start()
    if job is None:
        raise RuntimeError(widget.message.text())
    t0 = time.perf_counter()
    while widget.last_status is None:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{type(widget).__name__} did not finish in {timeout} s")
    if widget.last_status != "done":
        raise RuntimeError(f"{type(widget).__name__}: {widget.last_status}: {widget.message.text()}")
    _settle()


def _camera(viewer):
    return viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera  # napari >= 0.9


def _grab(viewer, name: str) -> Path:
    _settle()
    path = OUT / name
    viewer.window._qt_window.grab().save(str(path))
    print("wrote", path)
    return path


# ---------------------------------------------------------------------- figures
def fig_widgets() -> None:
    """segment_widget.png, refine_widget.png: Segment and Refine on the DSB2018 sample."""
    viewer = _viewer((1400, 900))
    _sample(viewer, "nuclei2d")
    _, seg = _dock(viewer, "Segment (DEM)")
    _, ref = _dock(viewer, "Refine labels (DEM)")
    seg.run_synchronously = True  # the debug check box stays unticked in the picture
    seg.run()
    labels = seg.labels_layer
    labels.opacity = 0.5
    ref.labels_combo.setCurrentText(labels.name)
    _grab(viewer, "segment_widget.png")

    ref.set_background()
    ref.split_instances()
    _grab(viewer, "refine_widget.png")
    viewer.close()


def fig_segment_2d() -> None:
    """segment_2d.png: classes, K = 3 on the DSB2018 sample, zoomed in: background, dim and bright nuclei."""
    viewer = _viewer()
    _sample(viewer, "nuclei2d")
    _, seg = _dock(viewer, "Segment (DEM)")
    seg.task_combo.setCurrentText("classes")
    seg.clusters_spin.setValue(3)
    _wait(seg, seg.run)
    labels = seg.labels_layer
    labels.opacity = 0.45
    viewer.layers.selection.active = labels
    viewer.reset_view()
    _camera(viewer).center = (0, 330, 250)
    _camera(viewer).zoom *= 2.0
    _grab(viewer, "segment_2d.png")
    viewer.close()


def fig_zstack() -> None:
    """zstack_slice.png, zstack_3d.png: the 3D sample segmented in 3D mode, 3D instances."""
    viewer = _viewer((1400, 900))
    image = _sample(viewer, "nuclei3d")
    _, seg = _dock(viewer, "Segment (DEM)")
    ref_dock, ref = _dock(viewer, "Refine labels (DEM)")
    seg.mode_combo.setCurrentText("3d")
    _wait(seg, seg.run)
    labels = seg.labels_layer
    ref.labels_combo.setCurrentText(labels.name)
    ref.split_instances()  # "3D objects" is ticked because the labels came from 3D mode
    labels.opacity = 0.6
    viewer.dims.set_point(0, 16)
    viewer.layers.selection.active = labels
    _settle()
    viewer.reset_view()
    _grab(viewer, "zstack_slice.png")

    viewer.window.remove_dock_widget(ref_dock)
    viewer.dims.ndisplay = 3
    image.visible = False
    labels.opacity = 1.0
    labels.bounding_box.visible = True
    _settle()
    viewer.reset_view()
    _camera(viewer).angles = (-30, 20, 150)
    _camera(viewer).zoom *= 0.75
    _grab(viewer, "zstack_3d.png")
    viewer.close()


def fig_zstack_large() -> None:
    """zstack_large.png: a stack of large nuclei (60x256x256, 30-40 px across) at default settings."""
    from napari_dem.data.families import objects_image

    viewer = _viewer((1400, 900))
    # the first stack of benchmarks/bench_volumes.py (its seed 9700)
    image, _ = objects_image((60, 256, 256), radius=(15.0, 20.0), coverage=0.25, seed=9700, illumination=0.3)
    _segment_at_defaults(viewer, image, "large nuclei (60x256x256)", 0.45)
    viewer.dims.set_point(0, 30)
    _grab(viewer, "zstack_large.png")
    viewer.close()


def _segment_at_defaults(viewer, image: np.ndarray, name: str, opacity: float):
    """Add ``image``, press Run on a Segment widget with nothing set, show its labels on top."""
    viewer.add_image(image, name=name)
    _, seg = _dock(viewer, "Segment (DEM)")
    _wait(seg, seg.run)
    labels = seg.labels_layer
    labels.opacity = opacity
    viewer.layers.selection.active = labels
    viewer.reset_view()
    print(seg.message.text())
    return labels


def fig_texture() -> None:
    """segment_texture.png: two textures of one mean brightness, found as classes at default settings."""
    from napari_dem.data.families import classes_image

    viewer = _viewer()
    # the panel's texture case (benchmarks/_panel_cases.py, seed 9022)
    image, _ = classes_image((256, 256), n_classes=2, contrast="texture", scale=20, seed=9022)
    _segment_at_defaults(viewer, image, "two textures", 0.35)
    _grab(viewer, "segment_texture.png")
    viewer.close()


def fig_stain() -> None:
    """segment_stain.png: scikit-image's IHC sample (RGB) at default settings, read by its
    haematoxylin: the nuclei of the epithelium and of the stroma, outlined."""
    from skimage import data

    viewer = _viewer()
    labels = _segment_at_defaults(viewer, data.immunohistochemistry(), "IHC", 0.9)
    labels.contour = 2
    _grab(viewer, "segment_stain.png")
    viewer.close()


def fig_nucleoli() -> None:
    """segment_nucleoli.png: DAPI-like nuclei with dark nucleoli at default settings, outlined
    whole (they were cut at their nucleoli before they were sized whole)."""
    from napari_dem.data.families import nuclei_with_nucleoli

    viewer = _viewer()
    # bench_families.py's nucleoli-0
    image, _ = nuclei_with_nucleoli((512, 512), seed=9930)
    labels = _segment_at_defaults(viewer, image, "nuclei with nucleoli", 0.9)
    labels.contour = 2
    _grab(viewer, "segment_nucleoli.png")
    viewer.close()


def fig_padding() -> None:
    """segment_padding.png: dark cells on a bright field inside a black round field of view, at
    default settings: the cells outlined, the black corners left alone (they were a class)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_padding import SEED, round_view
    from napari_dem.data.families import objects_image

    viewer = _viewer()
    image, _ = objects_image((384, 384), polarity="dark", seed=SEED + 1)
    padded = np.where(round_view(image.shape), image, 0).astype(np.float32)
    labels = _segment_at_defaults(viewer, padded, "dark cells, round view", 0.9)
    labels.contour = 2
    _grab(viewer, "segment_padding.png")
    viewer.close()


def fig_timelapse() -> None:
    """timelapse.png and timelapse_frames.png: one mixture for the whole TYX stack."""
    from skimage import io as skio

    viewer = _viewer()
    _sample(viewer, "timelapse")
    _, seg = _dock(viewer, "Segment (DEM)")
    _wait(seg, seg.run)
    labels = seg.labels_layer
    labels.opacity = 0.5
    viewer.layers.selection.active = labels
    viewer.dims.set_point(0, 5)
    viewer.reset_view()
    _grab(viewer, "timelapse.png")

    frames = []
    for t in (0, 3, 6, 9):  # the data's full extent, 2 screen pixels per image pixel
        viewer.dims.set_point(0, t)
        _settle()
        frames.append(np.asarray(viewer.export_figure(scale_factor=2))[..., :3])
    gap = np.full((frames[0].shape[0], 8, 3), 255, np.uint8)
    row = np.concatenate([p for f in frames for p in (f, gap)][:-1], axis=1)
    path = OUT / "timelapse_frames.png"
    skio.imsave(path, row, check_contrast=False)
    print("wrote", path)
    viewer.close()


def fig_scribbles() -> None:
    """refine_scribbles.png: the scribble scene of make_scribble_figure.py in a real viewer."""
    from make_scribble_figure import scene

    viewer = _viewer()
    img, _ = scene()
    viewer.add_image(img.astype(np.float32), name="five nuclei")
    _, seg = _dock(viewer, "Segment (DEM)")
    _, ref = _dock(viewer, "Refine labels (DEM)")
    seg.task_combo.setCurrentText("classes")  # scribbles paint classes 1..K
    seg.clusters_spin.setValue(2)
    _wait(seg, seg.run)
    labels = seg.labels_layer
    labels.opacity = 0.5
    ref.labels_combo.setCurrentText(labels.name)
    scrib = ref.add_scribbles_layer()
    scrib.brush_size = 3
    for label, row, cols in [(1, 5, (5, 90)), (1, 90, (5, 90)), (2, 20, (16, 25)), (2, 70, (16, 25))]:
        for col in range(*cols):  # four strokes of the paint brush, as a user paints them
            scrib.paint((row, col), label, refresh=False)
    scrib.refresh()
    _wait(ref, ref.refine_with_scribbles)
    viewer.layers.selection.active = scrib
    viewer.reset_view()
    _grab(viewer, "refine_scribbles.png")
    viewer.close()


def fig_batch_folder(n_files: int = 5, side: int = 256) -> None:
    """batch_widget.png: Batch (DEM) after a folder run, 5 images done and 1 corrupt file
    reported as failed; a folder run adds nothing to the viewer."""
    import tifffile

    from napari_dem.data.synthetic import synthetic_nuclei

    viewer = _viewer()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "plate"
        folder.mkdir()
        for i in range(n_files):
            tifffile.imwrite(folder / f"well_{i + 1:02d}.tif", synthetic_nuclei((side, side), seed=i)[0])
        (folder / f"well_{n_files + 1:02d}.tif").write_bytes(b"not a TIFF: a transfer cut short")
        _, batch = _dock(viewer, "Batch (DEM)")
        batch.source_combo.setCurrentText("a folder")
        batch.folder_edit.setText(str(folder))
        batch.out_edit.setText(str(Path(tmp) / "labels"))
        batch.instances_check.setChecked(True)
        _wait(batch, batch.run)
        _grab(viewer, "batch_widget.png")
    viewer.close()


def fig_finetune(steps: int = 30) -> None:
    """finetune_widget.png: Fine-tune (DEM) after 30 steps on the DSB2018 sample, loss plot."""
    viewer = _viewer()
    _sample(viewer, "nuclei2d")
    _, tune = _dock(viewer, "Fine-tune (DEM)")
    tune.steps_spin.setValue(steps)
    _wait(tune, tune.start)
    _grab(viewer, "finetune_widget.png")
    viewer.close()


def fig_cli_overlay() -> None:
    """cli_overlay.png: the README's first command, its --overlay PNG (no viewer)."""
    from napari_dem.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        labels = Path(tmp) / "nuclei_labels.tif"
        args = ["segment", "sample:nuclei2d", "-o", str(labels), "--instances", "-q"]
        if cli([*args, "--overlay", str(OUT / "cli_overlay.png"), "--overwrite"]) != 0:
            raise RuntimeError("napari-dem segment failed")
    print("wrote", OUT / "cli_overlay.png")


def fig_bbbc007_splits() -> None:
    """bbbc007_splits.png: the BBBC007 nuclei DEM cuts in two and the reference labels keep
    whole: image, DEM at default settings (red), the labels (green); no viewer."""
    import sys

    import imageio.v3 as iio
    from skimage.segmentation import find_boundaries

    from napari_dem.api import segment_image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from _panel_cases import build_cases

    crops = {"bbbc007-0": [(28, 398), (129, 355), (299, 26), (436, 396)], "bbbc007-1": [(44, 40)]}
    rows = []
    for case in build_cases(lambda name: name in crops):
        pred = np.asarray(segment_image(case.image, case.axes, instances=True, device="cpu").labels)
        img = np.asarray(case.image, dtype=float)
        grey = np.clip(1.6 * (img - img.min()) / np.ptp(img), 0, 1)
        for y, x in crops[case.name]:
            y0, x0 = min(max(0, y - 32), img.shape[0] - 64), min(max(0, x - 32), img.shape[1] - 64)
            box = (slice(y0, y0 + 64), slice(x0, x0 + 64))
            base = np.repeat(grey[box][..., None], 3, axis=-1)
            panels = [base]
            for labels, colour in ((pred, (1, 0.2, 0.2)), (np.asarray(case.truth), (0.2, 1, 0.2))):
                panel = base.copy()
                panel[find_boundaries(labels[box], mode="inner")] = colour
                panels += [np.ones((64, 4, 3)), panel]
            rows += [np.concatenate(panels, axis=1), np.ones((4, 200, 3))]
    figure = np.kron(np.concatenate(rows[:-1]), np.ones((3, 3, 1)))
    iio.imwrite(OUT / "bbbc007_splits.png", (255 * figure).astype(np.uint8))
    print("wrote", OUT / "bbbc007_splits.png")


def fig_scribble_panels() -> None:
    """scribbles_before_after.png: make_scribble_figure.py's four panels (no viewer)."""
    from make_scribble_figure import main as scribble_figure

    scribble_figure(OUT / "scribbles_before_after.png")


def fig_batch_layer() -> None:
    """batch_layer.png: Batch (DEM) on the time-lapse layer, instances written to an .ome.zarr."""
    viewer = _viewer()
    _sample(viewer, "timelapse")
    _, batch = _dock(viewer, "Batch (DEM)")
    out = Path(tempfile.mkdtemp()) / "labels"
    batch.source_combo.setCurrentText("a layer")
    batch.out_edit.setText(str(out))
    batch.format_combo.setCurrentText(".ome.zarr")
    batch.instances_check.setChecked(True)
    _wait(batch, batch.run)
    batch.labels_layer.opacity = 0.6
    viewer.layers.selection.active = batch.labels_layer
    viewer.dims.set_point(0, 5)
    viewer.reset_view()
    _grab(viewer, "batch_layer.png")
    viewer.close()


def shapes_scene(n_each: int = 40, cell: int = 40, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A noisy image of ``n_each`` discs and ``n_each`` squares of random sizes and brightness,
    one per grid cell, and its instance labels."""
    from skimage.draw import disk, rectangle
    from skimage.filters import gaussian

    rng = np.random.default_rng(seed)
    n = 2 * n_each
    cols = int(np.ceil(np.sqrt(n * 1.5)))
    rows = int(np.ceil(n / cols))
    labels = np.zeros((rows * cell, cols * cell), np.uint16)
    kinds = rng.permutation(np.repeat([0, 1], n_each))
    for i, kind in enumerate(kinds):
        cy = (i // cols) * cell + cell / 2 + rng.uniform(-3, 3)
        cx = (i % cols) * cell + cell / 2 + rng.uniform(-3, 3)
        r = rng.uniform(7, 14)
        if kind == 0:
            rr, cc = disk((cy, cx), r, shape=labels.shape)
        else:
            rr, cc = rectangle((cy - 0.9 * r, cx - 0.9 * r), extent=(1.8 * r, 1.8 * r), shape=labels.shape)
        labels[np.asarray(rr, int), np.asarray(cc, int)] = i + 1
    bright = rng.uniform(120, 220, n + 1)[labels] * (labels > 0)
    image = gaussian(bright, sigma=1.0, preserve_range=True) + rng.normal(30, 12, labels.shape)
    return image.astype(np.float32), labels


def fig_cluster() -> None:
    """cluster_widget.png: Cluster objects (DEM), discs and squares grouped into K = 2."""
    viewer = _viewer((1400, 900))
    image, labels = shapes_scene()
    viewer.add_image(image, name="shapes")
    objects = viewer.add_labels(labels, name="objects")
    _, w = _dock(viewer, "Cluster objects (DEM)")
    w.image_combo.setCurrentText("shapes")
    w.labels_combo.setCurrentText("objects")
    w.clusters_spin.setValue(2)
    _wait(w, w.run)
    objects.visible = False
    clusters = viewer.layers[w.clusters_layer.name]
    clusters.opacity = 0.55
    viewer.layers.selection.active = clusters
    viewer.reset_view()
    print(w.message.text())
    _grab(viewer, "cluster_widget.png")
    viewer.close()


FIGURES: dict[str, Callable[[], None]] = {
    "widgets": fig_widgets,
    "segment_2d": fig_segment_2d,
    "zstack": fig_zstack,
    "zstack_large": fig_zstack_large,
    "texture": fig_texture,
    "stain": fig_stain,
    "nucleoli": fig_nucleoli,
    "padding": fig_padding,
    "timelapse": fig_timelapse,
    "scribbles": fig_scribbles,
    "batch_layer": fig_batch_layer,
    "batch_folder": fig_batch_folder,
    "finetune": fig_finetune,
    "cluster": fig_cluster,
    "cli_overlay": fig_cli_overlay,
    "scribble_panels": fig_scribble_panels,
    "bbbc007_splits": fig_bbbc007_splits,
}


def main(argv: list[str] | None = None) -> None:
    global OUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "figures", nargs="*", metavar="FIGURE", help=f"any of {', '.join(FIGURES)}; default: all"
    )
    parser.add_argument("--list", action="store_true", help="name the figures and what they show")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the images (default docs/images)")
    args = parser.parse_args(argv)
    OUT = args.out
    unknown = [name for name in args.figures if name not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    if args.list:
        for name, fn in FIGURES.items():
            print(f"{name:16} {fn.__doc__.splitlines()[0]}")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    from qtpy.QtCore import QSettings

    # the widgets remember their fields: keep the figures' settings out of the user's file
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    for name in args.figures or list(FIGURES):
        FIGURES[name]()


if __name__ == "__main__":
    main()

"""The Batch (DEM) dock widget under a real viewer (``xvfb-run -a python -m pytest tests/gui``)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

from gui_helpers import dock, run_job  # noqa: E402

import napari_dem.core  # noqa: F401,E402  (crash guard first)
from napari_dem.data.synthetic import synthetic_nuclei  # noqa: E402

BATCH = "Batch (DEM)"
TIMEOUT = 60_000


def _write_images(folder, n, shape=(64, 64)):
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.tif"
        tifffile.imwrite(path, synthetic_nuclei(shape, seed=i)[0])
        paths.append(path)
    return paths


def _folder_widget(viewer, src, out):
    w = dock(viewer, BATCH)
    w.source_combo.setCurrentText("a folder")
    w.folder_edit.setText(str(src))
    w.pattern_edit.setText("*.tif")
    w.out_edit.setText(str(out))
    return w


def _visible_files(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_batch_widget_loads(make_napari_viewer):
    from napari_dem._widgets import BatchWidget

    viewer = make_napari_viewer()
    w = dock(viewer, BATCH)
    assert isinstance(w, BatchWidget)
    assert w.source_combo.currentText() == "a layer"
    assert [w.format_combo.itemText(i) for i in range(w.format_combo.count())] == [
        ".tif",
        ".zarr",
        ".ome.zarr",
        ".npy",
    ]
    assert w.pattern_edit.text() == "*.tif"


def test_folder_run_then_rerun_skips(make_napari_viewer, qtbot, tmp_path):
    import tifffile

    from napari_dem.batch import output_path

    viewer = make_napari_viewer()
    inputs = _write_images(tmp_path / "in", 3)
    out = tmp_path / "out"
    w = _folder_widget(viewer, tmp_path / "in", out)
    n_layers = len(viewer.layers)
    run_job(qtbot, w)
    assert len(w.summary.done) == 3 and not w.summary.skipped and not w.summary.failed
    assert w.summary.line() in w.message.text()
    assert w.run_button.text() == "Run"
    assert w.progress_bar.value() == w.progress_bar.maximum() == 3
    for src in inputs:
        labels = tifffile.imread(output_path(src, out, ".tif"))
        assert labels.shape == (64, 64)
        assert set(np.unique(labels)) == {0, 1}  # nuclei found as objects at default settings
    assert len(_visible_files(out)) == 3
    assert len(viewer.layers) == n_layers  # a folder run adds no layer

    # resumable: a second run recomputes nothing
    mtimes = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    run_job(qtbot, w)
    assert len(w.summary.skipped) == 3 and not w.summary.done
    assert w.summary.line() in w.message.text()
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_folder_one_mixture_for_all_files_matches_the_core(make_napari_viewer, qtbot, tmp_path):
    """ "one mixture for all files": the widget fits one segmenter and labels every file with it,
    exactly as ``batch_segment(..., segmenter=fit_shared(...))`` does (the CLI's --fit-on)."""
    import tifffile

    from napari_dem.batch import batch_segment, fit_shared, output_path

    viewer = make_napari_viewer()
    inputs = _write_images(tmp_path / "in", 3)
    w = _folder_widget(viewer, tmp_path / "in", tmp_path / "out")
    w.shared_check.setChecked(True)
    run_job(qtbot, w)
    assert len(w.summary.done) == 3 and "one mixture for all files: K=" in w.message.text()
    settings = w.settings()
    core = batch_segment(inputs, tmp_path / "core", settings, segmenter=fit_shared(inputs, settings))
    assert len(core.done) == 3
    for src in inputs:
        mine = tifffile.imread(output_path(src, tmp_path / "out", ".tif"))
        theirs = tifffile.imread(output_path(src, tmp_path / "core", ".tif"))
        np.testing.assert_array_equal(mine, theirs)


def test_folder_corrupt_file_failed_rest_done(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    _write_images(tmp_path / "in", 2)
    (tmp_path / "in" / "broken.tif").write_bytes(b"this is not a tiff")
    out = tmp_path / "out"
    w = _folder_widget(viewer, tmp_path / "in", out)
    w.format_combo.setCurrentText(".npy")
    run_job(qtbot, w)
    assert len(w.summary.done) == 2
    assert [src for src, _ in w.summary.failed] == [str(tmp_path / "in" / "broken.tif")]
    assert "1 failed" in w.message.text() and "broken.tif" in w.message.text()
    assert _visible_files(out) == ["img0_labels.npy", "img1_labels.npy"]


@pytest.mark.parametrize("fmt", [".tif", ".ome.zarr"])
def test_layer_run_adds_labels_with_geometry(make_napari_viewer, qtbot, tmp_path, fmt):
    from napari_dem.io import read_image, read_record

    viewer = make_napari_viewer()
    img = synthetic_nuclei((4, 64, 64), seed=3)[0]
    layer = viewer.add_image(
        img, name="movie", scale=(2.0, 0.5, 0.25), translate=(10.0, -5.0, 3.0), axis_labels=("t", "y", "x")
    )
    w = dock(viewer, BATCH)
    w.image_combo.setCurrentText("movie")
    w.format_combo.setCurrentText(fmt)
    w.out_edit.setText(str(tmp_path / "out"))
    run_job(qtbot, w)
    labels = w.labels_layer
    assert labels.name in viewer.layers and viewer.layers[-1].name == labels.name == "movie DEM labels"
    assert labels.data.shape == img.shape, (labels.data.shape, w._plan["axes"])
    for attr in ("scale", "translate", "rotate", "shear"):
        np.testing.assert_allclose(getattr(labels, attr), getattr(layer, attr))
    assert tuple(labels.axis_labels) == tuple(layer.axis_labels)
    out = tmp_path / "out" / f"movie_labels{fmt}"
    assert w.output == out and out.exists()
    assert _visible_files(tmp_path / "out") == [out.name]
    written = np.asarray(read_image(out)[0])
    np.testing.assert_array_equal(written, np.asarray(labels.data))
    # what the fit decided reaches the layer, also from the streamed (.ome.zarr) path
    record, meta = read_record(out), labels.metadata["dem"]
    assert (meta["task"], meta["n_clusters"]) == (record["labels_are"], record["n_clusters"])
    expected = {0, 1} if meta["task"] == "objects" else set(range(1, meta["n_clusters"] + 1))
    assert set(np.unique(written)) <= expected
    assert str(out) in w.message.text()
    # an existing output is not replaced unless asked
    assert w.run() is None and "overwrite" in w.message.text()


def test_cancel_leaves_no_layer_and_no_file(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    img = synthetic_nuclei((30, 128, 128), seed=4)[0]
    viewer.add_image(img, name="long", axis_labels=("t", "y", "x"))
    w = dock(viewer, BATCH)
    w.out_edit.setText(str(tmp_path / "out"))
    n_layers = len(viewer.layers)
    job = w.run()
    assert job is not None and w.run_button.text() == "Cancel"
    w.cancel()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "cancelled"
    assert w.run_button.text() == "Run"
    assert len(viewer.layers) == n_layers
    out = tmp_path / "out"
    assert not out.exists() or _visible_files(out) == []


def test_bad_settings_show_message(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    w = dock(viewer, BATCH)
    # layer source without a layer
    w.out_edit.setText(str(tmp_path / "out"))
    assert w.run() is None and "Image layer" in w.message.text()
    viewer.add_image(synthetic_nuclei((64, 64), seed=1)[0], name="img")
    # no output folder
    w.out_edit.setText("")
    assert w.run() is None and "output folder" in w.message.text()
    # folder source: folder missing
    w.source_combo.setCurrentText("a folder")
    w.out_edit.setText(str(tmp_path / "out"))
    w.folder_edit.setText(str(tmp_path / "nowhere"))
    assert w.run() is None and "not found" in w.message.text()
    # folder without matching files
    (tmp_path / "empty").mkdir()
    w.folder_edit.setText(str(tmp_path / "empty"))
    assert w.run() is None and w.message.text()
    # a model file that does not exist
    _write_images(tmp_path / "in", 1)
    w.folder_edit.setText(str(tmp_path / "in"))
    w.model_edit.setText(str(tmp_path / "missing.pt"))
    assert w.run() is None and "model file not found" in w.message.text()
    w.model_edit.setText("")
    # objects that do not parse, or objects with the classes task
    w.objects_combo.setCurrentText("2,x")
    assert w.run() is None and "cluster ids like 2,3" in w.message.text()
    w.objects_combo.setCurrentText("darkest")
    w.task_combo.setCurrentText("classes")
    assert w.run() is None and "objects task" in w.message.text()
    assert w.job is None and not (tmp_path / "out").exists()


def test_task_and_objects_reach_every_file(make_napari_viewer, qtbot, tmp_path):
    """A batch of many images should not mix objects and classes: task and objects apply to all."""
    import tifffile

    from napari_dem.batch import output_path

    viewer = make_napari_viewer()
    inputs = _write_images(tmp_path / "in", 2)
    w = _folder_widget(viewer, tmp_path / "in", tmp_path / "out")
    w.objects_combo.setCurrentText("darkest")  # the dark field is the object: most of each image
    run_job(qtbot, w)
    assert len(w.summary.done) == 2
    for src in inputs:
        assert tifffile.imread(output_path(src, tmp_path / "out", ".tif")).mean() > 0.5
    w.objects_combo.setCurrentText("auto")
    w.task_combo.setCurrentText("classes")
    w.clusters_spin.setValue(3)
    w.overwrite_check.setChecked(True)
    run_job(qtbot, w)
    for src in inputs:
        assert set(np.unique(tifffile.imread(output_path(src, tmp_path / "out", ".tif")))) == {1, 2, 3}

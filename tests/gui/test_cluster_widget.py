"""The Cluster objects (DEM) dock widget under a real viewer (``xvfb-run -a python -m pytest tests/gui``).

Consistency only (layers, geometry, tables, CSV, cancel, messages): clustering accuracy is
tested on the core (tests/test_cluster.py).
"""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

from gui_helpers import dock, run_job  # noqa: E402

import napari_dem.core  # noqa: F401,E402  (crash guard first)

CLUSTER = "Cluster objects (DEM)"
TIMEOUT = 180_000  # about 4 s on 2 idle cores; generous for a busy machine
STEPS = 20  # enough to run every stage; accuracy is not checked here


def _shapes_scene(n_each: int = 30, cell: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_each`` discs and ``n_each`` squares of random sizes, one per grid cell, and their instance ids."""
    from skimage.draw import disk, rectangle

    rng = np.random.default_rng(seed)
    n = 2 * n_each
    side = int(np.ceil(np.sqrt(n)))
    labels = np.zeros((side * cell, side * cell), np.uint16)
    kinds = rng.permutation(np.repeat([0, 1], n_each))
    for i, kind in enumerate(kinds):
        cy, cx = (i // side) * cell + cell / 2, (i % side) * cell + cell / 2
        r = rng.uniform(6, 12)
        if kind == 0:
            rr, cc = disk((cy, cx), r, shape=labels.shape)
        else:
            rr, cc = rectangle((cy - r * 0.9, cx - r * 0.9), extent=(1.8 * r, 1.8 * r), shape=labels.shape)
        labels[np.asarray(rr, int), np.asarray(cc, int)] = i + 1
    image = (labels > 0) * 200.0 + rng.normal(30, 10, labels.shape)
    return image.astype(np.float32), labels


@pytest.fixture(scope="module")
def scene():
    return _shapes_scene()


def _objects_widget(viewer, scene, **layer_kwargs):
    image, labels = scene
    viewer.add_image(image, name="shapes", **layer_kwargs)
    lab = viewer.add_labels(labels.copy(), name="objects", **layer_kwargs)
    w = dock(viewer, CLUSTER)
    w.image_combo.setCurrentText("shapes")
    w.labels_combo.setCurrentText("objects")
    w.steps_spin.setValue(STEPS)
    w.device_combo.setCurrentText("cpu")
    return w, lab


def test_cluster_widget_loads(make_napari_viewer):
    from napari_dem._widgets import ClusterWidget

    viewer = make_napari_viewer()
    w = dock(viewer, CLUSTER)
    assert isinstance(w, ClusterWidget)
    assert [w.mode_combo.itemText(i) for i in range(w.mode_combo.count())] == ["Objects", "Frames"]
    methods = [w.method_combo.itemText(i) for i in range(w.method_combo.count())]
    assert methods == ["gedi", "dem", "joint", "depict", "nmm"]
    assert (w.clusters_spin.minimum(), w.clusters_spin.maximum()) == (2, 50)
    assert w.steps_spin.value() == 600 and w.size_spin.value() == 28 and w.mask_check.isChecked()
    assert w.axes_combo.currentText() == "auto"
    assert not w.save_button.isEnabled()


def test_objects_run_adds_cluster_labels(make_napari_viewer, qtbot, tmp_path, scene):
    _, labels = scene
    viewer = make_napari_viewer()
    geometry = {
        "scale": (0.5, 0.25),
        "translate": (10.0, -5.0),
        "axis_labels": ("y", "x"),
        "units": ("um", "um"),
    }
    w, lab = _objects_widget(viewer, scene, **geometry)
    import pandas as pd

    # the user's own per-label column survives; our columns are added (issue 13 item 5)
    lab.features = pd.DataFrame({"index": np.unique(labels[labels > 0]), "area_um2": 1.5})
    k = 3
    w.clusters_spin.setValue(k)
    n_layers = len(viewer.layers)
    run_job(qtbot, w, timeout=TIMEOUT)

    assert len(viewer.layers) == n_layers + 1
    assert w.clusters_layer.name == viewer.layers[-1].name == "objects clusters"
    out = viewer.layers["objects clusters"]
    assert out.data.shape == labels.shape and out.data.dtype == np.uint8
    for attr in ("scale", "translate", "rotate", "shear"):
        np.testing.assert_allclose(getattr(out, attr), getattr(lab, attr))
    np.testing.assert_allclose(out.affine.affine_matrix, lab.affine.affine_matrix)
    assert tuple(out.axis_labels) == tuple(lab.axis_labels) and tuple(out.units) == tuple(lab.units)
    # the input layer is untouched
    np.testing.assert_array_equal(lab.data, labels)

    # every object is painted with exactly one cluster id in 1..K; background stays 0
    data = np.asarray(out.data)
    assert np.all(data[labels == 0] == 0)
    ids = np.unique(labels[labels > 0])
    painted = {}
    for obj in ids:
        values = np.unique(data[labels == obj])
        assert len(values) == 1 and 1 <= values[0] <= k, (obj, values)
        painted[int(obj)] = int(values[0])

    # per-object table (metadata, widget, CSV) agrees with the painting
    table = out.metadata["napari-dem clusters"]["table"]
    assert list(table.columns) == ["label", "cluster", "confidence"]
    assert table["label"].tolist() == ids.tolist()
    assert dict(zip(table["label"], table["cluster"], strict=True)) == painted
    assert table["confidence"].between(0, 1).all()
    assert w.table.rowCount() == len(ids)
    assert [w.table.horizontalHeaderItem(i).text() for i in range(3)] == ["label", "cluster", "confidence"]
    row = 5
    assert int(w.table.item(row, 0).text()) == ids[row]
    assert int(w.table.item(row, 1).text()) == painted[int(ids[row])]

    # features: one row per label value of this layer (0 = background, 1..K), as napari hovers them
    features = out.features
    assert features["index"].tolist() == list(range(k + 1))
    assert features["cluster"].tolist() == list(range(k + 1))
    counts = np.bincount(list(painted.values()), minlength=k + 1)
    assert features["objects"].tolist() == counts.tolist()
    assert out.get_status((0, 0))  # hovering works
    # the input labels layer's features: one row per label, user's column kept
    src = lab.features
    assert src["index"].tolist() == ids.tolist()
    assert dict(zip(src["index"], src["cluster"], strict=True)) == painted
    assert src["cluster_confidence"].between(0, 1).all() and (src["area_um2"] == 1.5).all()
    obj = int(ids[0])
    where = np.argwhere(labels == obj)[0]
    props = out._get_properties(tuple(where), world=False)
    assert f"cluster: {painted[obj]}" in props

    assert "60 objects in 3 clusters" in w.message.text()
    assert w.save_button.isEnabled()
    path = w.save_csv(tmp_path / "objects.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["label", "cluster", "confidence"] and len(rows) == len(ids) + 1
    assert {int(r[0]): int(r[1]) for r in rows[1:]} == painted
    # clicking a row centres the view on that object
    w._on_row_clicked(row, 0)
    centre = lab.data_to_world(np.argwhere(labels == ids[row]).mean(0))
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    np.testing.assert_allclose(camera.center[-2:], centre, atol=1e-6)


def test_frames_mode_table_metadata_and_csv(make_napari_viewer, qtbot, tmp_path, scene):
    from napari_dem.core.objects import object_crops

    image, labels = scene
    crops, _ = object_crops(image, labels, size=28, mask=False)
    frames = crops[:12]
    viewer = make_napari_viewer()
    layer = viewer.add_image(frames, name="frames", axis_labels=("t", "y", "x"))
    w = dock(viewer, CLUSTER)
    w.mode_combo.setCurrentText("Frames")
    assert not w.objects_box.isVisibleTo(w)
    w.image_combo.setCurrentText("frames")
    w.steps_spin.setValue(STEPS)
    w.device_combo.setCurrentText("cpu")
    n_layers = len(viewer.layers)
    run_job(qtbot, w, timeout=TIMEOUT)

    assert len(viewer.layers) == n_layers  # Frames adds no layer
    assert w.clusters_layer is None
    table = layer.metadata["napari-dem clusters"]["table"]
    assert list(table.columns) == ["index", "cluster", "confidence"]
    assert table["index"].tolist() == list(range(12))
    assert set(table["cluster"]) <= {1, 2}
    assert w.table.rowCount() == 12
    assert [w.table.horizontalHeaderItem(i).text() for i in range(3)] == ["index", "cluster", "confidence"]
    # the same CSV contract as `napari-dem cluster`
    path = w.save_csv(tmp_path / "frames.csv")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["index", "cluster", "confidence"] and len(rows) == 13
    assert [int(r[1]) for r in rows[1:]] == table["cluster"].tolist()
    assert all(0 <= float(r[2]) <= 1 and len(r[2].split(".")[1]) == 4 for r in rows[1:])
    assert str(path) in w.message.text()
    # clicking a row shows that frame
    w._on_row_clicked(7, 0)
    assert viewer.dims.current_step[0] == 7


def test_cancel_leaves_no_layer(make_napari_viewer, qtbot, scene):
    viewer = make_napari_viewer()
    w, _ = _objects_widget(viewer, scene)
    w.steps_spin.setValue(100_000)
    n_layers = len(viewer.layers)
    job = w.run()
    assert job is not None and w.run_button.text() == "Cancel", w.message.text()
    qtbot.wait(300)
    w.cancel()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "cancelled"
    assert w.run_button.text() == "Run" and "cancelled" in w.message.text()
    assert len(viewer.layers) == n_layers
    assert w.result is None and not w.save_button.isEnabled()
    # the core thread stops too
    qtbot.waitUntil(lambda: not any(t.name == "napari-dem-core" for t in threading.enumerate()), timeout=5000)


def test_double_click_on_run_does_not_cancel(make_napari_viewer, qtbot, scene):
    """The second click of a double click on Run is ignored, as in the other widgets: before,
    this widget cancelled the job its first click had started."""
    viewer = make_napari_viewer()
    w, _ = _objects_widget(viewer, scene)
    n_layers = len(viewer.layers)
    w.run_button.click()
    w.run_button.click()  # the second click of a double click
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "done", w.message.text()
    assert len(viewer.layers) == n_layers + 1


def test_bad_settings_show_message(make_napari_viewer, scene):
    from napari_dem._widgets._common import ERROR_STYLE

    image, labels = scene
    viewer = make_napari_viewer()
    w = dock(viewer, CLUSTER)
    assert w.run() is None and "Image layer" in w.message.text()
    viewer.add_image(image, name="shapes")
    assert w.run() is None and "Labels layer" in w.message.text()
    # K > number of objects
    few = np.zeros_like(labels)
    few[labels == 1] = 1
    few[labels == 2] = 2
    viewer.add_labels(few, name="two objects")
    w.labels_combo.setCurrentText("two objects")
    w.clusters_spin.setValue(3)
    assert w.run() is None and "K > number of objects" in w.message.text()
    assert w.message.styleSheet() == ERROR_STYLE
    # no objects
    viewer.add_labels(np.zeros_like(labels), name="empty")
    w.labels_combo.setCurrentText("empty")
    assert w.run() is None and "no objects" in w.message.text()
    # shape mismatch, and a 3D labels layer
    viewer.add_labels(labels[:-4], name="cropped")
    w.labels_combo.setCurrentText("cropped")
    assert "differ" in w.message.text()  # shown at once
    assert w.run() is None and "differ" in w.message.text()
    viewer.add_labels(labels[None, None, None], name="5d")
    w.labels_combo.setCurrentText("5d")
    assert w.run() is None and "YX, ZYX, TYX or TZYX" in w.message.text()
    # Frames: a 2D image is not a stack; more clusters than frames
    w.mode_combo.setCurrentText("Frames")
    assert w.run() is None and "stack of 2D" in w.message.text()
    viewer.add_image(image[None].repeat(3, 0), name="three")
    w.image_combo.setCurrentText("three")
    w.clusters_spin.setValue(4)
    assert w.run() is None and "K > number of frames" in w.message.text()
    w.clusters_spin.setValue(3)
    assert w.validate() and w.message.text() == ""
    assert w.job is None and len([ly for ly in viewer.layers if ly.name.endswith("clusters")]) == 0


def _balls_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (16, 64, 64) stack with 8 objects: solid balls and hollow shells, ids 1..8."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((16, 64, 64), np.uint16)
    zz, yy, xx = np.mgrid[:16, :64, :64]
    for i in range(8):
        cz, cy, cx = 8, 8 + 16 * (i // 4) + 8 * (i % 2), 8 + 16 * (i % 4)
        r = np.sqrt((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2)
        labels[r <= 6] = i + 1
    image = (labels > 0) * 200.0 + rng.normal(30, 10, labels.shape)
    return image.astype(np.float32), labels


def test_objects_mode_3d_and_timelapse(make_napari_viewer, qtbot, tmp_path):
    image, labels = _balls_scene()
    viewer = make_napari_viewer()
    viewer.add_image(image, name="stack", axis_labels=("z", "y", "x"))
    lab = viewer.add_labels(labels, name="objects3d", axis_labels=("z", "y", "x"))
    w = dock(viewer, CLUSTER)
    w.image_combo.setCurrentText("stack")
    w.labels_combo.setCurrentText("objects3d")
    w.steps_spin.setValue(3)
    w.device_combo.setCurrentText("cpu")
    run_job(qtbot, w, timeout=TIMEOUT)
    out = viewer.layers["objects3d clusters"]
    assert out.data.shape == labels.shape
    assert out.metadata["napari-dem clusters"]["axes"] == "ZYX"
    assert lab.features["index"].tolist() == list(range(1, 9))
    assert set(lab.features["cluster"]) <= {1, 2}

    # a time-lapse of 2D frames: each frame's objects are cut separately
    movie = np.stack([labels[8], labels[8]])
    viewer.add_image(np.stack([image[8], image[8]]), name="movie", axis_labels=("t", "y", "x"))
    tl = viewer.add_labels(movie, name="tracks", axis_labels=("t", "y", "x"))
    w.image_combo.setCurrentText("movie")
    w.labels_combo.setCurrentText("tracks")
    run_job(qtbot, w, timeout=TIMEOUT)
    out = viewer.layers["tracks clusters"]
    table = out.metadata["napari-dem clusters"]["table"]
    assert list(table.columns) == ["frame", "label", "cluster", "confidence"]
    assert table["frame"].tolist() == [0] * 8 + [1] * 8
    assert out.data.shape == movie.shape
    for frame, obj, cluster in zip(table["frame"], table["label"], table["cluster"], strict=True):
        assert set(np.unique(out.data[frame][movie[frame] == obj])) == {cluster}
    assert "cluster" not in tl.features.columns  # time-lapse tables stay in metadata and CSV
    rows = list(csv.reader(open(w.save_csv(tmp_path / "t.csv"), newline="")))
    assert rows[0] == ["frame", "label", "cluster", "confidence"] and len(rows) == 17

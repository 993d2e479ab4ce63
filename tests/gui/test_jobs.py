"""Jobs are tied to their widget, layers and computation (issue 12): real viewers under xvfb.

Each test here failed on main before the job rework (see the issue note).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

from gui_helpers import dock, run_job  # noqa: E402

import napari_dem.core  # noqa: F401,E402  (crash guard first)
from napari_dem.data.synthetic import synthetic_nuclei  # noqa: E402

SEGMENT = "Segment (DEM)"
REFINE = "Refine labels (DEM)"
BATCH = "Batch (DEM)"
TIMEOUT = 120_000


def _core_thread() -> threading.Thread | None:
    return next((t for t in threading.enumerate() if t.name == "napari-dem-core"), None)


def _movie(n: int = 30, side: int = 128) -> np.ndarray:
    frames = [synthetic_nuclei((side, side), seed=s)[0] for s in range(3)]
    return np.stack([frames[t % 3] for t in range(n)])


#: Frames of the run the tests stop: with 30, an idle machine finished it within the 0.4 s a
#: test waits before its click, which then started a second run instead of cancelling (a flake).
LONG_RUN_FRAMES = 400


def _start_long_run(viewer, qtbot):
    """A Segment run on a movie, started and past its first tiles, with many frames to go."""
    viewer.add_image(_movie(LONG_RUN_FRAMES), name="movie", axis_labels=("t", "y", "x"))
    w = dock(viewer, SEGMENT)
    job = w.run()
    assert job is not None, w.message.text()
    qtbot.waitUntil(lambda: job.pbar is not None and job.pbar.n >= 2, timeout=TIMEOUT)
    return w, job


@pytest.fixture
def img2d():
    return synthetic_nuclei((64, 64), seed=1)[0]


def test_cancel_ends_the_job_only_when_the_computation_has_ended(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, job = _start_long_run(viewer, qtbot)
    qtbot.wait(400)  # a click, not the second half of a double click
    w.run_button.click()
    # the click returned at once: the GUI thread did not wait for the computation
    assert w.run_button.text() == "Cancelling…" and w.last_status is None
    ended_with_thread: list[bool] = []
    job.on_done = lambda status, f=job.on_done: (ended_with_thread.append(_core_thread() is None), f(status))
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "cancelled"
    assert ended_with_thread == [True]  # "Run" again only once no tile can be processed any more
    assert w.run_button.text() == "Run"
    assert "movie DEM labels" not in viewer.layers


def test_double_click_on_run_does_not_cancel(make_napari_viewer, qtbot, img2d):
    viewer = make_napari_viewer()
    viewer.add_image(img2d, name="img")
    w = dock(viewer, SEGMENT)
    w.run_button.click()
    w.run_button.click()  # the second click of a double click
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "done", w.message.text()
    assert "img DEM labels" in viewer.layers


def test_editing_the_image_during_a_run_does_not_change_the_result(make_napari_viewer, qtbot):
    from napari_dem.core.segment import segment

    movie = _movie(12, 96)
    expected = segment(movie, "TYX", mode="2d").labels
    viewer = make_napari_viewer()
    layer = viewer.add_image(movie.copy(), name="movie", axis_labels=("t", "y", "x"))
    w = dock(viewer, SEGMENT)
    w.run()
    layer.data[-4:] = layer.data[-4:, ::-1]  # edited while the run goes on
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "done", w.message.text()
    np.testing.assert_array_equal(viewer.layers["movie DEM labels"].data, expected)


def test_closing_the_widget_cancels_its_job(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, _ = _start_long_run(viewer, qtbot)
    viewer.window.remove_dock_widget(w)
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "cancelled"
    assert "closed" in w.message.text()
    assert _core_thread() is None
    qtbot.wait(100)
    assert "movie DEM labels" not in viewer.layers


def test_deleting_the_source_image_ends_the_run_without_an_orphan_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    w, _ = _start_long_run(viewer, qtbot)
    viewer.layers.remove("movie")
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "cancelled"
    assert "'movie' was deleted" in w.message.text()
    qtbot.wait(100)
    assert not any(layer.name.endswith("DEM labels") for layer in viewer.layers)


def _segmented(viewer, qtbot, img, k=2):
    viewer.add_image(img, name="img")
    seg = dock(viewer, SEGMENT)
    seg.clusters_spin.setValue(k)
    run_job(qtbot, seg)
    return seg, viewer.layers["img DEM labels"]


def test_deleting_the_labels_during_refine_says_so(make_napari_viewer, qtbot):
    img, mask = synthetic_nuclei((256, 256), seed=1)
    viewer = make_napari_viewer()
    _, layer = _segmented(viewer, qtbot, img)
    ref = dock(viewer, REFINE)
    scrib = ref.add_scribbles_layer()
    scrib.data_setitem(tuple(np.argwhere(mask > 0)[::40].T), 2)
    assert ref.refine_with_scribbles() is not None, ref.message.text()
    viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: ref.last_status is not None, timeout=TIMEOUT)
    assert ref.last_status == "cancelled"
    assert "deleted" in ref.message.text() and "pixels changed" not in ref.message.text()


def test_scribble_id_above_k_is_refused(make_napari_viewer, qtbot, img2d):
    viewer = make_napari_viewer()
    _, layer = _segmented(viewer, qtbot, img2d, k=3)
    before = layer.data.copy()
    ref = dock(viewer, REFINE)
    scrib = ref.add_scribbles_layer()
    scrib.data_setitem((np.array([5]), np.array([5])), 9)
    assert ref.refine_with_scribbles() is None
    assert "9" in ref.message.text() and "K = 3" in ref.message.text()
    np.testing.assert_array_equal(layer.data, before)


def test_refine_warns_when_many_unpainted_pixels_change(make_napari_viewer, qtbot):
    img, mask = synthetic_nuclei((64, 64), seed=1)
    viewer = make_napari_viewer()
    _segmented(viewer, qtbot, img)
    ref = dock(viewer, REFINE)
    scrib = ref.add_scribbles_layer()
    # strokes with the classes swapped: most unpainted pixels follow them
    scrib.data_setitem(tuple(np.argwhere(mask > 0)[::7].T), 1)
    scrib.data_setitem(tuple(np.argwhere(mask == 0)[::50].T), 2)
    assert ref.refine_with_scribbles() is not None, ref.message.text()
    qtbot.waitUntil(lambda: ref.last_status is not None, timeout=TIMEOUT)
    assert ref.last_status == "done", ref.message.text()
    assert "warning" in ref.message.text() and "unpainted" in ref.message.text()


def test_refine_works_on_a_batch_result(make_napari_viewer, qtbot, tmp_path):
    img, mask = synthetic_nuclei((64, 64), seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(img, name="img")
    batch = dock(viewer, BATCH)
    batch.out_edit.setText(str(tmp_path))
    batch.clusters_spin.setValue(2)
    run_job(qtbot, batch)
    layer = viewer.layers["img DEM labels"]
    assert layer.metadata["dem"]["n_clusters"] == 2 and layer.metadata["dem"]["mode"] == "2d"
    ref = dock(viewer, REFINE)
    ref.labels_combo.setCurrentText(layer.name)
    scrib = ref.add_scribbles_layer()
    scrib.data_setitem(tuple(np.argwhere(mask > 0)[::7].T), 2)
    scrib.data_setitem(tuple(np.argwhere(mask == 0)[::50].T), 1)
    assert ref.refine_with_scribbles() is not None, ref.message.text()
    qtbot.waitUntil(lambda: ref.last_status is not None, timeout=TIMEOUT)
    assert ref.last_status == "done", ref.message.text()
    assert set(np.unique(layer.data)) <= {1, 2}


def test_refine_reuses_the_model_fine_tuned_in_the_session(make_napari_viewer, qtbot):
    import torch

    from napari_dem.core.model import DEMConfig, DEMModel
    from napari_dem.core.segment import segment

    img, mask = synthetic_nuclei((64, 64), seed=1)
    viewer = make_napari_viewer()
    viewer.add_image(img, name="img")
    seg = dock(viewer, SEGMENT)
    torch.manual_seed(0)
    tuned = DEMModel(DEMConfig(context_sigma=0.0))  # an untrained stand-in for "fine-tuned"
    seg.session.set_trained_model(tuned, {"steps": 0})
    assert "fine-tuned #1" in seg.model_edit.placeholderText()  # the field says which model it uses
    seg.clusters_spin.setValue(2)
    run_job(qtbot, seg)
    layer = viewer.layers["img DEM labels"]
    assert layer.metadata["dem"]["model"]["source"] == "session"
    seg.session.clear_models()  # back to the default: Refine must still use the tuned model
    ref = dock(viewer, REFINE)
    scrib = ref.add_scribbles_layer()
    scrib.data_setitem(tuple(np.argwhere(mask > 0)[::7].T), 2)
    scribbles = np.asarray(scrib.data).copy()
    assert ref.refine_with_scribbles() is not None, ref.message.text()
    qtbot.waitUntil(lambda: ref.last_status is not None, timeout=TIMEOUT)
    assert ref.last_status == "done", ref.message.text()
    expected = segment(img, "YX", model=tuned, n_clusters=2, mode="2d", scribbles=scribbles).labels
    default = segment(img, "YX", n_clusters=2, mode="2d", scribbles=scribbles).labels
    assert not np.array_equal(expected, default)
    np.testing.assert_array_equal(layer.data, expected)


def test_error_messages_have_no_exception_class_name(make_napari_viewer, qtbot, img2d, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(img2d, name="img")
    w = dock(viewer, SEGMENT)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    w.model_edit.setText(str(junk))
    job = w.run()
    assert job is not None, w.message.text()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "error"
    text = w.message.text()
    assert "junk.pt" in text and not text.startswith(("ModelFileError", "ValueError"))


def test_many_clusters_are_warned_about(make_napari_viewer, img2d):
    viewer = make_napari_viewer()
    viewer.add_image(img2d, name="img")
    w = dock(viewer, SEGMENT)
    w.clusters_spin.setValue(200)
    assert "warning" in w.message.text() and "200" in w.message.text()
    w.clusters_spin.setValue(4)
    assert w.message.text() == ""

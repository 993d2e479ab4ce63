"""The Fine-tune (DEM) dock widget under a real viewer (``xvfb-run -a python -m pytest tests/gui``)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

import napari_dem.core  # noqa: F401,E402  (crash guard first)
from napari_dem.data.synthetic import synthetic_nuclei  # noqa: E402

FINETUNE = "Fine-tune (DEM)"
TIMEOUT = 60_000


@pytest.fixture
def img2d():
    return synthetic_nuclei((64, 64), seed=1)[0]


def _widget(make_napari_viewer, img, steps=8):
    viewer = make_napari_viewer()
    viewer.add_image(img, name="nuclei")
    _, w = viewer.window.add_plugin_dock_widget("napari-dem", FINETUNE)
    assert w.checked_names() == ["nuclei"]
    w.steps_spin.setValue(steps)
    w.patch_spin.setValue(32)
    w.batch_spin.setValue(2)
    w.seed_spin.setValue(3)
    w.device_combo.setCurrentText("cpu")
    return viewer, w


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _labels(img, model):
    from napari_dem.core.segment import segment

    return segment(img, "YX", model=model, device="cpu").labels


def test_widget_loads(make_napari_viewer):
    from napari_dem._widgets import FineTuneWidget

    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget("napari-dem", FINETUNE)
    assert isinstance(w, FineTuneWidget)
    assert w.steps_spin.value() == 100
    assert w.lr_spin.value() == pytest.approx(5e-5)
    assert w.patch_spin.value() == 96 and w.batch_spin.value() == 8
    assert w.start() is None  # no image: refused with a message
    assert "Image layer" in w.message.text()


def test_background_training_changes_weights(make_napari_viewer, qtbot, img2d):
    from napari_dem.core.model import load_default_model

    _, w = _widget(make_napari_viewer, img2d, steps=8)
    before = _state(load_default_model(2))
    job = w.start()
    assert job is not None, w.message.text()
    assert w.start_button.text() == "Stop"
    assert w.start() is None and "already running" in w.message.text()  # refused, not queued
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "done", w.message.text()
    assert w.start_button.text() == "Start"
    assert len(w.history.steps) == 8 and len(w.losses) == 8
    assert all(np.isfinite(s.losses["total"]) for s in w.history.steps)
    assert set(w.history.steps[-1].losses) >= {"total", "nll", "entropy", "recon"}
    assert w.progress_bar.value() == 8
    assert "total" in w.loss_label.text()
    assert len(w.loss_plot.values) == 8
    model = w.session.model(2)
    assert model is not None and model.metadata["training_steps"] == 8
    after = _state(model)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    # the bundled default is untouched (training ran on a copy)
    default = _state(load_default_model(2))
    assert all(np.array_equal(before[k].numpy(), default[k].numpy()) for k in before)


def test_stop_keeps_usable_model(make_napari_viewer, qtbot, img2d):

    _, w = _widget(make_napari_viewer, img2d, steps=5000)
    job = w.start()
    assert job is not None, w.message.text()
    qtbot.waitUntil(lambda: len(w.losses) >= 3, timeout=TIMEOUT)
    w.stop()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=TIMEOUT)
    assert w.last_status == "stopped", w.message.text()
    assert w.history.cancelled and 3 <= len(w.history.steps) < 5000
    model = w.session.model(2)
    assert model is not None
    labels = _labels(img2d, model)
    assert labels.shape == img2d.shape and len(np.unique(labels)) >= 2


def test_save_load_round_trip_and_bad_files(make_napari_viewer, qtbot, img2d, tmp_path):

    _, w = _widget(make_napari_viewer, img2d, steps=6)
    w.run_synchronously = True
    w.start()
    assert w.last_status == "done", w.message.text()
    trained = w.session.model(2)
    path = w.save(tmp_path / "ft.pt")
    assert path is not None and path.is_file()

    from napari_dem.core.model import load_model

    assert load_model(path).metadata["training_images"] == ["nuclei (64, 64)"]
    assert load_model(path).metadata["training_steps"] == 6

    loaded = w.load(path)
    assert loaded is not None and w.session.model(2) is loaded
    np.testing.assert_array_equal(_labels(img2d, trained), _labels(img2d, loaded))

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for bad in (junk, truncated, tmp_path / "missing.pt"):
        assert w.load(bad) is None
        assert bad.name in w.message.text() and "unchanged" in w.message.text()
        assert w.session.model(2) is loaded


def test_same_seed_same_weights(img2d):
    from napari_dem._widgets.finetune import run_finetune
    from napari_dem.core.model import load_default_model
    from napari_dem.core.train import TrainSettings, training_units

    units = training_units(img2d, "YX", 2)
    settings = TrainSettings(steps=6, batch_size=2, patch_size=32, lr=2e-4, seed=7)
    base = load_default_model(2)
    a, ha = run_finetune(base, units, settings, device="cpu")
    b, hb = run_finetune(base, units, settings, device="cpu")
    assert ha.series() == hb.series()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k].numpy(), sb[k].numpy())
    assert a is not base and b is not base


def test_segment_again_without_segment_widget(make_napari_viewer, img2d):
    _, w = _widget(make_napari_viewer, img2d)
    assert w.segment_again() is None
    assert "Segment (DEM)" in w.message.text()


def test_segment_again_runs_docked_segment(make_napari_viewer, qtbot, img2d):
    viewer, w = _widget(make_napari_viewer, img2d)
    _, seg = viewer.window.add_plugin_dock_widget("napari-dem", "Segment (DEM)")
    seg.run_synchronously = True
    job = w.segment_again()
    assert job is not None, seg.message.text()
    qtbot.waitUntil(lambda: seg.last_status is not None, timeout=TIMEOUT)
    assert seg.last_status == "done"
    assert "nuclei DEM labels" in viewer.layers


def test_segment_widget_uses_the_fine_tuned_model_and_waits_for_training(make_napari_viewer, img2d, qtbot):
    import torch

    from napari_dem.core.model import DEMConfig, DEMModel

    viewer = make_napari_viewer()
    viewer.add_image(img2d, name="nuclei")
    _, seg = viewer.window.add_plugin_dock_widget("napari-dem", "Segment (DEM)")
    seg.run_synchronously = True
    seg.run()
    default_labels = np.asarray(viewer.layers["nuclei DEM labels"].data).copy()

    torch.manual_seed(0)
    other = DEMModel(DEMConfig(context_sigma=0.0))  # an untrained stand-in for "fine-tuned"
    seg.session.set_trained_model(other, {"steps": 0})
    seg.run()
    assert seg.last_status == "done"
    tuned_labels = np.asarray(viewer.layers["nuclei DEM labels"].data)
    assert np.array_equal(tuned_labels, _labels(img2d, other))
    assert not np.array_equal(tuned_labels, default_labels)

    assert seg.session.begin_training()  # a fine-tuning is running: segmentation is refused, not interleaved
    assert seg.run() is None
    assert "fine-tuning is running" in seg.message.text()

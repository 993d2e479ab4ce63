"""Every field explains itself; settings are remembered between sessions and can be reset."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui

pytest.importorskip("napari")

from gui_helpers import dock  # noqa: E402

import napari_dem.core  # noqa: F401,E402  (crash guard first)

#: The widgets this rule covers: all five.
WIDGETS = ["Segment (DEM)", "Refine labels (DEM)", "Fine-tune (DEM)", "Batch (DEM)", "Cluster objects (DEM)"]


@pytest.mark.parametrize("name", WIDGETS)
def test_every_field_has_a_tooltip_that_is_not_its_label(make_napari_viewer, name):
    from qtpy.QtWidgets import (
        QAbstractButton,
        QAbstractItemView,
        QAbstractSpinBox,
        QComboBox,
        QFormLayout,
        QLabel,
        QLineEdit,
        QListWidget,
    )

    w = dock(make_napari_viewer(), name)
    labels = {
        lay.labelForField(child).text(): child
        for lay in w.findChildren(QFormLayout)
        for child in w.findChildren((QComboBox, QLineEdit, QAbstractSpinBox, QListWidget))
        if isinstance(lay.labelForField(child), QLabel)
    }
    fields = [
        f
        for f in w.findChildren((QAbstractButton, QComboBox, QLineEdit, QAbstractSpinBox, QListWidget))
        # their inner editors, and a table's corner button
        if not isinstance(f.parent(), QAbstractSpinBox | QComboBox | QAbstractItemView)
    ]
    assert len(fields) >= 8
    missing = [f"{type(f).__name__} {getattr(f, 'text', lambda: '')()!r}" for f in fields if not f.toolTip()]
    assert not missing, missing
    for text, field in labels.items():
        assert field.toolTip().strip().lower() != text.strip().lower()
        assert len(field.toolTip()) > len(text) + 15, (text, field.toolTip())


def test_settings_are_remembered_and_restored_to_defaults(make_napari_viewer, _private_widget_settings):
    from napari_dem._widgets._settings import qsettings

    assert qsettings().fileName().startswith(str(_private_widget_settings))  # never the user's file
    first = dock(make_napari_viewer(), "Segment (DEM)")
    assert first.clusters_spin.value() == 0 and first.mode_combo.currentText() == "auto"  # defaults
    first.clusters_spin.setValue(4)
    first.mode_combo.setCurrentText("2d")
    first.seed_spin.setValue(7)

    again = dock(make_napari_viewer(), "Segment (DEM)")  # a later napari session
    assert again.clusters_spin.value() == 4
    assert again.mode_combo.currentText() == "2d"
    assert again.seed_spin.value() == 7

    from qtpy.QtWidgets import QPushButton

    [button] = [b for b in again.findChildren(QPushButton) if b.text() == "Restore defaults"]
    button.click()
    assert again.clusters_spin.value() == 0 and again.mode_combo.currentText() == "auto"
    assert again.seed_spin.value() == 0
    third = dock(make_napari_viewer(), "Segment (DEM)")
    assert third.clusters_spin.value() == 0


def test_a_finished_job_and_an_error_are_napari_notifications(make_napari_viewer, qtbot, tmp_path):
    from napari.utils.notifications import notification_manager

    from napari_dem.data.synthetic import synthetic_nuclei

    seen: list[str] = []
    notification_manager.notification_ready.connect(lambda event: seen.append(str(event.message)))
    viewer = make_napari_viewer()
    viewer.add_image(synthetic_nuclei((64, 64), seed=1)[0], name="img")
    w = dock(viewer, "Segment (DEM)")
    w.run()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=60_000)
    assert any("done" in m for m in seen), seen
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    w.model_edit.setText(str(junk))
    w.run()
    qtbot.waitUntil(lambda: w.last_status is not None, timeout=60_000)
    assert w.last_status == "error"
    assert any("junk.pt" in m for m in seen), seen


def test_numbers_in_the_widget_docs_come_from_the_code():
    from pathlib import Path

    from napari_dem._widgets._common import DemDockWidget
    from napari_dem._widgets.refine import MOVED_WARNING

    text = (Path(__file__).resolve().parents[2] / "docs" / "napari.md").read_text(encoding="utf-8")
    assert f"within {DemDockWidget.DEBOUNCE_S} s" in text
    assert f"more than {MOVED_WARNING:.0%}".replace("%", " %") in text

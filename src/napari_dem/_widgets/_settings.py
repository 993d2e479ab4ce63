"""Widget settings remembered between napari sessions, with "Restore defaults".

Values live in a :class:`QSettings` INI file of organisation/application
"napari-dem" (one group per widget), so a user who always segments with K = 4 on
the GPU sets that once. The defaults are the values the widget is built with;
"auto" is stored like any other value. Tests point QSettings at a temporary folder
(tests/conftest.py), never at the user's file.
"""

from __future__ import annotations

import json
from typing import Any

from qtpy.QtCore import QSettings
from qtpy.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QPushButton, QSpinBox, QWidget

ORGANISATION = APPLICATION = "napari-dem"


def qsettings() -> QSettings:
    """The napari-dem settings file (INI, user scope: ``QSettings.setPath`` can move it)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION, APPLICATION)


def value_of(field: QWidget) -> Any:
    if isinstance(field, QCheckBox):
        return field.isChecked()
    if isinstance(field, QSpinBox | QDoubleSpinBox):
        return field.value()
    if isinstance(field, QComboBox):
        return field.currentText()
    if isinstance(field, QLineEdit):
        return field.text()
    raise TypeError(f"cannot remember a {type(field).__name__}")


def set_value(field: QWidget, value: Any) -> None:
    """Set a field; a value it cannot take (a device no longer there, a wrong type) is skipped."""
    try:
        if isinstance(field, QCheckBox):
            field.setChecked(bool(value))
        elif isinstance(field, QSpinBox):
            field.setValue(int(value))
        elif isinstance(field, QDoubleSpinBox):
            field.setValue(float(value))
        elif isinstance(field, QComboBox):
            if field.isEditable() or field.findText(str(value)) >= 0:
                field.setCurrentText(str(value))
        elif isinstance(field, QLineEdit):
            field.setText(str(value))
    except (TypeError, ValueError):
        pass


def _changed_signal(field: QWidget):
    if isinstance(field, QCheckBox):
        return field.toggled
    if isinstance(field, QSpinBox | QDoubleSpinBox):
        return field.valueChanged
    if isinstance(field, QComboBox):
        return field.currentTextChanged
    return field.textChanged


class RememberedFields:
    """Restore ``fields`` from the settings group ``group`` now; save each change at once."""

    def __init__(self, group: str, fields: dict[str, QWidget]) -> None:
        self.group = group
        self.fields = fields
        self.defaults = {name: value_of(field) for name, field in fields.items()}
        settings = qsettings()
        for name, field in fields.items():
            stored = settings.value(f"{group}/{name}")
            if stored is not None:
                try:
                    set_value(field, json.loads(stored))
                except (TypeError, ValueError):
                    pass
        for name, field in fields.items():
            _changed_signal(field).connect(lambda *_, n=name: self.save(n))

    def save(self, name: str) -> None:
        settings = qsettings()
        settings.setValue(f"{self.group}/{name}", json.dumps(value_of(self.fields[name])))
        settings.sync()

    def restore_defaults(self) -> None:
        """Every field back to its built-in value (and forget the stored ones)."""
        for name, field in self.fields.items():
            set_value(field, self.defaults[name])
        settings = qsettings()
        settings.remove(self.group)
        settings.sync()

    def button(self) -> QPushButton:
        button = QPushButton("Restore defaults")
        button.setToolTip(
            "Put every setting of this widget back to its built-in value (remembered values go)"
        )
        button.clicked.connect(self.restore_defaults)
        return button

"""The task, objects and stain fields that the Segment and Batch widgets share (the CLI's
``--task``, ``--objects`` and ``--stain``): one place for their choices, tooltips and checks."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox, QFormLayout, QWidget

from napari_dem.core.decide import TASKS, parse_objects
from napari_dem.core.stains import STAIN_CHOICES

#: What the objects field offers; cluster ids such as ``2,3`` can be typed too.
OBJECTS_CHOICES = ("auto", "brightest", "darkest")

TASK_TIP = (
    "objects: 0 = background, 1 = objects (bright on dark or dark on bright, found "
    "automatically). classes: labels 1..K by intensity (tissue types, phases), or from "
    "smooth to rough for regions of one brightness that differ in grain. auto decides "
    "from the image; the message says what it chose."
)
OBJECTS_TIP = (
    "Which clusters are the objects (task objects or auto). auto = found from the image "
    "(bright objects on dark or dark on bright). brightest or darkest, or cluster ids such "
    "as 2,3 (1 = the darkest cluster): use it when auto takes the wrong side."
)

STAIN_TIP = (
    "auto: an RGB image of a stained slide (H&E, IHC) is read by its haematoxylin, the nuclear "
    "stain, so the objects are the nuclei (the message says so). none: by the mean of its "
    "channels, as any image (e.g. for DAB- or eosin-stained regions)."
)


class TaskFields:
    """A task combo box, an editable objects combo box and a stain combo box, with their checks."""

    def __init__(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.addItems(list(TASKS))
        self.task_combo.setToolTip(TASK_TIP)
        self.objects_combo = QComboBox()
        self.objects_combo.setEditable(True)  # or cluster ids such as 2,3
        self.objects_combo.addItems(list(OBJECTS_CHOICES))
        self.objects_combo.setToolTip(OBJECTS_TIP)
        self.stain_combo = QComboBox()
        self.stain_combo.addItems(list(STAIN_CHOICES))
        self.stain_combo.setToolTip(STAIN_TIP)

    def add_rows(self, form: QFormLayout) -> None:
        form.addRow("task", self.task_combo)
        form.addRow("objects", self.objects_combo)
        form.addRow("stain", self.stain_combo)

    def remembered(self) -> dict[str, QWidget]:
        """Entries for :class:`~._settings.RememberedFields`."""
        return {"task": self.task_combo, "objects": self.objects_combo, "stain": self.stain_combo}

    def signals(self) -> list:
        """The signals that should re-validate the widget's settings."""
        return [
            self.task_combo.currentTextChanged,
            self.objects_combo.currentTextChanged,
            self.stain_combo.currentTextChanged,
        ]

    @property
    def task(self) -> str:
        return self.task_combo.currentText()

    @property
    def stain(self) -> str:
        return self.stain_combo.currentText()

    def objects(self) -> str | None:
        """The objects field as the core takes it (None = auto). ``ValueError`` (the core's
        one-line message) for ids that do not parse, or objects with the classes task."""
        text = self.objects_combo.currentText().strip()
        if text.lower() in ("", "auto"):
            return None
        if self.task == "classes":
            raise ValueError("objects applies to the objects task: set task to auto or objects")
        parse_objects(text)  # InputError (a ValueError) names what is wrong
        return text

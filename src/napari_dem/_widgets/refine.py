"""The Refine labels (DEM) dock widget: undoable clean-up edits and scribble-guided re-runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)
from napari_dem.core import refine as core_refine
from napari_dem.labels_meta import LabelsMeta

from ._common import DemDockWidget, Job, apply_undoable, combo_layer, fill_combo, level_data
from ._runs import load_run_model, run_segment, snapshot
from ._settings import RememberedFields

if TYPE_CHECKING:
    import napari

SCRIBBLES_SUFFIX = " scribbles"
#: Above this fraction of changed unpainted pixels, a scribble refinement warns the user.
MOVED_WARNING = 0.10


class RefineWidget(DemDockWidget):
    """Undoable edits on a Labels layer made by the Segment widget (or any Labels layer)."""

    uses_model = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)

        self._make_fields()
        self._set_tooltips()
        self._build_layout()
        self._connect_signals()

        self.watch_layers(self._refresh_layers)

    def _make_fields(self) -> None:
        """Create the widget's fields and buttons."""
        self.labels_combo = QComboBox()
        self.background_edit = QLineEdit("darkest")
        self.merge_edit = QLineEdit()
        self.merge_edit.setPlaceholderText("e.g. 2,3")
        self.merge_button = QPushButton("Merge clusters")
        self.background_button = QPushButton("Set background (→ 0)")
        self.instances_button = QPushButton("Split into instances")
        self.min_size_spin = QSpinBox()
        self.min_size_spin.setRange(1, 10**9)
        self.min_size_spin.setValue(20)
        self.small_button = QPushButton("Remove small objects")
        self.holes_button = QPushButton("Fill holes")
        self.objects3d_check = QCheckBox("3D objects")
        self.add_scribbles_button = QPushButton("Add scribbles layer")
        self.scribble_button = QPushButton("Refine with scribbles")

    def _set_tooltips(self) -> None:
        """Give every field a tooltip that says what it changes."""
        tips = {
            self.labels_combo: "The Labels layer to edit (made by Segment or Batch, or any Labels layer).",
            self.background_edit: (
                "Which label is background for the edits below: 0 (objects, instances, any other tool's "
                "labels), darkest (label 1 of DEM's classes), brightest (label K) or an id. Set from "
                "the layer when you pick it."
            ),
            self.merge_edit: "Label ids to merge into one, e.g. 2,3 when one kind of object got two labels.",
            self.merge_button: "Merge the ids listed on the left into the first of them (Ctrl+Z undoes).",
            self.background_button: "Turn the background label into 0, as most tools expect (Ctrl+Z undoes).",
            self.instances_button: (
                "Split every non-background label into separate objects with ids 1, 2, … (Ctrl+Z undoes)."
            ),
            self.min_size_spin: (
                "Objects smaller than this many pixels are removed. Raise it when specks of noise remain."
            ),
            self.small_button: "Remove objects smaller than the size on the left (Ctrl+Z undoes).",
            self.holes_button: "Fill background holes enclosed by an object (Ctrl+Z undoes).",
            self.objects3d_check: (
                "Objects connect across Z (a 3D object per nucleus). Off: each slice on its own, as for 2D "
                "segmentations of a stack."
            ),
            self.add_scribbles_button: (
                "Add a layer to paint class ids on (1 = darkest … K); a few strokes per class are enough."
            ),
            self.scribble_button: (
                "Re-run the segmentation that made these labels, with the painted pixels held to their "
                "class; click again to cancel. Ctrl+Z undoes the result."
            ),
        }
        for field, tip in tips.items():
            field.setToolTip(tip)

    def _build_layout(self) -> None:
        """Arrange the fields in forms and the widget's layout."""
        form = QFormLayout()
        form.addRow("labels", self.labels_combo)
        form.addRow("background", self.background_edit)
        merge_row = QHBoxLayout()
        merge_row.addWidget(self.merge_edit)
        merge_row.addWidget(self.merge_button)
        small_row = QHBoxLayout()
        small_row.addWidget(self.min_size_spin)
        small_row.addWidget(self.small_button)

        edits = QGroupBox("Edits (each one undoable)")
        edit_layout = QVBoxLayout(edits)
        edit_layout.addLayout(merge_row)
        edit_layout.addWidget(self.background_button)
        edit_layout.addWidget(self.objects3d_check)
        edit_layout.addWidget(self.instances_button)
        edit_layout.addLayout(small_row)
        edit_layout.addWidget(self.holes_button)

        scribbles = QGroupBox("Scribbles")
        scribble_layout = QVBoxLayout(scribbles)
        scribble_layout.addWidget(QLabel("Paint class ids (1 = darkest … K) on a few pixels, then refine."))
        scribble_layout.addWidget(self.add_scribbles_button)
        scribble_layout.addWidget(self.scribble_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(edits)
        layout.addWidget(scribbles)
        self.remembered = self._remembered_fields()
        layout.addWidget(self.remembered.button())
        layout.addWidget(self.message)
        layout.addStretch(1)

    def _remembered_fields(self) -> RememberedFields:
        """The fields whose values are saved and restored between sessions."""
        return RememberedFields("refine", {"min_size": self.min_size_spin})

    def _connect_signals(self) -> None:
        """Wire buttons and fields to their handlers."""
        self.merge_button.clicked.connect(self.merge)
        self.background_button.clicked.connect(self.set_background)
        self.instances_button.clicked.connect(self.split_instances)
        self.small_button.clicked.connect(self.remove_small)
        self.holes_button.clicked.connect(self.fill_holes)
        self.add_scribbles_button.clicked.connect(self.add_scribbles_layer)
        self.scribble_button.clicked.connect(self._on_scribble_clicked)
        self.labels_combo.currentTextChanged.connect(self._on_labels_changed)

    # ------------------------------------------------------------------ layers
    def _refresh_layers(self, event=None) -> None:
        current = self.labels_combo.currentText()
        names = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and not layer.metadata.get("dem_scribbles")
        ]
        fill_combo(self.labels_combo, names)
        if self.labels_combo.currentText() != current:
            self._on_labels_changed(self.labels_combo.currentText())

    def labels_layer(self) -> Labels | None:
        return combo_layer(self.viewer, self.labels_combo, Labels)

    def _on_labels_changed(self, name: str) -> None:
        layer = self.labels_layer()
        if layer is None:
            return
        dem = layer.metadata.get("dem", {})
        self.objects3d_check.setChecked(dem.get("mode") == "3d")
        self.background_edit.setText(default_background(dem))

    # ------------------------------------------------------------------ edits
    def _layer_or_error(self) -> Labels:
        layer = self.labels_layer()
        if layer is None:
            raise ValueError("add or choose a Labels layer (run Segment first)")
        return layer

    def background(self, labels: np.ndarray) -> int:
        spec = self.background_edit.text().strip() or "darkest"
        if spec == "0":
            return 0
        return core_refine.background_id(spec, max(int(labels.max()), 1))

    def _edit(self, what: str, compute) -> bool:
        """Run ``compute(labels) -> new labels`` and apply it as one undoable edit."""
        try:
            layer = self._layer_or_error()
            labels = np.asarray(layer.data)
            new = compute(labels)
            if new is None:
                return False
            new = np.asarray(new)
            if new.size and int(new.max()) > np.iinfo(layer.data.dtype).max:
                out = self.viewer.add_labels(
                    new, name=f"{layer.name} {what}", **_geometry_of(layer), metadata=dict(layer.metadata)
                )
                self.show_info(
                    f"{what}: {int(new.max())} ids do not fit {layer.data.dtype}; new layer {out.name!r}"
                )
                return True
            n = apply_undoable(layer, new)
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return False
        self.show_info(f"{what}: {n} pixels changed (Ctrl+Z undoes)")
        return True

    def merge(self) -> bool:
        def compute(labels):
            text = self.merge_edit.text().replace(";", ",")
            try:
                ids = [int(t) for t in text.split(",") if t.strip()]
            except ValueError:
                raise ValueError(
                    f"cluster ids to merge must be integers separated by commas, got {text!r}"
                ) from None
            if len(ids) < 2:
                raise ValueError("give at least two cluster ids to merge, e.g. 2,3")
            return core_refine.merge_clusters(labels, ids)

        return self._edit("merge", compute)

    def set_background(self) -> bool:
        def compute(labels):
            bg = self.background(labels)
            out = labels.copy()
            out[labels == bg] = 0
            return out

        ok = self._edit("background", compute)
        if ok:
            self.background_edit.setText("0")
        return ok

    def split_instances(self) -> bool:
        def compute(labels):
            bg = self.background(labels)
            ndim = 3 if self.objects3d_check.isChecked() and labels.ndim >= 3 else 2
            return core_refine.instances_from_labels(labels, background=bg, spatial_ndim=ndim)

        ok = self._edit("instances", compute)
        if ok:
            self.background_edit.setText("0")
        return ok

    def remove_small(self) -> bool:
        return self._edit(
            "remove small",
            lambda labels: core_refine.remove_small_objects(
                labels, self.min_size_spin.value(), background=self.background(labels)
            ),
        )

    def fill_holes(self) -> bool:
        return self._edit(
            "fill holes",
            lambda labels: core_refine.fill_holes(labels, background=self.background(labels)),
        )

    # ------------------------------------------------------------------ scribbles
    def scribbles_layer(self, layer: Labels | None = None) -> Labels | None:
        layer = layer or self.labels_layer()
        if layer is None:
            return None
        name = layer.name + SCRIBBLES_SUFFIX
        if name in self.viewer.layers and isinstance(self.viewer.layers[name], Labels):
            return self.viewer.layers[name]
        return None

    def add_scribbles_layer(self) -> Labels | None:
        try:
            layer = self._layer_or_error()
        except ValueError as exc:
            self.show_error(str(exc))
            return None
        scrib = self.scribbles_layer(layer)
        if scrib is None:
            scrib = self.viewer.add_labels(
                np.zeros(layer.data.shape, dtype=np.uint8),
                name=layer.name + SCRIBBLES_SUFFIX,
                metadata={"dem_scribbles": layer.name},
                **_geometry_of(layer),
            )
            scrib.brush_size = 5
        self.viewer.layers.selection.active = scrib
        scrib.selected_label = 1
        scrib.mode = "paint"
        self.show_info("paint class ids in the scribbles layer (keys 1…K pick the id)")
        return scrib

    def _on_scribble_clicked(self) -> None:
        self._start_or_stop(self.busy, self.cancel_job, self.refine_with_scribbles)

    def _scribble_plan(self) -> dict[str, Any]:
        """The labels, their record, source image and scribbles; ``ValueError`` with a user message."""
        layer = self._layer_or_error()
        meta = LabelsMeta.from_dict(layer.metadata.get("dem"), layer.name)
        if meta.instances:
            raise ValueError(f"{layer.name!r} holds objects (instances), not classes: refine class labels")
        if meta.image not in self.viewer.layers or not isinstance(self.viewer.layers[meta.image], Image):
            raise ValueError(f"the image {meta.image!r} that {layer.name!r} came from is gone")
        scrib = self.scribbles_layer(layer)
        if scrib is None or not np.any(scrib.data):
            raise ValueError("add a scribbles layer and paint a few strokes first")
        scribbles = np.array(scrib.data, copy=True)  # painting on during the run changes nothing
        top = int(scribbles.max())
        if top > meta.n_clusters:
            raise ValueError(
                f"scribble id {top} is above K = {meta.n_clusters} of {layer.name!r}: paint ids 1 to "
                f"{meta.n_clusters} (or segment again with more clusters)"
            )
        if self.session.training:
            raise ValueError("fine-tuning is running: wait for it to finish (or stop it)")
        source = self.viewer.layers[meta.image]
        image = snapshot(level_data(source, meta.level))
        return {"layer": layer, "meta": meta, "scribbles": scribbles, "image": image, "source": source}

    def refine_with_scribbles(self) -> Job | None:
        """Re-run DEM on the source image with the scribbles clamped, with the model and
        settings that made the labels; update the labels (one undoable edit)."""
        try:
            plan = self._scribble_plan()
        except ValueError as exc:
            self.show_error(str(exc))
            return None
        layer, meta, scribbles = plan["layer"], plan["meta"], plan["scribbles"]
        before = np.array(layer.data, copy=True)
        previous = before if refinable_classes(before, meta) else None
        session = self.session

        def fn(progress):
            model, _ = load_run_model(session, meta.model, meta.device)
            return run_segment(
                plan["image"], meta, model, scribbles=scribbles, progress=progress, cancel=self.job.token,
                previous=previous,
            )  # fmt: skip

        def on_result(result):
            labels = np.asarray(result.labels)
            if labels.shape != tuple(layer.data.shape):
                raise ValueError(f"labels shape {labels.shape} differs from the layer's {layer.data.shape}")
            n = apply_undoable(layer, labels)
            text = f"refined with scribbles: {n} pixels changed (Ctrl+Z undoes)"
            moved = unpainted_change(before, labels, scribbles)
            if moved > MOVED_WARNING:
                text += (
                    f"; warning: {moved:.0%} of the unpainted pixels changed class: check the result "
                    "(a stroke on the wrong class re-labels much more than it covers)"
                )
            self.show_info(text)

        return self.start_job(
            fn,
            desc=f"DEM scribbles {layer.name}",
            on_result=on_result,
            running_text="refining with scribbles…",
            button=self.scribble_button,
            button_text="Cancel",
            layers=(layer, plan["source"], self.scribbles_layer(layer)),
        )

    def _on_done(self, status: str) -> None:
        self.last_status = status
        self.scribble_button.setText("Refine with scribbles")
        if status == "cancelled":
            self.show_info("cancelled")


def refinable_classes(labels: np.ndarray, meta) -> bool:
    """Whether the strokes can start from ``labels``: DEM classes 1..K (0 = cleared), not
    objects (0/1) or instances, so that strokes correct those classes instead of re-seeding them."""
    return meta.task == "classes" and not meta.instances and int(labels.max(initial=0)) <= meta.n_clusters


def default_background(dem: dict[str, Any]) -> str:
    """The background of a labels layer as its metadata tells it: "darkest" (label 1) for DEM's
    classes, 0 for everything else (DEM's objects and instances, and napari's convention
    for labels from any other tool). Splitting with label 1 as background on an objects
    layer turned the background into instances and left the objects out."""
    return "darkest" if dem.get("task") == "classes" and not dem.get("instances") else "0"


def unpainted_change(before: np.ndarray, after: np.ndarray, scribbles: np.ndarray) -> float:
    """Fraction of the pixels without a scribble whose label changed (0 when all are painted)."""
    free = scribbles == 0
    n = int(free.sum())
    return float(np.count_nonzero((before != after) & free)) / n if n else 0.0


def _geometry_of(layer) -> dict[str, Any]:
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine.affine_matrix,
        "axis_labels": layer.axis_labels,
        "units": layer.units,
    }

"""The Segment (DEM) dock widget: Image layer in, Labels layer out, computed in the background."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)
from napari_dem.core.layout import parse_axes
from napari_dem.core.model import available_devices
from napari_dem.core.segment import MAX_CLUSTERS, choose_mode
from napari_dem.labels_meta import LabelsMeta

from ._common import (
    LABELS_SUFFIX,
    DemDockWidget,
    Job,
    apply_undoable,
    axes_from_layer,
    combo_layer,
    data_shape,
    fill_combo,
    labels_geometry,
    level_data,
    many_clusters_warning,
    pick_level,
)
from ._runs import load_run_model, run_segment, session_model_for, snapshot
from ._settings import RememberedFields
from ._task import TaskFields

if TYPE_CHECKING:
    import napari


class SegmentWidget(DemDockWidget):
    """Segment an Image layer with DEM into a Labels layer ``"<image> DEM labels"``."""

    uses_model = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)

        self._make_fields()
        self._set_tooltips()
        self._build_layout()
        self._connect_signals()

        self._done_text = "done"
        self.connect_session(self.session.model_changed, self._show_model)
        self.session.add_segmenter(self)
        self.destroyed.connect(lambda *_, s=self.session, me=self: s.remove_segmenter(me))
        self._show_model()
        self.watch_layers(self._refresh_layers)

    def _make_fields(self) -> None:
        """Create the widget's fields, buttons and read-outs."""
        self.image_combo = QComboBox()
        self.axes_edit = QLineEdit()
        self.clusters_spin = QSpinBox()
        self.clusters_spin.setRange(0, MAX_CLUSTERS)
        self.clusters_spin.setSpecialValueText("auto (from the image)")  # shown for 0
        self.clusters_spin.setValue(0)
        self.task_fields = TaskFields()
        self.task_combo, self.objects_combo = self.task_fields.task_combo, self.task_fields.objects_combo
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(["auto", "2d", "3d"])
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("default model")
        self.model_button = QPushButton("…")
        self.model_button.setMaximumWidth(30)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.slice_check = QCheckBox("current slice only (preview)")
        self.new_layer_check = QCheckBox("new layer")
        self.sync_check = QCheckBox("run synchronously (debug)")
        self.run_button = QPushButton("Run")

    def _set_tooltips(self) -> None:
        """Give every field a tooltip that says what it changes."""
        tips = {
            self.image_combo: "The Image layer to segment. Pick another one to segment it instead.",
            self.axes_edit: (
                "One letter per data axis: T (time), Z, C (channel), Y, X. Guessed from the layer; "
                "correct it when the guess is wrong, e.g. a Z-stack read as a time-lapse."
            ),
            self.clusters_spin: (
                "K, the number of intensity clusters. auto = chosen from the image (its intensity "
                "modes; objects get one more for dim objects). Set it when two kinds of objects, or "
                "two tissue classes, share a label."
            ),
            self.mode_combo: (
                "2d segments each plane on its own, 3d whole volumes with the 3D model. auto = 3d when "
                "the Z axis is deep enough for the 3D model, else 2d."
            ),
            self.model_edit: (
                "A DEM model file (.pt) to use. Empty: the model fine-tuned in this session if any, "
                "else the bundled default (the grey text says which)."
            ),
            self.model_button: "Choose a DEM model file (.pt), e.g. one saved by the Fine-tune widget.",
            self.device_combo: "Where the network runs. auto takes a GPU if there is one; cpu always works.",
            self.seed_spin: (
                "Seed of the mixture's initialisation: the same seed gives the same labels. Change it "
                "to check that a result does not hinge on chance."
            ),
            self.slice_check: (
                "Segment only the plane shown (time point / slice), as a quick preview of the settings."
            ),
            self.new_layer_check: (
                "Write a new Labels layer instead of updating this image's labels layer in place (undoable)."
            ),
            self.sync_check: "Run in the GUI thread (napari freezes until done): for debugging only.",
            self.run_button: "Start the segmentation in the background; click again to cancel it.",
        }
        for field, tip in tips.items():
            field.setToolTip(tip)

    def _build_layout(self) -> None:
        """Arrange the fields in forms and the widget's layout."""
        model_row = QHBoxLayout()
        model_row.setContentsMargins(0, 0, 0, 0)
        model_row.addWidget(self.model_edit)
        model_row.addWidget(self.model_button)
        model_box = QWidget()
        model_box.setLayout(model_row)

        form = QFormLayout()
        form.addRow("image", self.image_combo)
        form.addRow("axes", self.axes_edit)
        form.addRow("clusters", self.clusters_spin)
        self.task_fields.add_rows(form)
        form.addRow("mode", self.mode_combo)
        form.addRow("model", model_box)
        form.addRow("device", self.device_combo)
        form.addRow("seed", self.seed_spin)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.slice_check)
        layout.addWidget(self.new_layer_check)
        layout.addWidget(self.sync_check)
        layout.addWidget(self.run_button)
        self.remembered = self._remembered_fields()
        layout.addWidget(self.remembered.button())
        layout.addWidget(self.message)
        layout.addStretch(1)

    def _remembered_fields(self) -> RememberedFields:
        """The fields whose values are saved and restored between sessions."""
        return RememberedFields(
            "segment",
            {
                "n_clusters": self.clusters_spin,
                **self.task_fields.remembered(),
                "mode": self.mode_combo,
                "model": self.model_edit,
                "device": self.device_combo,
                "seed": self.seed_spin,
                "new_layer": self.new_layer_check,
            },
        )

    def _connect_signals(self) -> None:
        """Wire buttons and fields to their handlers."""
        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        for signal in (
            self.axes_edit.textChanged,
            self.clusters_spin.valueChanged,
            *self.task_fields.signals(),
            self.mode_combo.currentTextChanged,
            self.model_edit.textChanged,
            self.device_combo.currentTextChanged,
            self.slice_check.toggled,
        ):
            signal.connect(self.validate)
        self.model_button.clicked.connect(self._browse_model)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.sync_check.toggled.connect(lambda v: setattr(self, "run_synchronously", bool(v)))

    # ------------------------------------------------------------------ layer choice
    def _refresh_layers(self, event=None) -> None:
        current = self.image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        active = self.viewer.layers.selection.active
        fill_combo(self.image_combo, names, active.name if isinstance(active, Image) else None)
        if self.image_combo.currentText() != current:
            self._on_image_changed(self.image_combo.currentText())
        else:
            self.validate()

    def image_layer(self) -> Image | None:
        return combo_layer(self.viewer, self.image_combo, Image)

    def _on_image_changed(self, name: str) -> None:
        layer = self.image_layer()
        self.axes_edit.setText(axes_from_layer(layer) if layer is not None else "")
        self.validate()

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "DEM model", "", "DEM model (*.pt);;All files (*)")
        if path:
            self.model_edit.setText(path)

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        return {
            "n_clusters": self.clusters_spin.value(),
            "task": self.task_fields.task,
            "stain": self.task_fields.stain,
            "mode": self.mode_combo.currentText(),
            "model": self.model_edit.text().strip(),
            "device": self.device_combo.currentText(),
            "seed": self.seed_spin.value(),
        }

    def _check(self) -> tuple[Image, str, dict[str, Any]]:
        """The image layer, axes and settings; ``ValueError`` with a user message if invalid."""
        from napari_dem.core.model import resolve_device

        layer = self.image_layer()
        if layer is None:
            raise ValueError("add or choose an Image layer to segment")
        shape = data_shape(layer)
        rgb = bool(layer.rgb)
        axes = self.axes_edit.text().strip().upper()
        if not axes:
            raise ValueError(f"give the axes of the image (one letter per axis of shape {shape})")
        layout = parse_axes(axes, shape, rgb)  # AxesError is a ValueError
        if rgb and not layout.axes.endswith("C"):
            raise ValueError(f"the layer is RGB: its axes must end with C, got {layout.axes!r}")
        settings = self.settings()
        k = settings["n_clusters"] or 2  # 0 = auto
        if not 2 <= k <= MAX_CLUSTERS:
            raise ValueError(f"the number of clusters must be from 2 to {MAX_CLUSTERS}, got {k}")
        settings["objects"] = self.task_fields.objects()
        if self.slice_check.isChecked():
            if settings["mode"] == "3d":
                raise ValueError("'current slice only' segments one 2D plane: choose mode auto or 2d")
            settings["mode"] = "2d"
        else:
            choose_mode(layout, settings["mode"], None)
        if settings["model"] and not Path(settings["model"]).expanduser().is_file():
            raise ValueError(f"model file not found: {settings['model']}")
        resolve_device(settings["device"])
        return layer, layout.axes, settings

    def validate(self, *args) -> bool:
        """Check the settings now; show what is wrong in the widget. True if Run can go."""
        if self.job is not None and self.job.running:
            return True
        try:
            self._check()
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return False
        self.show_info(many_clusters_warning(self.clusters_spin.value()))
        return True

    # ------------------------------------------------------------------ run
    def plan(self) -> dict[str, Any]:
        """What a run will do: data to segment, axes, target region and layer geometry."""
        layer, axes, settings = self._check()
        level = pick_level(layer)
        data = level_data(layer, level)
        label_axes = axes.replace("C", "")
        label_shape = tuple(s for a, s in zip(axes, data.shape, strict=True) if a != "C")
        region: tuple[slice, ...] = tuple(slice(None) for _ in label_shape)
        sub_axes = axes
        if self.slice_check.isChecked():
            layer_axes = axes[:-1] if layer.rgb else axes
            point = np.asarray(layer.world_to_data(self.viewer.dims.point), dtype=float)
            factor = np.asarray(data_shape(layer), float) / np.asarray(data.shape, float)
            index: list[Any] = []
            reg: list[slice] = []
            for i, a in enumerate(axes):
                if a in "YXC":
                    index.append(slice(None))
                    if a != "C":
                        reg.append(slice(None))
                    continue
                pos = point[layer_axes.index(a)] / factor[i]
                j = int(np.clip(np.round(pos), 0, data.shape[i] - 1))
                index.append(j)
                reg.append(slice(j, j + 1))
            data = data[tuple(index)]
            sub_axes = "".join(a for a in axes if a in "YXC")
            region = tuple(reg)
        return {
            "layer": layer,
            "image": data,
            "axes": sub_axes,
            "full_axes": axes,
            "label_axes": label_axes,
            "label_shape": label_shape,
            "region": region,
            "level": level,
            "settings": settings,
            "geometry": labels_geometry(layer, axes, level),
            "name": layer.name + LABELS_SUFFIX,
            "new_layer": self.new_layer_check.isChecked(),
        }

    def run(self) -> Job | None:
        """Start a segmentation (in the background unless ``run_synchronously``)."""
        if self.busy:
            return self.job
        if self.session.training:  # never segment with a model that is being trained
            self.show_error("fine-tuning is running: wait for it to finish (or stop it)")
            return None
        try:
            plan = self.plan()
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return None
        settings = plan["settings"]
        layout = parse_axes(plan["axes"], plan["image"].shape, plan["layer"].rgb)
        mode = choose_mode(layout, settings["mode"], None)
        # A model fine-tuned in this session replaces the default unless a file is named;
        # the worker gets a private copy (the core moves it to the device).
        model, identity = session_model_for(self.session, 3 if mode == "3d" else 2, settings["model"])
        meta = LabelsMeta(
            image=plan["layer"].name,
            axes=plan["axes"],
            mode=mode,
            n_clusters=int(settings["n_clusters"]),
            n_clusters_asked=int(settings["n_clusters"]),
            task=settings["task"],
            objects=settings["objects"] or "",
            stain=settings["stain"],
            seed=int(settings["seed"]),
            device=settings["device"],
            level=plan["level"],
            scale=tuple(plan["geometry"]["scale"]),
            model=identity,
        )
        image = snapshot(plan["image"])
        session = self.session

        def fn(progress):
            run_model, ident = load_run_model(session, identity, meta.device, model)
            result = run_segment(image, meta, run_model, progress=progress, cancel=self.job.token)
            return result, ident

        target = None if plan["new_layer"] else self.find_labels_layer(plan)
        return self.start_job(
            fn,
            desc=f"DEM {plan['layer'].name}",
            on_result=lambda res: self._apply(plan, meta, *res),
            running_text="running…",
            button=self.run_button,
            button_text="Cancel",
            layers=(plan["layer"], target),
        )

    def cancel(self) -> None:
        if self.busy:
            self.run_button.setText("Cancelling…")
            self.cancel_job()

    def _on_done(self, status: str) -> None:
        self.last_status = status
        self.run_button.setText("Run")
        if status == "cancelled":
            self.show_info("cancelled")
        elif status == "done":
            self.show_info(self._done_text)

    def _show_model(self, *args) -> None:
        """The model field's placeholder says which model an empty field means."""
        dims = [d for d in (2, 3) if self.session.identity(d) is not None]
        if not dims:
            self.model_edit.setPlaceholderText("default model")
            return
        text = " / ".join(self.session.identity(d).describe() for d in dims)
        self.model_edit.setPlaceholderText(f"{text}; default otherwise")

    def find_labels_layer(self, plan: dict[str, Any]) -> Labels | None:
        name = plan["name"]
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            if isinstance(layer, Labels) and tuple(layer.data.shape) == plan["label_shape"]:
                return layer
        return None

    def _apply(self, plan: dict[str, Any], meta: LabelsMeta, result, identity) -> None:
        if plan["layer"] not in self.viewer.layers:
            raise ValueError(f"the image {plan['layer'].name!r} was deleted: no labels added")
        labels = np.asarray(result.labels)
        region_shape = tuple(
            n if s == slice(None) else 1 for s, n in zip(plan["region"], plan["label_shape"], strict=True)
        )
        labels = labels.reshape(region_shape)
        meta.mode = result.mode
        meta.n_clusters = int(result.n_clusters)  # the K used, also when "auto" was asked for
        meta.task = result.task  # as decided by the fit
        meta.model = identity
        metadata = {"dem": meta.to_dict()}
        target = None if plan["new_layer"] else self.find_labels_layer(plan)
        if target is None:
            full = np.zeros(plan["label_shape"], dtype=labels.dtype)
            full[plan["region"]] = labels
            target = self.viewer.add_labels(full, name=plan["name"], metadata=metadata, **plan["geometry"])
        else:
            apply_undoable(target, labels, plan["region"])
            target.metadata.update(metadata)
        self.labels_layer = target
        self._done_text = (
            f"done: {result.decision.summary()}; {meta.mode.upper()}, model {identity.describe()}"
        )

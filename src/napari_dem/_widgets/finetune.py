"""The Fine-tune (DEM) dock widget: adapt a DEM model to the open images in the background.

Training runs on a deep copy of the model in use; the copy is swapped into the
viewer's :class:`~._session.DemSession` only when training ends, so a segmentation
never sees half-trained weights.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from qtpy.QtCore import QPointF, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)
from napari_dem.core.model import available_devices
from napari_dem.labels_meta import ModelIdentity

from ._common import DemDockWidget, Job, axes_from_layer, level_data, pick_level
from ._settings import RememberedFields

if TYPE_CHECKING:
    import napari

    from napari_dem.core.model import DEMModel
    from napari_dem.core.train import TrainHistory, TrainSettings


def run_finetune(
    model: DEMModel,
    units: list[np.ndarray],
    settings: TrainSettings,
    device: str = "cpu",
    progress=None,
    cancel=None,
) -> tuple[DEMModel, TrainHistory]:
    """Fine-tune a deep copy of ``model`` (runs in the worker thread); ``model`` is untouched."""
    from napari_dem.core.train import fine_tune

    trained = copy.deepcopy(model).cpu()
    history = fine_tune(trained, units, settings, device=device, progress=progress, cancel=cancel)
    return trained.cpu().eval(), history


class _AnyToken:
    """A cancel token that fires when any of its tokens does (Stop button or worker quit)."""

    def __init__(self, *tokens) -> None:
        self.tokens = tokens

    @property
    def cancelled(self) -> bool:
        return any(t.cancelled for t in self.tokens)

    def check(self) -> None:
        for t in self.tokens:
            t.check()


# ---------------------------------------------------------------------- loss plot
class LossPlot(QWidget):
    """A tiny live plot: the total loss per step as a polyline."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.values: list[float] = []
        self.setMinimumHeight(80)
        self.setToolTip("total loss per training step")

    def set_values(self, values: list[float]) -> None:
        self.values = [float(v) for v in values if np.isfinite(v)]
        self.update()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        try:
            rect = self.rect().adjusted(4, 4, -4, -4)
            p.fillRect(self.rect(), QColor(30, 30, 36))
            p.setPen(QPen(QColor(90, 90, 100), 1))
            p.drawRect(rect)
            v = self.values
            if len(v) < 2:
                return
            lo, hi = min(v), max(v)
            span = (hi - lo) or 1.0
            n = len(v) - 1
            pts = [
                QPointF(rect.left() + rect.width() * i / n, rect.bottom() - rect.height() * (y - lo) / span)
                for i, y in enumerate(v)
            ]
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setPen(QPen(QColor(80, 180, 255), 1.5))
            p.drawPolyline(QPolygonF(pts))
            p.setPen(QColor(170, 170, 170))
            p.drawText(
                rect.adjusted(3, 1, 0, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, f"{hi:.4g}"
            )
            p.drawText(
                rect.adjusted(3, 0, 0, -1),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignBottom,
                f"{lo:.4g}",
            )
        finally:
            p.end()


# ---------------------------------------------------------------------- widget
class FineTuneWidget(DemDockWidget):
    """Fine-tune the DEM model on Image layers; save and load model files."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.history: TrainHistory | None = None
        self.losses: list[dict[str, float]] = []  # appended from the worker thread
        self.train_metadata: dict[int, dict[str, Any]] = {}
        self._stop = None

        from napari_dem.core.progress import CancelToken

        self._stop = CancelToken()

        self._make_fields()
        self._set_tooltips()
        self._build_layout()
        self._connect_signals()

        self.watch_layers(self._refresh_layers)
        self.connect_session(self.session.model_changed, self._show_model)
        self._show_model()

    def _make_fields(self) -> None:
        """Create the widget's fields, buttons and read-outs."""
        self.layer_list = QListWidget()
        self.layer_list.setMaximumHeight(90)
        self.axes_edit = QLineEdit()
        self.axes_edit.setPlaceholderText("auto (per layer)")
        self.ndim_combo = QComboBox()
        self.ndim_combo.addItems(["2D", "3D"])
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 100_000)
        self.steps_spin.setValue(100)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 0.5)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(5e-5)  # the CLI's: the panel's fine-tune benchmark, docs/benchmarks.md
        self.patch_spin = QSpinBox()
        self.patch_spin.setRange(16, 1024)
        self.patch_spin.setValue(96)
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setValue(8)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.device_combo.setCurrentText("cpu")
        self.flips_check = QCheckBox("flips")
        self.flips_check.setChecked(True)
        self.rot_check = QCheckBox("90° rotations")
        self.rot_check.setChecked(True)
        self.jitter_check = QCheckBox("intensity jitter")
        self.jitter_check.setChecked(True)
        self.sync_check = QCheckBox("run synchronously (debug)")
        self.start_button = QPushButton("Start")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.loss_label = QLabel("")
        self.loss_plot = LossPlot()
        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        self.segment_button = QPushButton("Segment again")
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)

    def _set_tooltips(self) -> None:
        """Give every field a tooltip that says what it changes."""
        tips = {
            self.layer_list: "Image layers to train on (ticked): a few typical images of your experiment.",
            self.axes_edit: (
                "One letter per data axis (T, Z, C, Y, X) for all ticked layers; empty = guessed per layer. "
                "Set it when a guess is wrong."
            ),
            self.ndim_combo: "Which model to fine-tune: 2D (images, slices) or 3D (volumes).",
            self.steps_spin: (
                "Training steps. 100 adapts the model to a new kind of image in about a minute on a CPU; "
                "more rarely helps (Stop keeps the best weights so far)."
            ),
            self.lr_spin: "Learning rate. Lower it if the loss jumps around; the default suits most data.",
            self.patch_spin: (
                "Side of the square (2D) or cube (3D) patches trained on, in pixels. Larger patches see "
                "more context but train more slowly; keep it above twice the object size."
            ),
            self.batch_spin: "Patches per step. Lower it if memory runs out; higher is smoother but slower.",
            self.seed_spin: "Seed of patch sampling and augmentation: the same seed trains the same weights.",
            self.device_combo: "Where training runs: cuda (a GPU) is many times faster than cpu.",
            self.flips_check: "Train on mirrored patches too (objects have no preferred side).",
            self.rot_check: "Train on patches turned by 90° too (objects have no preferred direction).",
            self.jitter_check: "Vary patch brightness and contrast a little, so the model copes with both.",
            self.sync_check: "Train in the GUI thread (napari freezes until done): for debugging only.",
            self.start_button: "Start fine-tuning in the background; click again to stop (keeps the best)",
            self.save_button: "Save the model in use (with its training settings) to a .pt file.",
            self.load_button: "Use a model saved earlier (.pt) for Segment, Batch and Refine in this viewer.",
            self.segment_button: "Re-run the docked Segment (DEM) widget with the model in use.",
        }
        for field, tip in tips.items():
            field.setToolTip(tip)

    def _build_layout(self) -> None:
        """Arrange the fields in forms and the widget's layout."""
        aug = QHBoxLayout()
        aug.setContentsMargins(0, 0, 0, 0)
        for w in (self.flips_check, self.rot_check, self.jitter_check):
            aug.addWidget(w)
        aug_box = QWidget()
        aug_box.setLayout(aug)
        files = QHBoxLayout()
        files.setContentsMargins(0, 0, 0, 0)
        for w in (self.save_button, self.load_button, self.segment_button):
            files.addWidget(w)
        files_box = QWidget()
        files_box.setLayout(files)

        form = QFormLayout()
        form.addRow("images", self.layer_list)
        form.addRow("axes", self.axes_edit)
        form.addRow("model", self.ndim_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("learning rate", self.lr_spin)
        form.addRow("patch size", self.patch_spin)
        form.addRow("batch size", self.batch_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow("device", self.device_combo)
        form.addRow("augment", aug_box)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.sync_check)
        layout.addWidget(self.start_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.loss_label)
        layout.addWidget(self.loss_plot)
        layout.addWidget(files_box)
        layout.addWidget(self.model_label)
        self.remembered = self._remembered_fields()
        layout.addWidget(self.remembered.button())
        layout.addWidget(self.message)
        layout.addStretch(1)

    def _remembered_fields(self) -> RememberedFields:
        """The fields whose values are saved and restored between sessions."""
        return RememberedFields(
            "finetune",
            {
                "ndim": self.ndim_combo,
                "steps": self.steps_spin,
                "lr": self.lr_spin,
                "patch_size": self.patch_spin,
                "batch_size": self.batch_spin,
                "seed": self.seed_spin,
                "device": self.device_combo,
                "flips": self.flips_check,
                "rotations": self.rot_check,
                "jitter": self.jitter_check,
            },
        )

    def _connect_signals(self) -> None:
        """Wire buttons and fields to their handlers."""
        self.start_button.clicked.connect(self._on_start_clicked)
        self.save_button.clicked.connect(self._browse_save)
        self.load_button.clicked.connect(self._browse_load)
        self.segment_button.clicked.connect(self.segment_again)
        self.sync_check.toggled.connect(lambda v: setattr(self, "run_synchronously", bool(v)))
        self.ndim_combo.currentTextChanged.connect(lambda _: self._show_model())

    # ------------------------------------------------------------------ layers
    def _refresh_layers(self, event=None) -> None:
        checked = set(self.checked_names())
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        if not checked:
            active = self.viewer.layers.selection.active
            checked = {active.name} if isinstance(active, Image) else set(names[:1])
        self.layer_list.clear()
        for name in names:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in checked else Qt.CheckState.Unchecked)
            self.layer_list.addItem(item)

    def checked_names(self) -> list[str]:
        return [
            self.layer_list.item(i).text()
            for i in range(self.layer_list.count())
            if self.layer_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, names: list[str]) -> None:
        for i in range(self.layer_list.count()):
            item = self.layer_list.item(i)
            item.setCheckState(Qt.CheckState.Checked if item.text() in names else Qt.CheckState.Unchecked)

    # ------------------------------------------------------------------ messages
    @property
    def ndim(self) -> int:
        return 3 if self.ndim_combo.currentText() == "3D" else 2

    def _show_model(self, *args) -> None:
        identity = self.session.identity(self.ndim)
        if identity is None:
            text = f"in use: bundled default {self.ndim}D model"
        else:
            images = (getattr(self.session.model(self.ndim), "metadata", {}) or {}).get("training_images")
            text = f"in use: {identity.describe()}" + (f", trained on {', '.join(images)}" if images else "")
        self.model_label.setText(text)

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    # ------------------------------------------------------------------ settings
    def settings(self):
        from napari_dem.core.train import TrainSettings

        return TrainSettings(
            steps=self.steps_spin.value(),
            batch_size=self.batch_spin.value(),
            patch_size=self.patch_spin.value(),
            lr=float(self.lr_spin.value()),
            seed=self.seed_spin.value(),
            flips=self.flips_check.isChecked(),
            rotations=self.rot_check.isChecked(),
            intensity_jitter=0.2 if self.jitter_check.isChecked() else 0.0,
        )

    def plan(self) -> dict[str, Any]:
        """Training units and settings; ``ValueError`` with a user message if invalid."""
        from napari_dem.core.model import resolve_device
        from napari_dem.core.train import training_units

        names = self.checked_names()
        if not names:
            raise ValueError("tick at least one Image layer to train on")
        ndim = self.ndim
        units: list[np.ndarray] = []
        described: list[str] = []
        for name in names:
            layer = self.viewer.layers[name]
            axes = self.axes_edit.text().strip().upper() or axes_from_layer(layer)
            if not axes:
                raise ValueError(f"give the axes of {name!r}")
            data = np.asarray(level_data(layer, pick_level(layer)))
            try:
                units += training_units(data, axes, ndim, rgb=bool(layer.rgb))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}: {exc}") from exc
            described.append(f"{name} {tuple(data.shape)}")
        settings = self.settings()
        settings.validate()
        resolve_device(self.device_combo.currentText())
        return {"units": units, "settings": settings, "ndim": ndim, "images": described}

    # ------------------------------------------------------------------ run
    def _on_start_clicked(self) -> None:
        self._start_or_stop(self.running, self.stop, self.start)

    def start(self) -> Job | None:
        """Start fine-tuning (in the background unless ``run_synchronously``)."""
        if self.running:
            self.show_error("a fine-tuning is already running: stop it first")
            return None
        if self.session.segmenting:
            self.show_error("a segmentation is running: wait for it before fine-tuning")
            return None
        try:
            plan = self.plan()
            base = self.session.base_model(plan["ndim"])
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return None
        if not self.session.begin_training():
            self.show_error("another fine-tuning is running: wait for it or stop it")
            return None

        from napari_dem.core.progress import CancelToken

        self._stop = CancelToken()
        self.losses = []
        self.history = None
        self.loss_plot.set_values([])
        self.progress_bar.setRange(0, plan["settings"].steps)
        self.progress_bar.setValue(0)
        self.loss_label.setText("")
        device = self.device_combo.currentText()

        def fn(progress, _plan=plan):
            def on_step(rec) -> None:
                self.losses.append(dict(rec.losses))
                if progress is not None:
                    progress(rec.step, rec.total, f"step {rec.step}/{rec.total}")

            return run_finetune(
                base,
                _plan["units"],
                _plan["settings"],
                device=device,
                progress=on_step,
                cancel=_AnyToken(self._stop, self.job.token),
            )

        job = self.start_job(
            fn,
            desc="DEM fine-tune",
            on_result=lambda res: self._apply(plan, res),
            running_text="training…",
            button=self.start_button,
            button_text="Stop",
        )
        if job.worker is not None:
            job.worker.yielded.connect(self._on_yield)
        return job

    def stop(self) -> None:
        """End training at the next step; the best weights so far are kept."""
        if self.running:
            self.start_button.setText("Stopping…")
            self._stop.cancel()

    def _update_losses(self) -> None:
        losses = list(self.losses)
        if not losses:
            return
        last = losses[-1]
        self.progress_bar.setValue(min(len(losses), self.progress_bar.maximum()))
        self.loss_label.setText(
            f"step {len(losses)}: total {last.get('total', float('nan')):.4g} · "
            f"NLL {last.get('nll', float('nan')):.4g} · entropy {last.get('entropy', float('nan')):.4g} · "
            f"recon {last.get('recon', float('nan')):.4g}"
        )
        self.loss_plot.set_values([r.get("total", float("nan")) for r in losses])

    def _on_yield(self, item) -> None:
        if item is not None:
            self._update_losses()

    def _apply(self, plan: dict[str, Any], result) -> None:
        trained, history = result
        self.history = history
        s = plan["settings"]
        trained.metadata = {
            **(getattr(trained, "metadata", {}) or {}),
            "training_images": plan["images"],
            "training_steps": len(history.steps),
            "seed": s.seed,
            "lr": s.lr,
            "patch_size": s.patch_size,
            "batch_size": s.batch_size,
            "source": "fine-tuned on " + ", ".join(plan["images"]),
        }
        training = {
            k: trained.metadata[k]
            for k in ("training_images", "training_steps", "seed", "lr", "patch_size", "batch_size")
        }
        self.session.set_trained_model(trained, training)  # swapped in only now: never half-trained
        self.last_status = "stopped" if history.cancelled else None

    def _on_done(self, status: str) -> None:
        self.session.end_training()
        self._update_losses()
        if status == "done" and self.last_status == "stopped":
            status = "stopped"
        self.last_status = status
        self.start_button.setText("Start")
        self._show_model()
        if status in ("done", "stopped") and self.history is not None:
            n = len(self.history.steps)
            what = f"stopped after {n} steps" if status == "stopped" else f"done: {n} steps"
            self.show_info(f"{what}; best step {self.history.best_step}. The fine-tuned model is in use.")
            self.progress_bar.setValue(self.progress_bar.maximum() if status == "done" else n)
        elif status == "cancelled":
            self.show_info("cancelled; the model in use is unchanged")

    def closeEvent(self, event) -> None:
        if self._stop is not None:
            self._stop.cancel()
        super().closeEvent(event)

    # ------------------------------------------------------------------ files
    def model(self, ndim: int | None = None) -> DEMModel:
        """The model in use for ``ndim`` (default: the widget's 2D/3D choice)."""
        return self.session.base_model(self.ndim if ndim is None else ndim)

    def save(self, path: str | Path) -> Path | None:
        """Save the model in use (for the 2D/3D choice) with its training metadata."""
        from napari_dem.core.model import save_model

        model = self.model()
        meta = {k: v for k, v in (getattr(model, "metadata", {}) or {}).items() if k != "source"}
        keys = ("training_images", "training_steps", "seed", "lr", "patch_size", "batch_size")
        extra = {k: meta[k] for k in keys if k in meta}
        try:
            out = save_model(model, path, **extra)
        except OSError as exc:
            self.show_error(f"could not save {path}: {exc}")
            return None
        self.show_info(f"saved {out}")
        return out

    def load(self, path: str | Path) -> DEMModel | None:
        """Load a model file and use it; on any problem show it and keep the model in use."""
        from napari_dem.core.model import ModelFileError, load_model

        if self.running:
            self.show_error("cannot load a model while fine-tuning runs")
            return None
        try:
            model = load_model(path)
        except ModelFileError as exc:
            self.show_error(f"{exc} — the model in use is unchanged")
            return None
        model.metadata = {**(model.metadata or {}), "source": Path(path).name}
        self.session.set_model(model, ModelIdentity.of_file(path, model.config.ndim))
        self.ndim_combo.setCurrentText(f"{model.config.ndim}D")
        self._show_model()
        self.show_info(f"loaded {path}")
        return model

    def _browse_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save DEM model", "dem_finetuned.pt", "DEM model (*.pt)")
        if path:
            self.save(path)

    def _browse_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load DEM model", "", "DEM model (*.pt);;All files (*)")
        if path:
            self.load(path)

    # ------------------------------------------------------------------ segment again
    def segment_again(self):
        """Ask the docked Segment (DEM) widget of this viewer to run again, if there is one."""
        if self.running:
            self.show_error("fine-tuning is running: wait for it to end")
            return None
        widget = self.session.segmenter()
        if widget is None:
            self.show_error("no Segment (DEM) widget is docked: open it from Plugins > napari DEM")
            return None
        return widget.run()

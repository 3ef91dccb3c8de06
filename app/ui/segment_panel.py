"""The Segment panel: segments list, the registered tools with forms built from their
parameter specs, paint/erase strokes in the slice views, undo/redo, save with the case, import
and export.

Applying a tool, a brush stroke, saving, importing and exporting are calls of
:mod:`app.workflow.segment` as the window's actor (checked and audited there); tools run through
the worker adapter. The live threshold preview stays in the viewer (it changes nothing). The overlay shows the segmentation's bit-field labels directly (no label-map copy per
edit): a colour table maps every bit combination to the colour of its top visible segment.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.tools.segmentation import Segmentation, ToolResult, get_tool, registry
from app.tools.segmentation.threshold import CT_PRESETS
from app.ui.messages import show_error
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.viewers.state import ViewerState
from app.workflow import segment as workflow
from app.workflow.actor import Actor

_AXIS_NAMES = {0: "i", 1: "j", 2: "k"}
_FILE_FILTER = "Segmentations (*.seg.nrrd *.nrrd *.nii *.nii.gz *.dcm)"
_MAX_TABLE_BITS = 16
_COUNTER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="count-voxels")


def bitfield_table(seg: Any, bits: int) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """RGB table, shown flags and names for every value of a ``bits``-bit label field."""
    values = np.arange(1 << bits, dtype=np.int64)
    table = np.zeros((len(values), 3), dtype=np.uint8)
    shown = np.zeros(len(values), dtype=bool)
    names: dict[int, str] = {}
    for segment in seg.segments:
        has = ((values >> segment.bit) & 1).astype(bool)
        rgb = np.clip(np.asarray(segment.color, dtype=float) * 255, 0, 255).astype(np.uint8)
        if segment.visible:
            table[has] = rgb
            shown |= has
        names[1 << segment.bit] = segment.name
    return table, shown, names


class _Bridge(QtCore.QObject):
    """Carries model events (possibly from a worker thread) to the GUI thread."""

    changed = QtCore.Signal(str)
    counted = QtCore.Signal(int, object)  # generation, {segment id: voxel count}


class ParamForm(QtWidgets.QWidget):
    """Widgets for one tool's parameters, built from its :class:`ParamSpec` list."""

    def __init__(
        self, tool: Any, segment_names: list[str], parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.tool = tool
        self.widgets: dict[str, tuple[Any, QtWidgets.QWidget]] = {}
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        for spec in tool.specs():
            widget = self._widget_for(spec, segment_names)
            if widget is None:
                continue
            label = spec.label + (f" ({spec.unit})" if spec.unit else "")
            widget.setToolTip(spec.help)
            form.addRow(label, widget)
            self.widgets[spec.name] = (spec, widget)

    def _widget_for(self, spec: Any, segment_names: list[str]) -> QtWidgets.QWidget | None:
        kind = spec.kind
        if kind == "bool":
            box = QtWidgets.QCheckBox(self)
            box.setChecked(bool(spec.default))
            return box
        if kind in ("int", "float"):
            spin = QtWidgets.QSpinBox(self) if kind == "int" else QtWidgets.QDoubleSpinBox(self)
            if kind == "float":
                spin.setDecimals(2)
            low = spec.minimum if spec.minimum is not None else -1e9
            high = spec.maximum if spec.maximum is not None else 1e9
            if kind == "int":
                low, high = int(max(low, -(2**31))), int(min(high, 2**31 - 1))
            spin.setRange(low, high)
            spin.setValue(spec.default)
            return spin
        if kind == "choice":
            combo = QtWidgets.QComboBox(self)
            combo.addItems([str(c) for c in spec.choices])
            combo.setCurrentText(str(spec.default))
            return combo
        if kind == "segment":
            combo = QtWidgets.QComboBox(self)
            combo.setEditable(True)
            combo.addItems(segment_names)
            combo.setCurrentText(
                str(spec.default) if spec.default else (segment_names[0] if segment_names else "")
            )
            return combo
        if kind == "segments":
            edit = QtWidgets.QLineEdit(", ".join(segment_names[:2]), self)
            edit.setPlaceholderText("segment names, comma separated")
            return edit
        if kind == "optional-float":
            edit = QtWidgets.QLineEdit("" if spec.default is None else str(spec.default), self)
            edit.setPlaceholderText("none")
            edit.setValidator(QtGui.QDoubleValidator(edit))
            return edit
        if kind == "points":
            label = QtWidgets.QLabel("the crosshair position", self)
            label.setObjectName("hint")
            return label
        edit = QtWidgets.QLineEdit(str(spec.default or ""), self)
        return edit

    def values(self, crosshair_ijk: tuple[float, float, float]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, (spec, widget) in self.widgets.items():
            kind = spec.kind
            if kind == "bool":
                out[name] = widget.isChecked()
            elif kind in ("int", "float"):
                out[name] = widget.value()
            elif kind in ("choice", "segment"):
                text = widget.currentText()
                out[name] = (
                    type(spec.default)(text)
                    if spec.default is not None and kind == "choice"
                    else text
                )
            elif kind == "segments":
                out[name] = [s.strip() for s in widget.text().split(",") if s.strip()]
            elif kind == "optional-float":
                text = widget.text().strip()
                out[name] = float(text) if text else None
            elif kind == "points":
                out[name] = [tuple(float(v) for v in crosshair_ijk)]
            else:
                out[name] = widget.text()
        return out


class SegmentPanel(QtWidgets.QWidget):
    """Edits the segmentation of the volume shown in the views."""

    historyChanged = QtCore.Signal()
    volumesCounted = QtCore.Signal()  # the table's Volume column is up to date

    def __init__(
        self, state: ViewerState, parent: QtWidgets.QWidget | None = None, view3d: Any = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("segmentPanel")
        self.state = state
        self.view3d = view3d
        self.default_threshold_preset = "bone"
        self.actor: Actor | None = None
        self.case: Case | None = None
        self.seg: Any = None
        self.volume: Any = None
        self.views: list[Any] = []
        self.worker = Worker(self)
        self.worker.done.connect(self._tool_done)
        self.worker.error.connect(self._tool_failed)
        self.worker.cancelled.connect(
            lambda: self.message.setText("Cancelled; nothing was changed.")
        )
        self._bridge = _Bridge(self)
        self._bridge.changed.connect(self._on_model_event)
        self._bridge.counted.connect(self._show_counts)
        self._counts: dict[Any, int] = {}  # segment id -> voxels, as last counted
        self._count_generation = 0
        self._unsubscribe = None
        self._stroke_last: np.ndarray | None = None
        self._stroke_open = False
        self._stats_timer = QtCore.QTimer(self)
        self._stats_timer.setSingleShot(True)
        self._stats_timer.setInterval(250)
        self._stats_timer.timeout.connect(self._refresh_table)
        self._stats_timer.timeout.connect(self._refresh_3d)
        self._tools = self._load_tools()
        self._build()
        self._set_enabled(False)

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def _load_tools() -> dict[str, Any]:
        reg = registry()
        return {name: tool for name, tool in reg.tools.items() if not tool.interactive}

    def _build(self) -> None:
        self.table = QtWidgets.QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["", "Segment", "Show", "Volume (ml)"])
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(1, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(0, 22)
        self.table.setMaximumHeight(150)
        self.table.itemChanged.connect(self._item_changed)
        self.table.cellDoubleClicked.connect(self._pick_color)
        self.add_button = QtWidgets.QPushButton("Add", self)
        self.remove_button = QtWidgets.QPushButton("Remove", self)
        self.add_button.clicked.connect(self.add_segment)
        self.remove_button.clicked.connect(self.remove_selected)

        self.tool_combo = QtWidgets.QComboBox(self)
        for name, tool in self._tools.items():
            self.tool_combo.addItem(tool.title, name)
        self.tool_combo.currentIndexChanged.connect(self._rebuild_form)
        self.tool_help = QtWidgets.QLabel(self)
        self.tool_help.setWordWrap(True)
        self.tool_help.setObjectName("hint")
        self.preview = QtWidgets.QCheckBox("Preview the range in the views", self)
        self.preview.setChecked(False)  # switched on by the first edit of a range
        self.preview.toggled.connect(self._update_preview)
        self.form_host = QtWidgets.QWidget(self)
        QtWidgets.QVBoxLayout(self.form_host).setContentsMargins(0, 0, 0, 0)
        self.form: ParamForm | None = None
        self.apply_button = QtWidgets.QPushButton("Apply", self)
        self.apply_button.setDefault(True)
        self.apply_button.clicked.connect(self.apply_current)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.progress = ProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        self.import_button = QtWidgets.QPushButton("Import…", self)
        self.import_button.setToolTip("Read a .seg.nrrd, NIfTI or DICOM SEG file onto this image")
        self.import_button.clicked.connect(self._import_dialog)
        self.export_button = QtWidgets.QPushButton("Export…", self)
        self.export_button.setToolTip(
            "Write .seg.nrrd, NIfTI or DICOM SEG (its header is de-identified to the pseudonym)"
        )
        self.export_button.clicked.connect(self._export_dialog)
        self._build_paint()
        self._lay_out()
        self._rebuild_form()

    def _build_paint(self) -> None:
        self.show3d = QtWidgets.QCheckBox("Show segments in 3D", self)
        self.show3d.setToolTip(
            "A quick display surface per segment (the printable mesh is made in the Mesh panel)"
        )
        self.show3d.setVisible(self.view3d is not None)
        self.show3d.toggled.connect(self._refresh_3d)
        self.paint = QtWidgets.QCheckBox("Paint in the slice views", self)
        self.paint.toggled.connect(self._paint_toggled)
        self.erase = QtWidgets.QCheckBox("Erase", self)
        self.sphere = QtWidgets.QCheckBox("3D sphere", self)
        self.radius = QtWidgets.QDoubleSpinBox(self)
        self.radius.setRange(0.5, 100.0)
        self.radius.setValue(5.0)
        self.radius.setSuffix(" mm")

    def _lay_out(self) -> None:
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        buttons.addWidget(self.import_button)
        buttons.addWidget(self.export_button)
        brush = QtWidgets.QHBoxLayout()
        brush.addWidget(QtWidgets.QLabel("Radius", self))
        brush.addWidget(self.radius)
        brush.addWidget(self.sphere)
        brush.addWidget(self.erase)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.apply_button)
        run.addWidget(self.cancel_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.show3d)
        layout.addWidget(self._rule())
        layout.addWidget(self.paint)
        layout.addLayout(brush)
        layout.addWidget(self._rule())
        layout.addWidget(self.tool_combo)
        layout.addWidget(self.tool_help)
        layout.addWidget(self.form_host)
        layout.addWidget(self.preview)
        layout.addLayout(run)
        layout.addWidget(self.message)
        layout.addStretch(1)

    def _rule(self) -> QtWidgets.QFrame:
        line = QtWidgets.QFrame(self)
        line.setFrameShape(QtWidgets.QFrame.Shape.HLine)
        line.setFrameShadow(QtWidgets.QFrame.Shadow.Sunken)
        return line

    def connect_views(self, views: list[Any]) -> None:
        """Receive paint strokes from these slice views."""
        self.views = list(views)
        for view in self.views:
            view.strokeStarted.connect(lambda lps, v=view: self._stroke(v, lps, start=True))
            view.strokeMoved.connect(lambda lps, v=view: self._stroke(v, lps, start=False))
            view.strokeEnded.connect(self._stroke_end)

    # -- model --------------------------------------------------------------------------------
    def set_actor(self, actor: Actor) -> None:
        """The person at the window: tools, strokes, saves and exports act as them."""
        self.actor = actor

    def attach(self, volume: Any, seg: Any = None, case: Case | None = None) -> None:
        """Edit ``seg`` (a new empty segmentation when None) on ``volume``'s grid.

        ``case`` is the vault case the volume belongs to (None for a plain image file: then
        nothing is checked, audited or stored).
        """
        self.worker.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.volume, self.case = volume, case
        self.seg = seg if seg is not None else workflow.new(volume)
        self._unsubscribe = self.seg.subscribe(lambda event: self._bridge.changed.emit(event.kind))
        self._set_enabled(True)
        self.message.setText("Pick a tool and Apply, or paint in the slice views.")
        self._update_preview()
        self._show_overlay()
        self._refresh_table()
        self._rebuild_form()
        self.historyChanged.emit()

    def detach(self) -> None:
        self.worker.cancel()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.seg = self.volume = self.case = None
        self._set_enabled(False)
        self.table.setRowCount(0)
        self.historyChanged.emit()

    def _set_enabled(self, enabled: bool) -> None:
        for widget in (
            self.table,
            self.add_button,
            self.remove_button,
            self.tool_combo,
            self.apply_button,
            self.paint,
            self.form_host,
            self.import_button,
            self.export_button,
        ):
            widget.setEnabled(enabled)
        self.cancel_button.setEnabled(False)
        if not enabled:
            self.message.setText("Open a case to segment it.")

    def _on_model_event(self, kind: str) -> None:
        if kind in ("segments", "history"):
            self._show_overlay()
        else:
            self.state.labelsEdited.emit()
        self._stats_timer.start()
        self.historyChanged.emit()

    def _show_overlay(self) -> None:
        if self.seg is None:
            return
        bits = self.seg.labels.dtype.itemsize * 8
        if bits <= _MAX_TABLE_BITS:
            table, shown, names = bitfield_table(self.seg, bits)
            self.state.set_label_table(self.seg.labels, table, shown, names)
        else:  # more than 16 segments: fall back to an exclusive label map copy
            labels, segments = self.seg.label_map()
            colors = {
                n: tuple(int(c * 255) for c in s.color) for n, s in enumerate(segments, start=1)
            }
            self.state.set_labels(labels, colors)

    def _refresh_table(self) -> None:
        if self.seg is None:
            return
        self.table.blockSignals(True)
        segments = self.seg.segments
        voxel_ml = float(np.prod(self.seg.grid.spacing)) / 1000.0
        self.table.setRowCount(len(segments))
        for row, segment in enumerate(segments):
            swatch = QtWidgets.QTableWidgetItem()
            swatch.setBackground(QtGui.QColor.fromRgbF(*segment.color))
            swatch.setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable)
            swatch.setToolTip("double-click to change the colour")
            name = QtWidgets.QTableWidgetItem(segment.name)
            name.setData(QtCore.Qt.ItemDataRole.UserRole, segment.id)
            shown = QtWidgets.QTableWidgetItem()
            shown.setFlags(
                QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsUserCheckable
            )
            shown.setCheckState(
                QtCore.Qt.CheckState.Checked if segment.visible else QtCore.Qt.CheckState.Unchecked
            )
            known = self._counts.get(segment.id)  # counted again below, in a thread
            volume = QtWidgets.QTableWidgetItem("…" if known is None else f"{known * voxel_ml:.1f}")
            volume.setFlags(QtCore.Qt.ItemFlag.ItemIsEnabled)
            for column, item in enumerate((swatch, name, shown, volume)):
                self.table.setItem(row, column, item)
        self.table.blockSignals(False)
        if segments and not self.table.selectionModel().selectedRows():
            self.table.selectRow(len(segments) - 1)
        self._rebuild_form_segments()
        self._count_voxels()

    def _count_voxels(self) -> None:
        """Count each segment's voxels off the GUI thread (a bone segment of a 1,000-slice CT
        takes ~0.5 s); the Volume column fills in when the counts arrive."""
        self._count_generation += 1
        generation, seg, segments = self._count_generation, self.seg, list(self.seg.segments)

        def work() -> None:
            if generation != self._count_generation:
                return  # a newer count is queued behind this one
            counts = {}
            for segment in segments:
                try:
                    counts[segment.id] = seg.voxel_count(segment)
                except Exception:  # removed meanwhile: a newer count follows
                    continue
            self._bridge.counted.emit(generation, counts)

        # One long-lived thread: starting a thread waits until it runs, which took up to a
        # second on a loaded machine while a tool's worker held the GIL.
        _COUNTER.submit(work)

    def _show_counts(self, generation: int, counts: dict[Any, int]) -> None:
        if generation != self._count_generation or self.seg is None:
            return  # a newer count is under way
        self._counts = counts
        voxel_ml = float(np.prod(self.seg.grid.spacing)) / 1000.0
        for row in range(self.table.rowCount()):
            name, volume = self.table.item(row, 1), self.table.item(row, 3)
            known = counts.get(name.data(QtCore.Qt.ItemDataRole.UserRole)) if name else None
            if volume is not None and known is not None:
                volume.setText(f"{known * voxel_ml:.1f}")
        self.volumesCounted.emit()

    def _refresh_3d(self) -> None:
        """Update (or clear) the segments' display surfaces in the 3D view."""
        if self.view3d is None:
            return
        wanted = {}
        if self.show3d.isChecked() and self.seg is not None and self.view3d.volume is not None:
            wanted = {f"segment:{s.name}": s for s in self.seg.segments if s.visible}
        for name in self.view3d.mesh_names():
            if name.startswith("segment:") and name not in wanted:
                self.view3d.remove_mesh(name)
        for name, segment in wanted.items():
            self.view3d.show_mask_surface(name, self.seg.mask(segment), tuple(segment.color))

    def segment_names(self) -> list[str]:
        return [] if self.seg is None else [s.name for s in self.seg.segments]

    def selected_segment(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.seg is None:
            return None
        return self.table.item(rows[0].row(), 1).data(QtCore.Qt.ItemDataRole.UserRole)

    def add_segment(self) -> None:
        if self.seg is None:
            return
        try:
            segment = self.seg.add_segment()
        except MedPrintError as exc:
            self.message.setText(str(exc))
            return
        self._refresh_table()
        self.table.selectRow(len(self.seg.segments) - 1)
        self.message.setText(f"Added {segment.name}.")

    def remove_selected(self) -> None:
        key = self.selected_segment()
        if key is None:
            return
        try:
            self.seg.remove_segment(key)
        except MedPrintError as exc:
            self.message.setText(str(exc))

    def _item_changed(self, item: QtWidgets.QTableWidgetItem) -> None:
        if self.seg is None:
            return
        key = self.table.item(item.row(), 1).data(QtCore.Qt.ItemDataRole.UserRole)
        try:
            if item.column() == 1 and item.text().strip():
                self.seg.update_segment(key, name=item.text().strip())
            elif item.column() == 2:
                self.seg.update_segment(
                    key, visible=item.checkState() == QtCore.Qt.CheckState.Checked
                )
        except MedPrintError as exc:
            self.message.setText(str(exc))
            self._refresh_table()

    def _pick_color(self, row: int, column: int) -> None:
        if column != 0 or self.seg is None:
            return
        key = self.table.item(row, 1).data(QtCore.Qt.ItemDataRole.UserRole)
        current = QtGui.QColor.fromRgbF(*self.seg.segment(key).color)
        color = QtWidgets.QColorDialog.getColor(current, self, "Segment colour")
        if color.isValid():
            self.seg.update_segment(key, color=(color.redF(), color.greenF(), color.blueF()))

    # -- tools --------------------------------------------------------------------------------
    def current_tool(self) -> Any:
        return self._tools.get(self.tool_combo.currentData())

    def select_tool(self, name: str) -> None:
        index = self.tool_combo.findData(name)
        if index < 0:
            msg = f"no segmentation tool {name!r} in this build"
            raise ValueError(msg)
        self.tool_combo.setCurrentIndex(index)

    def _rebuild_form(self) -> None:
        tool = self.current_tool()
        layout = self.form_host.layout()
        if self.form is not None:
            layout.removeWidget(self.form)
            self.form.deleteLater()
            self.form = None
        if tool is None:
            self.tool_help.setText("No segmentation tools are available in this build.")
            return
        first_line = (tool.help or "").strip().splitlines()[0] if tool.help else ""
        self.tool_help.setText(first_line)
        self.form = ParamForm(tool, self.segment_names(), self.form_host)
        layout.addWidget(self.form)
        if "preset" in self.form.widgets:
            combo = self.form.widgets["preset"][1]
            if combo.findText(self.default_threshold_preset) >= 0:
                combo.setCurrentText(self.default_threshold_preset)
        for name in ("lower", "upper", "preset", "method"):
            if name in self.form.widgets:
                widget = self.form.widgets[name][1]
                signal = getattr(widget, "valueChanged", None) or widget.currentTextChanged
                signal.connect(self._range_edited)
        self._update_preview()

    def preview_range(self) -> tuple[float, float] | None:
        """The intensity range the current tool's form selects, when it has one."""
        if (
            self.form is None
            or "lower" not in self.form.widgets
            or "upper" not in self.form.widgets
        ):
            return None
        widgets = self.form.widgets
        if "method" in widgets and widgets["method"][1].currentText() != "range":
            return None
        if "preset" in widgets and widgets["preset"][1].currentText() != "custom":
            return CT_PRESETS.get(widgets["preset"][1].currentText())
        return widgets["lower"][1].value(), widgets["upper"][1].value()

    def _range_edited(self) -> None:
        if not self.preview.isChecked():
            self.preview.setChecked(True)  # toggled → _update_preview
        else:
            self._update_preview()

    def _update_preview(self) -> None:
        span = self.preview_range() if self.seg is not None else None
        self.preview.setEnabled(span is not None)
        if span is None or not self.preview.isChecked():
            self._clear_preview()
        else:
            self.state.set_threshold_preview(*span)

    def _clear_preview(self) -> None:
        """Remove the threshold preview, if one is shown: clearing redraws every slice view's
        overlay (~50 ms on a 1,000-slice CT, in the same turn as the tool's own redraws)."""
        if self.state.preview is not None:
            self.state.set_threshold_preview(None)

    def _rebuild_form_segments(self) -> None:
        if self.form is None:
            return
        names = self.segment_names()
        for spec, widget in self.form.widgets.values():
            if spec.kind == "segment":
                text = widget.currentText()
                widget.blockSignals(True)
                widget.clear()
                widget.addItems(names)
                widget.setCurrentText(text)
                widget.blockSignals(False)

    def params_for(self, tool: Any, **overrides: Any) -> Any:
        values = {}
        if self.form is not None and self.form.tool is tool:
            values = self.form.values(self._crosshair_ijk())
        values.update(overrides)
        fields = {f.name for f in dataclasses.fields(tool.Params)}
        return tool.default_params(**{k: v for k, v in values.items() if k in fields})

    def _crosshair_ijk(self) -> tuple[float, float, float]:
        if self.volume is None:
            return (0.0, 0.0, 0.0)
        return tuple(float(v) for v in np.rint(self.volume.lps_to_index(self.state.cursor)))

    def apply_current(self, **overrides: Any) -> None:
        """Run the selected tool with the form's values (``overrides`` win) in the worker."""
        tool = self.current_tool()
        if tool is None or self.seg is None:
            return
        try:
            params = self.params_for(tool, **overrides)
        except MedPrintError as exc:
            self.message.setText(str(exc))
            return
        actor, case, seg, volume = self.actor, self.case, self.seg, self.volume
        self._run(
            f"{tool.title}…",
            lambda _inputs, progress=None, cancel=None: workflow.run_tool(
                actor, case, seg, volume, tool.name, params=params, progress=progress, cancel=cancel
            ),
            tool.title.lower(),
        )

    def _run(self, message: str, job: Any, name: str) -> None:
        self.message.setText(message)
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.apply_button.setEnabled(False)
        self.worker.start(job, None, name=name)

    def _tool_done(self, result: Any) -> None:
        self.cancel_button.setEnabled(False)
        self.apply_button.setEnabled(True)
        self.progress.setValue(1000)
        if isinstance(result, Segmentation):
            self.attach(self.volume, result, self.case)
            self.message.setText(f"Imported {len(result.segments)} segment(s); Save keeps them.")
            return
        if isinstance(result, workflow.Exported):
            self.message.setText(f"Exported {result.format} to {result.path.name}.")
            return
        assert isinstance(result, ToolResult)
        self._clear_preview()
        self.message.setText(result.message or "Done.")
        self._refresh_table()
        self.historyChanged.emit()

    def _tool_failed(self, message: str) -> None:
        self.cancel_button.setEnabled(False)
        self.apply_button.setEnabled(True)
        self.progress.setValue(0)
        self.message.setText(message)

    # -- painting -----------------------------------------------------------------------------
    def _paint_toggled(self, on: bool) -> None:
        for view in self.views:
            view.set_tool("stroke" if on else "navigate")
        if on and self.seg is not None and not self.seg.segments:
            self.add_segment()

    def _stroke(self, view: Any, lps: np.ndarray, start: bool) -> None:
        if self.seg is None or self.volume is None:
            return
        key = self.selected_segment()
        if key is None:
            self.message.setText("Add or select a segment to paint into.")
            return
        if start and not self._begin_stroke():
            return
        if not self._stroke_open:
            return
        ijk = self.volume.lps_to_index(lps)
        points = (
            [tuple(ijk)]
            if start or self._stroke_last is None
            else [tuple(self._stroke_last), tuple(ijk)]
        )
        self._stroke_last = ijk
        tool = get_tool("paint")  # the dabs of a stroke are live; the stroke is recorded
        try:
            params = tool.default_params(
                segment=key,
                points=points,
                axis=_AXIS_NAMES[view.geometry_.n_axis],
                **self._brush(),
            )
            tool.apply(self.seg, self.volume, params)
        except MedPrintError as exc:
            self.message.setText(str(exc))

    def _brush(self) -> dict[str, Any]:
        return {
            "radius_mm": self.radius.value(),
            "shape": "sphere" if self.sphere.isChecked() else "circle",
            "erase": self.erase.isChecked(),
        }

    def _begin_stroke(self) -> bool:
        try:
            workflow.begin_stroke(self.actor, self.case, self.seg, erase=self.erase.isChecked())
        except MedPrintError as exc:
            self.message.setText(str(exc))
            return False
        self._stroke_open = True
        return True

    def _stroke_end(self) -> None:
        self._stroke_last = None
        if self.seg is not None and self._stroke_open:
            self._stroke_open = False
            try:
                workflow.end_stroke(
                    self.actor,
                    self.case,
                    self.seg,
                    segment=self.selected_segment(),
                    **self._brush(),
                )
            except MedPrintError as exc:
                self.message.setText(str(exc))
        self.historyChanged.emit()

    # -- undo, save ---------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return self.seg is not None and bool(self.seg.history.undo_stack) and not self.worker.busy

    def can_redo(self) -> bool:
        return self.seg is not None and bool(self.seg.history.redo_stack) and not self.worker.busy

    def undo(self) -> None:
        try:
            self.seg.undo()
        except MedPrintError as exc:
            show_error(self, "Cannot undo", str(exc))

    def redo(self) -> None:
        try:
            self.seg.redo()
        except MedPrintError as exc:
            show_error(self, "Cannot redo", str(exc))

    def save(self, case: Case) -> None:
        """Store the segmentation in ``case`` (the window's Save), when it has segments."""
        if self.seg is not None and self.seg.segments:
            workflow.save(self._actor(), case, self.seg)
            self.message.setText(f"Saved {len(self.seg.segments)} segment(s) into the case.")

    def _actor(self) -> Actor:
        if self.actor is None:
            msg = "the panel has no user; the window gives it one (set_actor)"
            raise MedPrintError(msg)
        return self.actor

    # -- import, export -----------------------------------------------------------------------
    def import_from(self, path: str | Path) -> None:
        """Replace the segmentation with a file's (in the worker); Save keeps it."""
        if self.volume is None:
            return
        actor, case, volume = self.actor, self.case, self.volume
        self._run(
            f"Importing {Path(path).name}…",
            lambda _inputs, progress=None, cancel=None: workflow.import_file(
                actor, case, path, volume
            ),
            "importing a segmentation",
        )

    def export_to(self, path: str | Path, *, identified: bool = False) -> None:
        """Write the segmentation to ``path`` (format from its name) in the worker."""
        if self.seg is None:
            return
        actor, case, seg = self.actor, self.case, self.seg
        self._run(
            f"Exporting {Path(path).name}…",
            lambda _inputs, progress=None, cancel=None: workflow.export_file(
                actor, case, seg, path, identified=identified
            ),
            "exporting the segmentation",
        )

    def _import_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Import a segmentation", "", _FILE_FILTER
        )
        if path:
            self.import_from(path)

    def _export_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the segmentation", "segmentation.seg.nrrd", _FILE_FILTER
        )
        if path:
            self.export_to(path)

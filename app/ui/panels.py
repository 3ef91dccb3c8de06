"""Docked panels of the window: the display controls and the audit viewer."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from app.errors import MedPrintError
from app.ui.messages import show_error
from app.ui.worker import Worker
from app.viewers.layout import ViewArea
from app.viewers.view3d import CAMERA_PRESETS, CLIP_AXES, VOLUME_PRESETS
from app.viewers.windowing import PRESET_NAMES
from app.workflow import records
from app.workflow.actor import Actor


class DisplayPanel(QtWidgets.QWidget):
    """Window presets, overlay style, 3D rendering preset, camera, clipping, layout."""

    def __init__(self, area: ViewArea, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.area = area
        state = area.state
        form = QtWidgets.QFormLayout(self)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.window_preset = QtWidgets.QComboBox(self)
        self.window_preset.addItems([p.title() if p != "auto" else "Auto" for p in PRESET_NAMES])
        self.window_preset.setCurrentIndex(-1)
        self.window_preset.activated.connect(lambda i: state.apply_preset(PRESET_NAMES[i]))
        form.addRow("Window", self.window_preset)

        self.overlay_opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.overlay_opacity.setRange(0, 100)
        self.overlay_opacity.setValue(int(state.overlay_opacity * 100))
        self.overlay_opacity.valueChanged.connect(
            lambda v: state.set_overlay_style(opacity=v / 100)
        )
        form.addRow("Overlay opacity", self.overlay_opacity)
        self.overlay_outline = QtWidgets.QCheckBox("Outline only", self)
        self.overlay_outline.toggled.connect(lambda on: state.set_overlay_style(outline=on))
        self.overlay_visible = QtWidgets.QCheckBox("Show segmentation", self)
        self.overlay_visible.setChecked(True)
        self.overlay_visible.toggled.connect(lambda on: state.set_overlay_style(visible=on))
        form.addRow("", self.overlay_outline)
        form.addRow("", self.overlay_visible)

        self.volume_preset = QtWidgets.QComboBox(self)
        self.volume_preset.addItems(VOLUME_PRESETS)
        self.volume_preset.activated.connect(lambda i: area.view3d.set_preset(VOLUME_PRESETS[i]))
        area.view3d.presetChanged.connect(
            lambda name: self.volume_preset.setCurrentIndex(VOLUME_PRESETS.index(name))
        )
        form.addRow("3D rendering", self.volume_preset)

        cameras = QtWidgets.QWidget(self)
        grid = QtWidgets.QGridLayout(cameras)
        grid.setContentsMargins(0, 0, 0, 0)
        for n, name in enumerate(CAMERA_PRESETS):
            button = QtWidgets.QToolButton(cameras)
            button.setText(name.capitalize())
            button.clicked.connect(lambda _=False, v=name: area.view3d.camera_preset(v))
            grid.addWidget(button, n // 3, n % 3)
        form.addRow("3D camera", cameras)

        self.clip_axis = QtWidgets.QComboBox(self)
        self.clip_axis.addItems(["None", *[a.capitalize() for a in CLIP_AXES]])
        self.clip_position = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.clip_position.setRange(0, 1000)
        self.clip_position.setValue(500)
        self.clip_flip = QtWidgets.QCheckBox("Flip side", self)
        self.clip_axis.currentIndexChanged.connect(self._apply_clip)
        self.clip_position.valueChanged.connect(self._apply_clip)
        self.clip_flip.toggled.connect(self._apply_clip)
        form.addRow("Clip plane", self.clip_axis)
        form.addRow("Clip position", self.clip_position)
        form.addRow("", self.clip_flip)
        self._build_meshes(form)
        state.windowChanged.connect(self._sync_window)
        state.volumeChanged.connect(self._on_volume)

    def _build_meshes(self, form: QtWidgets.QFormLayout) -> None:
        self.meshes = QtWidgets.QListWidget(self)
        self.meshes.setMaximumHeight(90)
        self.meshes.setToolTip("Meshes in the 3D view; untick to hide")
        self.mesh_opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.mesh_opacity.setRange(0, 100)
        self.mesh_color = QtWidgets.QPushButton("Colour…", self)
        form.addRow("Meshes", self.meshes)
        form.addRow("Mesh opacity", self.mesh_opacity)
        form.addRow("", self.mesh_color)
        view3d = self.area.view3d
        view3d.meshesChanged.connect(self._sync_meshes)
        self.meshes.itemChanged.connect(
            lambda item: view3d.set_mesh_style(
                item.text(), visible=item.checkState() == QtCore.Qt.CheckState.Checked
            )
        )
        self.meshes.currentTextChanged.connect(self._select_mesh)
        self.mesh_opacity.valueChanged.connect(self._mesh_opacity)
        self.mesh_color.clicked.connect(self._mesh_colour)
        self._sync_meshes()

    def _sync_meshes(self) -> None:
        view3d = self.area.view3d
        self.meshes.blockSignals(True)
        self.meshes.clear()
        for name in view3d.mesh_names():
            item = QtWidgets.QListWidgetItem(name, self.meshes)
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            visible = view3d.mesh_style(name)[2]
            item.setCheckState(
                QtCore.Qt.CheckState.Checked if visible else QtCore.Qt.CheckState.Unchecked
            )
        self.meshes.blockSignals(False)
        has = bool(view3d.mesh_names())
        self.mesh_opacity.setEnabled(has)
        self.mesh_color.setEnabled(has)
        if has:
            self.meshes.setCurrentRow(0)

    def _select_mesh(self, name: str) -> None:
        if name in self.area.view3d.mesh_names():
            self.mesh_opacity.blockSignals(True)
            self.mesh_opacity.setValue(round(self.area.view3d.mesh_style(name)[1] * 100))
            self.mesh_opacity.blockSignals(False)

    def _mesh_opacity(self, value: int) -> None:
        item = self.meshes.currentItem()
        if item is not None:
            self.area.view3d.set_mesh_style(item.text(), opacity=value / 100)

    def _mesh_colour(self) -> None:
        item = self.meshes.currentItem()
        if item is None:
            return
        rgb = self.area.view3d.mesh_style(item.text())[0]
        colour = QtWidgets.QColorDialog.getColor(QtGui.QColor.fromRgbF(*rgb), self, "Mesh colour")
        if colour.isValid():
            self.area.view3d.set_mesh_style(
                item.text(), color=(colour.redF(), colour.greenF(), colour.blueF())
            )

    def _sync_window(self) -> None:
        preset = self.area.state.window_preset
        self.window_preset.setCurrentIndex(
            PRESET_NAMES.index(preset) if preset in PRESET_NAMES else -1
        )

    def _on_volume(self) -> None:
        self._sync_window()
        preset = self.area.view3d.preset
        if preset in VOLUME_PRESETS:
            self.volume_preset.setCurrentIndex(VOLUME_PRESETS.index(preset))
        self._apply_clip()

    def _apply_clip(self) -> None:
        index = self.clip_axis.currentIndex()
        view3d = self.area.view3d
        if index <= 0 or view3d.volume is None:
            view3d.set_clipping(None)
            return
        axis = list(CLIP_AXES)[index - 1]
        bounds = view3d.scene_bounds()
        p = list(CLIP_AXES).index(axis)
        lo, hi = bounds[0, p], bounds[1, p]
        position = lo + (hi - lo) * self.clip_position.value() / 1000
        view3d.set_clipping(axis, position, flip=self.clip_flip.isChecked())


class AuditPanel(QtWidgets.QWidget):
    """Read-only view of the audit log with its verification status."""

    COLUMNS = ("#", "Time (UTC)", "User", "Action", "Case", "Facts")

    def __init__(self, actor: Actor, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.actor = actor
        self.worker = Worker(self)
        self.status = QtWidgets.QLabel("Not checked yet", self)
        self.status.setObjectName("auditStatus")
        self.status.setWordWrap(True)
        self.refresh_button = QtWidgets.QPushButton("Refresh and verify", self)
        self.export_button = QtWidgets.QPushButton("Export…", self)
        self.export_button.setToolTip(
            "Save the records as CSV or JSON (they carry no patient data)"
        )
        self.records: list[dict] = []
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS), self)
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.refresh_button)
        top.addWidget(self.export_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.refresh_button.clicked.connect(self.refresh)
        self.export_button.clicked.connect(self._export_dialog)
        self.worker.done.connect(self._show)
        self.worker.error.connect(lambda m: self.status.setText(f"Audit log unreadable: {m}"))

    def refresh(self) -> None:
        self.status.setText("Verifying the audit log…")
        self.worker.start(_review_log, self.actor, name="reading the audit log")

    def _show(self, result: tuple[records.VerifyResult, list[dict]]) -> None:
        verdict, rows = result
        self.records = rows
        mark = "✔" if verdict.ok else "✘"
        self.status.setText(f"{mark} {verdict.message}")
        self.status.setProperty("ok", verdict.ok)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.table.setRowCount(len(rows))
        for row, rec in enumerate(reversed(rows)):  # newest first
            facts = ", ".join(f"{k}={v}" for k, v in sorted((rec.get("facts") or {}).items()))
            values = (
                rec.get("seq"),
                rec.get("time"),
                rec.get("user"),
                rec.get("action"),
                rec.get("case") or "",
                facts,
            )
            for column, value in enumerate(values):
                self.table.setItem(
                    row, column, QtWidgets.QTableWidgetItem("" if value is None else str(value))
                )
        self.table.resizeColumnsToContents()

    def export(self, path: str) -> None:
        """Write the log to ``path`` as CSV or JSON (by its extension); audited."""
        fmt = "json" if path.lower().endswith(".json") else "csv"
        Path(path).write_text(records.export_log(self.actor, fmt), encoding="utf-8")

    def _export_dialog(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export the audit log", "audit.csv", "CSV (*.csv);;JSON (*.json)"
        )
        if chosen:
            try:
                self.export(chosen)
            except (OSError, MedPrintError) as exc:
                show_error(self, "Audit log not exported", str(exc))


def _review_log(
    actor: Actor, *, progress: object = None, cancel: object = None
) -> tuple[records.VerifyResult, list[dict]]:
    """The worker's form of :func:`records.review_log` (which reports no progress)."""
    return records.review_log(actor)

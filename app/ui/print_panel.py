"""The Print panel: a stored mesh version of the case → G-code stored in the case with its
provenance (:func:`app.workflow.slice.slice_version`, built-in slicer or PrusaSlicer), its
summary, a layer slider with that layer's toolpaths coloured by type, and Save G-code.

Printing a stored G-code (USB, OctoPrint, Moonraker) with the live job view is
:mod:`app.ui.print_job`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.progress import CancelToken, Progress
from app.ui.deferred import mesh_stack
from app.ui.print_job import PrintSection, format_duration
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow.actor import Actor

if TYPE_CHECKING:
    from app.workflow import slice as slicing

# Toolpath colours by move type value (PrusaSlicer's palette, roughly).
TYPE_COLORS = {
    0: (120, 120, 140),  # travel
    1: (255, 140, 40),  # external perimeter
    2: (255, 200, 60),  # perimeter
    3: (60, 60, 255),  # overhang perimeter
    4: (180, 40, 40),  # infill
    5: (210, 70, 200),  # solid infill
    6: (255, 80, 80),  # top solid infill
    7: (90, 130, 255),  # bridge infill
    8: (255, 255, 255),  # gap fill
    9: (0, 200, 200),  # skirt
    10: (60, 220, 60),  # support
    11: (0, 140, 0),  # support interface
}


TOOLPATHS_3D = "toolpaths"


def _slice(
    call: Any, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> slicing.Sliced:
    """Worker function: the bound workflow call, with the worker's progress and cancel."""
    return call(progress=progress, cancel=cancel)


class ToolpathView(QtWidgets.QWidget):
    """One layer of toolpaths seen from above, on the printer's bed."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(220)
        self.bed = (220.0, 220.0)
        self.segments: dict[int, np.ndarray] = {}

    def set_layer(self, segments: dict[int, np.ndarray], bed: tuple[float, float]) -> None:
        self.segments = {int(k): v for k, v in segments.items()}
        self.bed = bed
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(24, 25, 29))
        margin = 8
        scale = min(
            (self.width() - 2 * margin) / self.bed[0], (self.height() - 2 * margin) / self.bed[1]
        )
        ox = (self.width() - self.bed[0] * scale) / 2
        oy = (self.height() + self.bed[1] * scale) / 2  # bed y up, screen y down
        painter.setPen(QtGui.QPen(QtGui.QColor(70, 72, 80), 1))
        painter.drawRect(
            QtCore.QRectF(ox, oy - self.bed[1] * scale, self.bed[0] * scale, self.bed[1] * scale)
        )
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        for kind, segs in sorted(self.segments.items()):
            if not len(segs):
                continue
            painter.setPen(QtGui.QPen(QtGui.QColor(*TYPE_COLORS.get(kind, (200, 200, 200))), 1.2))
            x = ox + segs[:, :, 0] * scale
            y = oy - segs[:, :, 1] * scale
            lines = [
                QtCore.QLineF(a, b, c, d)
                for a, b, c, d in zip(x[:, 0], y[:, 0], x[:, 1], y[:, 1], strict=True)
            ]
            painter.drawLines(lines)
        painter.end()


class PrintPanel(QtWidgets.QWidget):
    """Slices a stored mesh version of the case into stored G-code; previews the toolpaths."""

    sliced = QtCore.Signal(object)  # workflow.slice.Sliced (a new stored G-code)

    def __init__(self, mesh_panel: Any, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("printPanel")
        self.mesh_panel = mesh_panel
        self.actor: Actor | None = None
        self.case: Case | None = None
        self.result: Any = None  # the last SliceResult, for the toolpath preview
        self.stored: Any = None  # the last stored G-code
        self.printers: dict[str, Any] = {}
        self.materials: dict[str, Any] = {}
        self.worker = Worker(self)
        self.worker.done.connect(self._sliced)
        self.worker.error.connect(self._finish)
        self.worker.cancelled.connect(lambda: self._finish("Cancelled; no G-code was made."))
        self._build()
        mesh_panel.meshChanged.connect(self._sync_source)
        self._sync_source()

    def _build(self) -> None:
        self.source = QtWidgets.QLabel(self)
        self.source.setWordWrap(True)
        self.version = QtWidgets.QComboBox(self)
        self.version.setToolTip("the stored mesh version to slice (its hash goes into the G-code)")
        self.printer = QtWidgets.QComboBox(self)
        self.material = QtWidgets.QComboBox(self)
        self.engine = QtWidgets.QComboBox(self)
        self.layer_height = QtWidgets.QDoubleSpinBox(self)
        self.layer_height.setRange(0.05, 0.6)
        self.layer_height.setSingleStep(0.05)
        self.layer_height.setValue(0.2)
        self.layer_height.setSuffix(" mm")
        self.infill = QtWidgets.QSpinBox(self)
        self.infill.setRange(0, 100)
        self.infill.setValue(15)
        self.infill.setSuffix(" %")
        self.supports = QtWidgets.QCheckBox("Supports", self)
        self._build_outputs()

    def _build_outputs(self) -> None:
        self.slice_button = QtWidgets.QPushButton("Slice", self)
        self.slice_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = ProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.summary = QtWidgets.QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setMinimumHeight(QtGui.QFontMetrics(self.summary.font()).lineSpacing() * 4)
        self.summary.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
        )
        self.layer = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.layer.setEnabled(False)
        self.layer_label = QtWidgets.QLabel(self)
        self.toolpaths = ToolpathView(self)
        self.show_3d = QtWidgets.QCheckBox("Show this layer over the mesh in 3D", self)
        self.show_3d.toggled.connect(lambda _on: self.show_layer(self.layer.value()))
        self.save_button = QtWidgets.QPushButton("Save G-code…", self)
        self.save_button.setEnabled(False)
        self._lay_out()

    def _lay_out(self) -> None:
        note = QtWidgets.QLabel("Headless printing: `medprint print`.", self)
        note.setObjectName("hint")
        note.setWordWrap(True)
        form = QtWidgets.QFormLayout()
        form.addRow("Mesh version", self.version)
        form.addRow("Printer", self.printer)
        form.addRow("Material", self.material)
        form.addRow("Engine", self.engine)
        form.addRow("Layer height", self.layer_height)
        form.addRow("Infill", self.infill)
        form.addRow("", self.supports)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.slice_button)
        run.addWidget(self.cancel_button)
        layer_row = QtWidgets.QVBoxLayout()
        layer_row.addWidget(self.layer)
        layer_row.addWidget(self.layer_label)
        layer_row.addWidget(self.show_3d)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.source)
        layout.addLayout(form)
        layout.addLayout(run)
        layout.addWidget(self.summary)
        layout.addLayout(layer_row)
        layout.addWidget(self.toolpaths, 1)
        layout.addWidget(self.save_button)
        self.print_section = PrintSection(self)
        layout.addWidget(self.print_section)
        layout.addWidget(note)
        self.slice_button.clicked.connect(self.slice)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))
        self.layer.valueChanged.connect(self.show_layer)
        self.save_button.clicked.connect(self._save_dialog)

    def load_profiles(self, paths: Any, default_printer: str) -> None:
        """Fill the printer, material and engine lists (errors leave them empty, with a note)."""
        from app.printing.profiles import load_materials, load_printers  # noqa: PLC0415
        from app.printing.slicer import engines  # noqa: PLC0415

        try:
            self.printers = load_printers(paths)
            self.materials = load_materials(paths)
        except Exception as exc:  # a broken profile file: say so, keep the panel usable
            self.summary.setText(f"Printer profiles unreadable: {exc}")
            self.printers, self.materials = {}, {}
        self.printer.clear()
        for key, profile in sorted(self.printers.items()):
            self.printer.addItem(profile.name, key)
        self.material.clear()
        for key, material in sorted(self.materials.items()):
            self.material.addItem(material.name, key)
        self.printer.currentIndexChanged.connect(self._printer_changed)
        index = self.printer.findData(default_printer)
        self.printer.setCurrentIndex(max(index, 0))
        self._printer_changed()
        self.engine.clear()
        for info in engines():
            self.engine.addItem(
                info.label + ("" if info.available else " (not installed)"), info.name
            )
            if not info.available:
                item = self.engine.model().item(self.engine.count() - 1)
                item.setEnabled(False)
                item.setToolTip(info.hint)
        self._sync_source()

    def _printer_changed(self) -> None:
        """Select the printer's default material."""
        printer = self.printers.get(self.printer.currentData())
        if printer is not None:
            index = self.material.findData(printer.default_material)
            if index >= 0:
                self.material.setCurrentIndex(index)

    def set_actor(self, actor: Actor | None) -> None:
        """Who slices and prints (the window's actor)."""
        self.actor = actor
        self.print_section.set_actor(actor)

    def set_case(self, case: Case | None) -> None:
        """The open case: its mesh versions to slice, its stored G-codes to print."""
        self.case = case
        self.result = self.stored = None
        self.layer.setEnabled(False)
        self.save_button.setEnabled(False)
        self.print_section.set_case(case)
        self._sync_source()

    def _sync_source(self) -> None:
        """The case's mesh versions, newest first (the Mesh panel's current one selected)."""
        chosen = self.version.currentData()
        current = getattr(self.mesh_panel, "current_version", None)
        self.version.clear()
        versions = self.case.mesh_versions() if self.case is not None else []
        for number in reversed(versions):
            self.version.addItem(f"v{number}", number)
        pick = current if current in versions else chosen
        if pick is not None:
            self.version.setCurrentIndex(max(0, self.version.findData(pick)))
        if self.case is None:
            self.source.setText("Open a case to slice its mesh versions.")
        elif not versions:
            self.source.setText("Build a mesh version in the Mesh panel to slice it.")
        else:
            self.source.setText(f"Case {self.case.pseudonym}: the G-code is stored in the case.")
        self.slice_button.setEnabled(
            bool(versions) and self.printer.count() > 0 and not self.worker.busy
        )

    def slice(self) -> None:
        """Slice the chosen mesh version in the worker; the G-code is stored in the case."""
        from app.printing.slicer import SliceSettings  # noqa: PLC0415

        version = self.version.currentData()
        if self.case is None or self.actor is None or version is None or not self.printers:
            return
        try:
            settings = SliceSettings(
                layer_height=self.layer_height.value(),
                infill_density=float(self.infill.value()),
                supports=self.supports.isChecked(),
            )
        except MedPrintError as exc:
            self.summary.setText(str(exc))
            return
        mesh_stack().load_now()
        from app.workflow import resin  # noqa: PLC0415 (heavy: on first use)
        from app.workflow import slice as slicing  # noqa: PLC0415

        printer = self.printer.currentData()
        if resin.is_resin_printer(self.actor, printer):
            self._slice_resin(version, printer)
            return
        call = partial(
            slicing.slice_version,
            self.actor,
            self.case,
            version=version,
            printer=self.printer.currentData(),
            material=self.material.currentData(),
            settings=settings,
            engine=self.engine.currentData(),
        )
        self._run(call, version)

    def _slice_resin(self, version: int, printer: str) -> None:
        """Resin printer: an SL1 stored in the case (:func:`app.workflow.resin.slice_resin`)."""
        from app.printing.slicer.sla import SlaSettings  # noqa: PLC0415
        from app.workflow import resin  # noqa: PLC0415

        settings = SlaSettings(
            supports=self.supports.isChecked(), layer_height=self.layer_height.value()
        )
        call = partial(
            resin.slice_resin, self.actor, self.case, version=version, printer=printer,
            material=self.material.currentData(), settings=settings,
        )  # fmt: skip
        self._run(call, version)

    def _run(self, call: Any, version: int) -> None:
        self.summary.setText(f"Slicing mesh v{version}…")
        self.progress.setValue(0)
        self.slice_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.start(_slice, call, name=f"slicing mesh v{version}")

    def _sliced(self, sliced: Any) -> None:
        if hasattr(sliced, "archive"):
            self._sliced_resin(sliced)
            return
        self.result, self.stored = sliced.result, sliced.gcode
        head = f"Stored G-code g{sliced.gcode.number} from mesh v{sliced.gcode.provenance['mesh_version']}."
        self._finish("\n".join([head, *sliced.summary_lines(), *sliced.warnings]))
        count = self.result.analysis.layer_count
        self.layer.setEnabled(count > 0)
        self.layer.setRange(0, max(count - 1, 0))
        self.layer.setValue(min(count // 2, max(count - 1, 0)))
        self.show_layer(self.layer.value())
        self.save_button.setEnabled(True)
        self.sliced.emit(sliced)

    def _sliced_resin(self, sliced: Any) -> None:
        """A stored SL1: its layers, resin and time (no toolpaths to preview)."""
        self.result = None
        archive, number = sliced.archive, sliced.stored.number
        head = (
            f"Stored resin slicing s{number} from mesh v{sliced.stored.provenance['mesh_version']}."
        )
        facts = (
            f"{archive.layers} layers · {archive.resin_ml:.1f} ml resin · "
            f"{format_duration(archive.print_time_s)}"
        )
        self._finish("\n".join([head, facts, *sliced.warnings]))
        self.progress.setValue(1000)
        self.layer.setEnabled(False)
        self.save_button.setEnabled(False)
        self.sliced.emit(sliced)

    def _finish(self, message: str) -> None:
        self.summary.setText(message)
        self.cancel_button.setEnabled(False)
        self.progress.setValue(1000 if self.result is not None else 0)
        self._sync_source()

    def show_layer(self, index: int) -> None:
        if self.result is None:
            return
        analysis = self.result.analysis
        segments = analysis.layer_segments_by_type(index)
        printer = self.printers.get(self.printer.currentData())
        bed = tuple(printer.build_volume[:2]) if printer is not None else (220.0, 220.0)
        self.toolpaths.set_layer(segments, bed)
        self._toolpaths_in_3d(segments)
        self.layer_label.setText(
            f"layer {index + 1}/{analysis.layer_count}  z {analysis.layer_z[index]:.2f} mm"
        )

    def _toolpaths_in_3d(self, segments: dict) -> None:
        """The layer's extrusions as lines in the 3D view, moved back from the bed onto the
        mesh (one part only: with several parts the bed placement is not one offset)."""
        view = getattr(self.mesh_panel, "view3d", None)
        if view is None:
            return
        placements = getattr(self.result, "placements", [])
        if not self.show_3d.isChecked() or len(placements) != 1:
            view.remove_mesh(TOOLPATHS_3D)
            return
        lines = [np.asarray(v, dtype=np.float64) for v in segments.values() if len(v)]
        if not lines:
            view.remove_mesh(TOOLPATHS_3D)
            return
        points = np.concatenate(lines).reshape(-1, 3) - np.asarray(placements[0])
        cells = np.column_stack(
            [
                np.full(len(points) // 2, 2),
                np.arange(0, len(points), 2),
                np.arange(1, len(points), 2),
            ]
        )
        import pyvista as pv  # noqa: PLC0415 (the 3D view loads it once the window is up)

        view.add_mesh(TOOLPATHS_3D, pv.PolyData(points, lines=cells.ravel()), color=(0.1, 0.5, 0.9))
        view.render()

    def save_gcode(self, path: str) -> None:
        """Write a copy of the G-code chosen for printing (else the last one sliced)."""
        number = self.print_section.selected_gcode() or (self.stored and self.stored.number)
        if self.case is None or self.actor is None or not number:
            return
        from app.workflow import slice as slicing  # noqa: PLC0415 (heavy: on first use)

        try:
            slicing.export(self.actor, self.case, number, Path(path))
        except MedPrintError as exc:
            self.summary.setText(str(exc))

    def _save_dialog(self) -> None:
        number = self.print_section.selected_gcode() or (self.stored and self.stored.number)
        if self.case is None or not number:
            return
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save G-code", f"{self.case.pseudonym}-g{number}.gcode", "G-code (*.gcode)"
        )
        if chosen:
            self.save_gcode(chosen)

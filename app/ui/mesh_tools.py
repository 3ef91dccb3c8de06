"""The Mesh panel's Edit and Export sections.

Every edit works on the stored version the panel shows, runs in the panel's worker (progress
and cancel) through :func:`app.workflow.mesh.edit`, and stores its result as a NEW version with
a fresh QA report: an approval of the old version (bound to its hash) does not carry over. The
label is always the case pseudonym, never free text. Export goes through
:func:`app.workflow.mesh.export` (clean file, named by pseudonym and part, audited).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtWidgets

from app.ui.deferred import mesh_stack
from app.ui.worker import error_message

AXES = {"L-R (x)": "x", "P-A (y)": "y", "S-I (z)": "z"}  # app.tools.mesh.operations.AXES names
FORMATS = ("stl", "3mf", "obj", "ply")


def _spin(parent, low, high, value, suffix, *, step=1.0, decimals=1) -> QtWidgets.QDoubleSpinBox:
    box = QtWidgets.QDoubleSpinBox(parent)
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


class MeshTools(QtWidgets.QWidget):
    """Edit, measure and export the Mesh panel's current mesh."""

    def __init__(self, panel: Any) -> None:
        super().__init__(panel)
        self.panel = panel
        self._busy = False
        self._measured_for: Any = None
        self._measured_text = ""
        self._build()
        self._lay_out()
        panel.meshChanged.connect(self.refresh)
        self.refresh()

    # -- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.cut_axis = QtWidgets.QComboBox(self)
        self.cut_axis.addItems(list(AXES))
        self.cut_axis.setCurrentText("S-I (z)")
        self.cut_source = QtWidgets.QComboBox(self)
        self.cut_source.addItems(["through the crosshair", "the 3D clip plane"])
        self.cut_keep = QtWidgets.QComboBox(self)
        self.cut_keep.addItems(["front", "back"])
        self.cut_keep.setToolTip("front: the side the axis points to (L, P or S)")
        self.cut_button = QtWidgets.QPushButton("Cut", self)
        self.mirror_button = QtWidgets.QPushButton("Mirror L-R", self)
        self.scale_percent = _spin(self, 10.0, 400.0, 100.0, " %", step=5.0)
        self.scale_button = QtWidgets.QPushButton("Scale", self)
        self.wall = _spin(self, 0.5, 20.0, 2.0, " mm wall", step=0.5)
        self.hole = _spin(self, 0.0, 20.0, 4.0, " mm hole", step=0.5)
        self.hole.setToolTip("drain hole at the lowest point (0 = no hole)")
        self.hollow_button = QtWidgets.QPushButton("Hollow", self)
        self.base_thickness = _spin(self, 0.5, 20.0, 3.0, " mm", step=0.5)
        self.base_button = QtWidgets.QPushButton("Flat base", self)
        self.label_mode = QtWidgets.QComboBox(self)
        self.label_mode.addItems(["emboss", "engrave"])
        self.label_height = _spin(self, 3.0, 30.0, 7.5, " mm high", step=0.5)
        self.label_depth = _spin(self, 0.5, 10.0, 3.0, " mm deep", step=0.5)
        self.label_button = QtWidgets.QPushButton("Label", self)
        self.label_button.setToolTip("emboss/engrave the case pseudonym at an automatic site")
        self.bool_op = QtWidgets.QComboBox(self)
        self.bool_op.addItems(["union", "difference"])
        self.bool_with = QtWidgets.QComboBox(self)
        self.bool_with.setToolTip("the other stored mesh version")
        self.bool_button = QtWidgets.QPushButton("Apply", self)
        self.rod = _spin(self, 1.0, 20.0, 5.0, " mm rod", step=0.5)
        self.rod_button = QtWidgets.QPushButton("Connect parts", self)
        self.rod_button.setToolTip("a rod between the two largest components, at their closest")
        self.point_a_button = QtWidgets.QPushButton("A = crosshair", self)
        self.point_b_button = QtWidgets.QPushButton("B = crosshair", self)
        self.distance = QtWidgets.QLabel("pick two points", self)
        self.points: list[np.ndarray | None] = [None, None]
        self.measurements = QtWidgets.QLabel(self)
        self.measurements.setObjectName("hint")
        self.measurements.setWordWrap(True)
        self.export_format = QtWidgets.QComboBox(self)
        self.export_format.addItems([f.upper() for f in FORMATS])
        self.export_button = QtWidgets.QPushButton("Export…", self)
        self.edit_buttons = [
            self.cut_button, self.mirror_button, self.scale_button, self.hollow_button,
            self.base_button, self.label_button, self.bool_button, self.rod_button,
        ]  # fmt: skip

    def _lay_out(self) -> None:
        def row(*widgets: QtWidgets.QWidget) -> QtWidgets.QHBoxLayout:
            line = QtWidgets.QHBoxLayout()
            for w in widgets:
                line.addWidget(w, 0 if isinstance(w, QtWidgets.QPushButton) else 1)
            return line

        edit = QtWidgets.QGroupBox("Edit", self)
        form = QtWidgets.QFormLayout(edit)
        form.addRow("Plane cut", row(self.cut_axis, self.cut_source))
        form.addRow("", row(self.cut_keep, self.cut_button))
        form.addRow(
            "Mirror / scale", row(self.mirror_button, self.scale_percent, self.scale_button)
        )
        form.addRow("Hollow", row(self.wall, self.hole, self.hollow_button))
        form.addRow("Flat base", row(self.base_thickness, self.base_button))
        form.addRow("Label", row(self.label_mode, self.label_height, self.label_depth))
        form.addRow("", row(self.label_button))
        form.addRow("Boolean", row(self.bool_op, self.bool_with, self.bool_button))
        form.addRow("Connector", row(self.rod, self.rod_button))
        form.addRow("Measure", self.measurements)
        form.addRow("Distance", row(self.point_a_button, self.point_b_button, self.distance))
        export = QtWidgets.QGroupBox("Export", self)
        export.setLayout(row(self.export_format, self.export_button))
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit)
        layout.addWidget(export)

        self.cut_button.clicked.connect(self.cut)
        self.mirror_button.clicked.connect(lambda: self.run("mirror", normal=AXES["L-R (x)"]))
        self.scale_button.clicked.connect(
            lambda: self.run("scale", factor=self.scale_percent.value() / 100.0)
        )
        self.hollow_button.clicked.connect(
            lambda: self.run("hollow", wall_mm=self.wall.value(), hole_mm=self.hole.value())
        )
        self.base_button.clicked.connect(
            lambda: self.run("flat_base", thickness_mm=self.base_thickness.value())
        )
        self.label_button.clicked.connect(
            lambda: self.run(
                "label",
                mode=self.label_mode.currentText(),
                height_mm=self.label_height.value(),
                depth_mm=self.label_depth.value(),
            )
        )
        self.bool_button.clicked.connect(self.boolean)
        self.rod_button.clicked.connect(lambda: self.run("connector", diameter_mm=self.rod.value()))
        self.export_button.clicked.connect(self._export_dialog)
        self.point_a_button.clicked.connect(lambda: self.pick(0))
        self.point_b_button.clicked.connect(lambda: self.pick(1))

    # -- state --------------------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """Disable the edits while the panel's worker runs, else follow the current mesh."""
        self._busy = busy
        self.refresh()

    def refresh(self) -> None:
        """Enable the tools for the shown version; show its measurements and the other versions."""
        panel = self.panel
        mesh = panel.current_mesh
        stored = mesh is not None and panel.current_version is not None
        for button in self.edit_buttons:
            button.setEnabled(stored and not self._busy)
        self.export_button.setEnabled(stored)
        self.bool_with.clear()
        for v in reversed(panel.stored):
            if v.number != panel.current_version:
                self.bool_with.addItem(f"v{v.number}", v.number)
        self.bool_button.setEnabled(self.bool_button.isEnabled() and self.bool_with.count() > 0)
        self.measurements.setText(self._measured(mesh) if mesh is not None else "no mesh")

    def _measured(self, mesh: Any) -> str:
        """The measurements of ``mesh``, computed once per mesh (refresh runs at the start and
        the end of every job: on a thin-slice bone each measure took a noticeable pause)."""
        if self._measured_for is not mesh:
            self._measured_for, self._measured_text = mesh, self.measure_text(mesh)
        return self._measured_text

    @staticmethod
    def measure_text(mesh: Any) -> str:
        mesh_stack().load_now()
        from app.tools.mesh.edit import measure  # noqa: PLC0415 (heavy: on first use)

        m = measure(mesh)
        lo = ", ".join(f"{v:.1f}" for v in m.bbox_min)
        hi = ", ".join(f"{v:.1f}" for v in m.bbox_max)
        size = " × ".join(f"{v:.1f}" for v in m.size_mm)
        return (
            f"volume {m.volume_mm3 / 1000:.2f} ml, area {m.area_mm2 / 100:.1f} cm², "
            f"box {size} mm from ({lo}) to ({hi})"
        )

    def pick(self, which: int) -> None:
        """Take the crosshair as point A (0) or B (1); show the distance once both are set."""
        cursor = getattr(getattr(self.panel.segments, "state", None), "cursor", None)
        if cursor is None:
            self.distance.setText("no crosshair: load a volume")
            return
        self.points[which] = np.asarray(cursor, dtype=np.float64).copy()
        a, b = self.points
        if a is None or b is None:
            self.distance.setText("now the other point")
            return
        mesh_stack().load_now()
        from app.tools.mesh.edit import distance  # noqa: PLC0415 (heavy: on first use)

        self.distance.setText(f"{distance(a, b):.1f} mm")

    # -- edits --------------------------------------------------------------------------------
    def cut_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """(point, normal) of the chosen cut plane in LPS mm."""
        if self.cut_source.currentIndex() == 1:
            plane = self.panel.view3d.clip_plane()
            if plane is not None:
                return plane
        mesh_stack().load_now()
        from app.tools.mesh.operations import AXES as AXIS_NORMALS  # noqa: PLC0415

        normal = np.array(AXIS_NORMALS[AXES[self.cut_axis.currentText()]])
        cursor = getattr(getattr(self.panel.segments, "state", None), "cursor", None)
        if cursor is None:
            cursor = self.panel.current_mesh.bounds.mean(axis=0)
        return np.asarray(cursor, dtype=np.float64), normal

    def cut(self) -> None:
        if self.cut_source.currentIndex() == 1 and self.panel.view3d.clip_plane() is None:
            self.panel.message.setText(
                "No clip plane in the 3D view; set one or cut at the crosshair."
            )
            return
        point, normal = self.cut_plane()
        self.run("cut", point=point, normal=normal, keep=self.cut_keep.currentText())

    def boolean(self) -> None:
        other = self.bool_with.currentData()
        if other is not None:
            self.run(self.bool_op.currentText(), with_version=int(other))

    def run(self, operation: str, **params: Any) -> None:
        """Start ``operation`` on the shown version in the panel's worker."""
        self.panel.start_edit(operation, params)

    # -- export -------------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the mesh to")
        if folder:
            self.export(Path(folder))

    def export(self, folder: Path) -> Path | None:
        """Write the shown version as ``<pseudonym>_<part>.<ext>`` in ``folder`` (clean, audited)."""
        panel = self.panel
        if panel.current_version is None or panel.case is None or panel.actor is None:
            panel.message.setText("Show a stored mesh version of a case before exporting.")
            return None
        fmt = self.export_format.currentText().lower()
        mesh_stack().load_now()
        from app.workflow import mesh as workflow  # noqa: PLC0415

        try:
            path = workflow.export(panel.actor, panel.case, panel.current_version, folder, fmt)
        except Exception as exc:  # one line for the user, whatever failed
            panel.message.setText(error_message(exc, "export"))
            return None
        panel.message.setText(f"Exported {path.name}.")
        return path

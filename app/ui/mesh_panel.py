"""The Mesh panel: a segment → printable mesh (``app.tools.mesh.pipeline.build_mesh``), its QA
report (``app.tools.mesh.qa.qa_report``) with pass/fail per check, the mesh in the 3D view
(optionally coloured by its deviation from the segmentation surface), and the case's stored
mesh versions (``app.tools.mesh.store``).

Building and editing (app.ui.mesh_tools: cut, mirror, scale, hollow, flat base, pseudonym
label, booleans, connector; measurements; export) run in the worker with progress and cancel;
every built or edited mesh is stored as a new
version of the case with its report, as ``medprint mesh`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.progress import CancelToken, Progress, check_cancel, ensure
from app.ui.worker import Worker

MESH_NAME = "mesh"
_PASS = QtGui.QColor(127, 211, 127)
_FAIL = QtGui.QColor(255, 123, 123)


@dataclass
class MeshJob:
    """Inputs of one build."""

    mask: np.ndarray
    volume: Any
    case: Any
    part: str
    smoothing: float
    reduction: float | None
    tolerance_mm: float
    build_volume_mm: tuple[float, float, float] | None
    deviation_colours: bool


@dataclass
class MeshResult:
    mesh: Any
    qa: Any
    info: dict
    stored: str | None
    deviation: np.ndarray | None


def build_and_check(
    job: MeshJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> MeshResult:
    """build_mesh → qa_report → (vertex deviation) → save_mesh_version; Qt-free."""
    from app.tools.mesh.pipeline import build_mesh  # noqa: PLC0415
    from app.tools.mesh.qa import qa_report  # noqa: PLC0415

    progress = ensure(progress)
    built = build_mesh(
        job.mask,
        job.volume,
        smoothing=job.smoothing,
        reduction=job.reduction,
        progress=progress.sub(0.0, 0.7),
        cancel=cancel,
    )
    qa = qa_report(
        built.mesh,
        reference=built.reference,
        build_volume_mm=job.build_volume_mm,
        tolerance_mm=job.tolerance_mm,
        progress=progress.sub(0.7, 0.95),
        cancel=cancel,
    )
    check_cancel(cancel)
    deviation = None
    if job.deviation_colours:
        from app.tools.mesh.surface import vertex_deviation  # noqa: PLC0415

        progress.update(0.95, "measuring the deviation per vertex")
        deviation = vertex_deviation(built.mesh, built.reference)
    info = built.to_dict() | {"label": None, "part": job.part}
    stored = None
    if job.case is not None:
        from app.tools.mesh.store import save_mesh_version  # noqa: PLC0415

        stored = save_mesh_version(job.case, built.mesh, qa, info)
    progress.update(1.0, "mesh built and checked")
    return MeshResult(built.mesh, qa, info, stored, deviation)


class MeshPanel(QtWidgets.QWidget):
    """Builds, checks and shows meshes of the Segment panel's segments."""

    meshBuilt = QtCore.Signal(object)  # MeshResult
    meshChanged = QtCore.Signal()  # current_mesh changed (built, or a stored version shown)
    meshEdited = QtCore.Signal(object)  # mesh_tools.EditResult: a new version from an edit

    def __init__(
        self, segment_panel: Any, view3d: Any, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("meshPanel")
        self.segments = segment_panel
        self.view3d = view3d
        self.case: Any = None
        self.printer_volume: tuple[float, float, float] | None = None
        self.result: MeshResult | None = None
        self.current_mesh: Any = None  # what the Print panel slices
        self.current_part = ""
        self.current_part_name = ""  # the segment / part name (export file names)
        self.current_version: int | None = None  # the stored version shown, if any
        self.worker = Worker(self)
        self.worker.done.connect(self._built)
        self.worker.error.connect(self._failed)
        self.worker.cancelled.connect(lambda: self._finish("Cancelled; no mesh was stored."))
        self._build()
        segment_panel.historyChanged.connect(self._sync_segments)
        self._sync_segments()

    def _build(self) -> None:
        self.segment = QtWidgets.QComboBox(self)
        self.smoothing = QtWidgets.QDoubleSpinBox(self)
        self.smoothing.setRange(0.0, 1.0)
        self.smoothing.setSingleStep(0.1)
        self.smoothing.setValue(0.5)
        self.smoothing.setToolTip("0..1 as in 3D Slicer (0.5 = passband 0.01); volume-preserving")
        self.reduction = QtWidgets.QSpinBox(self)
        self.reduction.setRange(0, 95)
        self.reduction.setValue(0)
        self.reduction.setSuffix(" %")
        self.reduction.setToolTip("share of triangles removed by decimation (0 = none)")
        self.tolerance = QtWidgets.QDoubleSpinBox(self)
        self.tolerance.setRange(0.05, 5.0)
        self.tolerance.setValue(0.5)
        self.tolerance.setSuffix(" mm")
        self.deviation = QtWidgets.QCheckBox("Colour the surface by deviation", self)
        self._build_outputs()
        from app.ui.mesh_tools import MeshTools  # noqa: PLC0415

        self.tools = MeshTools(self)
        self._lay_out()

    def _build_outputs(self) -> None:
        self.build_button = QtWidgets.QPushButton("Build mesh", self)
        self.build_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        self.message.setMinimumHeight(34)
        self.verdict = QtWidgets.QLabel(self)
        self.verdict.setObjectName("auditStatus")
        self.checks = QtWidgets.QTableWidget(0, 4, self)
        self.checks.setHorizontalHeaderLabels(["Check", "Result", "Value", "Limit"])
        self.checks.verticalHeader().setVisible(False)
        self.checks.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.checks.horizontalHeader().setStretchLastSection(True)
        self.checks.setMinimumHeight(170)
        self.summary = QtWidgets.QLabel(self)
        self.summary.setWordWrap(True)
        self.summary.setObjectName("hint")
        self.versions = QtWidgets.QComboBox(self)
        self.versions.setToolTip("mesh versions stored in this case")
        self.show_version = QtWidgets.QPushButton("Show", self)

    def _lay_out(self) -> None:
        form = QtWidgets.QFormLayout()
        form.addRow("Segment", self.segment)
        form.addRow("Smoothing", self.smoothing)
        form.addRow("Decimate", self.reduction)
        form.addRow("QA tolerance", self.tolerance)
        form.addRow("", self.deviation)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.build_button)
        run.addWidget(self.cancel_button)
        stored = QtWidgets.QHBoxLayout()
        stored.addWidget(QtWidgets.QLabel("Stored", self))
        stored.addWidget(self.versions, 1)
        stored.addWidget(self.show_version)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(run)
        layout.addWidget(self.message)
        layout.addWidget(self.verdict)
        layout.addWidget(self.checks)
        layout.addWidget(self.summary)
        layout.addLayout(stored)
        layout.addWidget(self.tools)
        layout.addStretch(1)

        self.build_button.clicked.connect(self.build)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))
        self.show_version.clicked.connect(self._show_stored)

    # -- inputs -------------------------------------------------------------------------------
    def set_case(self, case: Any, printer_volume: tuple[float, float, float] | None) -> None:
        self.case = case
        self.current_mesh, self.current_part = None, ""
        self.current_part_name, self.current_version = "", None
        self.printer_volume = printer_volume
        self.meshChanged.emit()
        self._sync_versions()

    def _sync_segments(self) -> None:
        current = self.segment.currentText()
        names = self.segments.segment_names()
        self.segment.blockSignals(True)
        self.segment.clear()
        self.segment.addItems(names)
        if current in names:
            self.segment.setCurrentText(current)
        self.segment.blockSignals(False)
        ready = bool(names) and not self.worker.busy
        self.build_button.setEnabled(ready)
        if not names:
            self.message.setText("Make a segment in the Segment panel, then build its mesh here.")

    def _sync_versions(self) -> None:
        self.versions.clear()
        if self.case is None:
            self.show_version.setEnabled(False)
            return
        from app.tools.mesh.store import mesh_versions  # noqa: PLC0415

        numbers = mesh_versions(self.case)
        self.versions.addItems([f"v{n}" for n in reversed(numbers)])
        self.show_version.setEnabled(bool(numbers))

    # -- build --------------------------------------------------------------------------------
    def build(self) -> None:
        seg, volume = self.segments.seg, self.segments.volume
        name = self.segment.currentText()
        if seg is None or volume is None or not name:
            self.message.setText("Make a segment first.")
            return
        segment = seg.segment(name)
        job = MeshJob(
            mask=seg.mask(segment),
            volume=volume,
            case=self.case,
            part=segment.name,
            smoothing=self.smoothing.value(),
            reduction=self.reduction.value() / 100 or None,
            tolerance_mm=self.tolerance.value(),
            build_volume_mm=self.printer_volume,
            deviation_colours=self.deviation.isChecked(),
        )
        self.message.setText(f"Building the mesh of {segment.name}…")
        self.progress.setValue(0)
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.worker.start(build_and_check, job, name=f"building the mesh of {segment.name}")

    def _built(self, result: Any) -> None:
        from app.ui.mesh_tools import EditResult  # noqa: PLC0415

        if isinstance(result, EditResult):
            self._edited(result)
            return
        self.result = result
        self._show(result.mesh, result.qa, result.deviation)
        s = result.info.get("smoothing") or {}
        where = f"stored as {result.stored}" if result.stored else "not stored (no case)"
        self._finish(
            f"{len(result.mesh.faces)} triangles; smoothing changed the volume by "
            f"{s.get('volume_change_percent', 0):+.2f}%; {where}."
        )
        self._sync_versions()
        self.current_mesh, self.current_part = result.mesh, result.info.get("part", "")
        self.current_part_name = self.current_part
        self.current_version = _version_number(result.stored)
        self.meshChanged.emit()
        self.meshBuilt.emit(result)

    def _edited(self, result: Any) -> None:
        """An edit finished: show the new version and its fresh QA report."""
        self._show(result.mesh, result.qa, None)
        where = f"stored as {result.stored}" if result.stored else "not stored (no case)"
        self._sync_versions()
        self.current_mesh, self.current_part = result.mesh, result.info.get("part", "")
        self.current_part_name = self.current_part
        self.current_version = _version_number(result.stored)
        if self.current_version is not None:
            self.current_part = f"v{self.current_version}"
            self.versions.setCurrentText(self.current_part)
        self._finish(f"{result.op}: {len(result.mesh.faces)} triangles; {where}.")
        self.progress.setValue(1000)
        self.meshChanged.emit()
        self.meshEdited.emit(result)

    def _failed(self, message: str) -> None:
        self._finish(message)

    def _finish(self, message: str) -> None:
        self.message.setText(message)
        self.cancel_button.setEnabled(False)
        self.build_button.setEnabled(bool(self.segments.segment_names()))
        self.progress.setValue(1000 if self.result else 0)
        self.tools.refresh()

    # -- output -------------------------------------------------------------------------------
    def _show(self, mesh: Any, qa: Any, deviation: np.ndarray | None) -> None:
        import pyvista as pv  # noqa: PLC0415

        if deviation is not None:
            surface = pv.wrap(mesh)
            surface.point_data["deviation (mm)"] = np.asarray(deviation, dtype=np.float32)
            self.view3d.add_mesh(MESH_NAME, surface, scalars="deviation (mm)")
        else:
            self.view3d.add_mesh(MESH_NAME, mesh, color=(0.93, 0.89, 0.80))
        self.view3d.frame_mesh(MESH_NAME)
        self.verdict.setText("✔ QA passed" if qa.passed else f"✘ QA failed: {', '.join(qa.failed)}")
        self.verdict.setProperty("ok", qa.passed)
        self.verdict.style().unpolish(self.verdict)
        self.verdict.style().polish(self.verdict)
        self.checks.setRowCount(len(qa.checks))
        for row, check in enumerate(qa.checks):
            value = f"{check.value:.3f}" if isinstance(check.value, float) else str(check.value)
            items = [
                QtWidgets.QTableWidgetItem(check.name),
                QtWidgets.QTableWidgetItem("pass" if check.passed else "FAIL"),
                QtWidgets.QTableWidgetItem(f"{value} {check.unit}".strip()),
                QtWidgets.QTableWidgetItem(check.limit),
            ]
            items[1].setForeground(_PASS if check.passed else _FAIL)
            if check.detail:
                for item in items:
                    item.setToolTip(check.detail)
            for column, item in enumerate(items):
                self.checks.setItem(row, column, item)
        self.checks.resizeColumnsToContents()
        size = " × ".join(f"{v:.1f}" for v in qa.size_mm)
        self.summary.setText(
            f"{qa.triangles} triangles, {qa.components} component(s), volume "
            f"{qa.volume_mm3 / 1000:.1f} ml, size {size} mm ({qa.orientation})"
        )

    def _show_stored(self) -> None:
        if self.case is None or not self.versions.currentText():
            return
        from app.tools.mesh.store import load_mesh_version  # noqa: PLC0415

        number = int(self.versions.currentText()[1:])
        mesh, qa = load_mesh_version(self.case, number)
        self._show(mesh, qa, None)
        self.current_mesh, self.current_part = mesh, f"v{number}"
        self.current_version = number
        try:
            self.current_part_name = self.case.load_json(f"mesh/v{number}.json").get("part") or ""
        except Exception:  # an old version without its info: name it by version
            self.current_part_name = f"v{number}"
        self.meshChanged.emit()
        self.message.setText(f"Showing stored version v{number}.")


def _version_number(stored: str | None) -> int | None:
    """``mesh/v7.stl`` → 7."""
    if not stored:
        return None
    return int(stored.rsplit("/v", 1)[1].split(".")[0])

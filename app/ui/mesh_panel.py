"""The Mesh panel: a segment -> a mesh version of the case through :mod:`app.workflow.mesh`
(named settings, checked and audited there), its QA report with pass/fail per check, the mesh
in the 3D view (optionally coloured by its deviation from the segmentation surface), and the
case's stored versions with their verdicts.

Building and editing (app.ui.mesh_tools: cut, mirror, scale, hollow, flat base, pseudonym
label, booleans, connector; measurements; export) run in the worker with progress and cancel,
as the window's actor; every built or edited mesh is a new version of the case, as with
``medprint mesh`` and ``medprint edit``. Without a case (a plain volume) a build is only shown:
nothing is stored or labelled.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.meshio import part_name
from app.ui.deferred import mesh_stack
from app.ui.mesh_tools import MeshTools
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker, error_message
from app.viewers.view3d import display_surface
from app.workflow.actor import Actor

if TYPE_CHECKING:
    from app.tools.mesh.pipeline import MeshSettings
    from app.workflow import mesh as workflow

# The pipeline's presets (app.tools.mesh.pipeline.PRESETS, imported on first use: trimesh and
# VTK take seconds); tests/ui/test_mesh_panel.py checks the two lists agree.
PRESET_NAMES = ("print", "review")
MESH_NAME = "mesh"
PART_PREFIX = "part:"  # the 3D view's name of a part shown on its own
DEVIATION = "deviation (mm)"
_PASS = QtGui.QColor(127, 211, 127)
_FAIL = QtGui.QColor(255, 123, 123)


@dataclass
class MeshJob:
    """Inputs of one build: the segment of ``seg`` on ``volume``, of ``case`` (or none)."""

    actor: Actor | None
    case: Any
    seg: Any
    volume: Any
    segment: str
    settings: MeshSettings
    build_volume_mm: tuple[float, float, float] | None
    deviation_colours: bool


@dataclass
class MeshResult:
    """A built mesh: ``version`` is the stored version's number (None without a case)."""

    mesh: Any
    qa: Any
    info: dict
    version: int | None
    part: str
    deviation: np.ndarray | None
    surface: Any = None  # the 3D view's surface with normals, made in the worker
    parts: list | None = None  # the stored version's parts, read in the worker


def build_and_check(
    job: MeshJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> MeshResult:
    """workflow.mesh.build on a case, the bare pipeline without one; Qt-free."""
    from app.tools.mesh.pipeline import build_parts  # noqa: PLC0415 (heavy: on first use)
    from app.tools.mesh.surface import vertex_deviation  # noqa: PLC0415
    from app.workflow import mesh as workflow  # noqa: PLC0415

    progress = ensure(progress)
    if job.case is not None:
        made = workflow.build(
            job.actor, job.case, segments=[job.segment], settings=job.settings,
            build_volume_mm=job.build_volume_mm, segmentation=job.seg, volume=job.volume,
            progress=progress.sub(0.0, 0.95), cancel=cancel,
        )  # fmt: skip
        mesh, qa, info, version = made.mesh, made.qa, made.info, made.number
        reference = made.references[0] if made.references else None
    else:
        with job.seg.lock:
            masks = {part_name(job.segment): job.seg.mask(job.segment)}
        built = build_parts(
            masks, job.volume, replace(job.settings, label=False),
            build_volume_mm=job.build_volume_mm, progress=progress.sub(0.0, 0.95), cancel=cancel,
        )  # fmt: skip
        mesh, qa, version, reference = built.parts[0].mesh, built.qa, None, built.reference
        info = {
            "settings": built.settings.to_dict(),
            "builds": {built.parts[0].name: built.parts[0].to_dict()},
        }
    check_cancel(cancel)
    deviation = None
    if job.deviation_colours and reference is not None:
        progress.update(0.95, "measuring the deviation per vertex")
        deviation = vertex_deviation(mesh, reference)
    progress.update(0.98, "preparing the 3D display")
    scalars = None if deviation is None else {DEVIATION: np.asarray(deviation, dtype=np.float32)}
    surface = display_surface(mesh, scalars)
    parts = None
    if version is not None:  # the parts table's rows, read here rather than on the GUI thread
        from app.workflow import parts as workflow_parts  # noqa: PLC0415

        with contextlib.suppress(Exception):  # the panel reads them again and shows why not
            parts = workflow_parts.version_parts(job.actor, job.case, version)
    progress.update(1.0, "mesh built and checked")
    return MeshResult(mesh, qa, info, version, part_name(job.segment), deviation, surface, parts)


@dataclass
class EditJob:
    """One edit of a stored version of ``case``."""

    actor: Actor
    case: Any
    version: int
    operation: str
    params: dict
    build_volume_mm: tuple[float, float, float] | None


def edit_version(
    job: EditJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> workflow.MeshVersion:
    """workflow.mesh.edit; Qt-free."""
    from app.workflow import mesh as workflow  # noqa: PLC0415 (heavy: on first use)

    return workflow.edit(
        job.actor, job.case, job.version, job.operation, job.params,
        build_volume_mm=job.build_volume_mm, progress=progress, cancel=cancel,
    )  # fmt: skip


def _surface(part: Any) -> Any:
    """A display surface of one part (vertices, faces in mm)."""
    import trimesh  # noqa: PLC0415 (loaded with the mesh stack)

    return display_surface(trimesh.Trimesh(part.vertices, part.faces, process=False))


def _light(colour: str) -> bool:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b > 140


class MeshPanel(QtWidgets.QWidget):
    """Builds, checks and shows meshes of the Segment panel's segments."""

    meshBuilt = QtCore.Signal(object)  # MeshResult
    meshChanged = QtCore.Signal()  # current_mesh changed (built, or a stored version shown)
    meshEdited = QtCore.Signal(object)  # workflow.mesh.MeshVersion: a new version from an edit

    def __init__(
        self, segment_panel: Any, view3d: Any, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("meshPanel")
        self.segments = segment_panel
        self.view3d = view3d
        self.actor: Actor | None = None
        self.case: Any = None
        self.printer_volume: tuple[float, float, float] | None = None
        self.result: MeshResult | None = None
        self.stored: list[workflow.VersionSummary] = []  # the case's versions, oldest first
        self.current_mesh: Any = None  # what the Print panel slices
        self.current_part = ""  # "vN" for a stored version, else the part name
        self.current_part_name = ""  # the segment / part name (export file names)
        self.current_version: int | None = None  # the stored version shown, if any
        self._job = ""  # "build" or the edit running in the worker
        self.worker = Worker(self)
        self.worker.done.connect(self._done)
        self.worker.error.connect(self._finish)
        self.worker.cancelled.connect(lambda: self._finish("Cancelled; no mesh was stored."))
        self._build()
        segment_panel.historyChanged.connect(self._sync_segments)
        self._sync_segments()
        mesh_stack().call_soon(self._apply_preset)  # the preset values once the pipeline loads

    def _build(self) -> None:
        self.segment = QtWidgets.QComboBox(self)
        self.preset = QtWidgets.QComboBox(self)
        self.preset.addItems(list(PRESET_NAMES))
        self.preset.setToolTip(
            "print: smoothed, decimated, the pseudonym embossed; review: every triangle, no label"
        )
        self.smoothing = QtWidgets.QDoubleSpinBox(self)
        self.smoothing.setRange(0.0, 1.0)
        self.smoothing.setSingleStep(0.1)
        self.smoothing.setToolTip("0..1 as in 3D Slicer (0.5 = passband 0.01); volume-preserving")
        self.reduction = QtWidgets.QSpinBox(self)
        self.reduction.setRange(0, 95)
        self.reduction.setSuffix(" %")
        self.reduction.setToolTip("share of triangles removed by decimation (0 = none)")
        self.label = QtWidgets.QCheckBox("Emboss the case pseudonym", self)
        self.tolerance = QtWidgets.QDoubleSpinBox(self)
        self.tolerance.setRange(0.05, 5.0)
        self.tolerance.setSuffix(" mm")
        self.deviation = QtWidgets.QCheckBox("Colour the surface by deviation", self)
        self._build_outputs()
        self.tools = MeshTools(self)
        self._lay_out()

    def _build_outputs(self) -> None:
        self.build_button = QtWidgets.QPushButton("Build mesh", self)
        self.build_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.progress = ProgressBar(self)
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
        self.parts = QtWidgets.QTableWidget(0, 4, self)
        self.parts.setHorizontalHeaderLabels(["Show", "Segment", "Colour", "Material"])
        self.parts.verticalHeader().setVisible(False)
        self.parts.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.parts.horizontalHeader().setStretchLastSection(True)
        self.parts.setToolTip("the parts of the version shown, each in its colour in the 3D view")
        self.parts.setMaximumHeight(120)

    def _lay_out(self) -> None:
        form = QtWidgets.QFormLayout()
        form.addRow("Segment", self.segment)
        form.addRow("Settings", self.preset)
        form.addRow("Smoothing", self.smoothing)
        form.addRow("Decimate", self.reduction)
        form.addRow("", self.label)
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
        layout.addWidget(self.parts)
        layout.addWidget(self.tools)
        layout.addStretch(1)

        self.build_button.clicked.connect(self.build)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))
        self.show_version.clicked.connect(self._show_stored)
        self.parts.itemChanged.connect(self._toggle_part)
        self.preset.currentTextChanged.connect(self._apply_preset)

    # -- inputs -------------------------------------------------------------------------------
    def set_actor(self, actor: Actor) -> None:
        """The person at the window: builds, edits and exports act as them."""
        self.actor = actor

    def set_case(self, case: Any, printer_volume: tuple[float, float, float] | None) -> None:
        self.case = case
        self.result = None
        self.current_mesh, self.current_part = None, ""
        self.current_part_name, self.current_version = "", None
        self.printer_volume = printer_volume
        self._show_parts(None)
        self.meshChanged.emit()
        mesh_stack().call(self._apply_preset)
        mesh_stack().call(self._sync_versions)

    def _apply_preset(self) -> None:
        """Fill the settings from the chosen preset, adapted to the volume's voxel size."""
        if not mesh_stack().loaded:
            return  # filled in once the pipeline is imported (call_soon in __init__)
        from app.tools.mesh.pipeline import settings_for  # noqa: PLC0415

        settings = settings_for(self.preset.currentText(), self.segments.volume)
        self.smoothing.setValue(settings.smoothing)
        self.reduction.setValue(round(100 * (settings.reduction or 0.0)))
        self.label.setChecked(settings.label)
        self.tolerance.setValue(settings.tolerance_mm)

    def settings(self) -> MeshSettings:
        """The settings as shown (the preset, with the values changed here)."""
        mesh_stack().load_now()
        from app.tools.mesh.pipeline import settings_for  # noqa: PLC0415

        return settings_for(
            self.preset.currentText(),
            smoothing=self.smoothing.value(),
            reduction=self.reduction.value() / 100 or None,
            label=self.label.isChecked(),
            tolerance_mm=self.tolerance.value(),
        )

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
        """The case's stored versions, newest first, with their QA verdicts."""
        self.versions.clear()
        self.stored = []
        if self.case is not None and self.actor is not None:
            from app.workflow import mesh as workflow  # noqa: PLC0415 (loaded by mesh_stack)

            try:
                self.stored = workflow.versions(self.actor, self.case)
            except Exception as exc:  # one line for the user, whatever failed
                self.message.setText(error_message(exc, "listing the mesh versions"))
        for v in reversed(self.stored):
            self.versions.addItem(f"v{v.number}", v.number)
            self.versions.setItemData(
                self.versions.count() - 1,
                f"{v.operation}, QA {'pass' if v.qa_passed else 'FAIL'}, by {v.author or '?'}",
                QtCore.Qt.ItemDataRole.ToolTipRole,
            )
        self.show_version.setEnabled(bool(self.stored))

    # -- build --------------------------------------------------------------------------------
    def build(self) -> None:
        seg, volume = self.segments.seg, self.segments.volume
        name = self.segment.currentText()
        if seg is None or volume is None or not name:
            self.message.setText("Make a segment first.")
            return
        if self.case is not None and self.actor is None:
            self.message.setText("No user for this window; the mesh cannot be stored.")
            return
        try:
            settings = self.settings()
        except Exception as exc:  # one line for the user, whatever failed
            self.message.setText(error_message(exc, "reading the settings"))
            return
        job = MeshJob(
            actor=self.actor,
            case=self.case,
            seg=seg,
            volume=volume,
            segment=name,
            settings=settings,
            build_volume_mm=self.printer_volume,
            deviation_colours=self.deviation.isChecked(),
        )
        self._start("build", build_and_check, job, f"building the mesh of {name}")

    def start_edit(self, operation: str, params: dict) -> None:
        """Run ``operation`` on the version shown, storing a new version (app.ui.mesh_tools)."""
        if self.case is None or self.actor is None or self.current_version is None:
            self.message.setText("Show a stored mesh version of a case first.")
            return
        job = EditJob(self.actor, self.case, self.current_version, operation, params,
                      self.printer_volume)  # fmt: skip
        self._start(operation, edit_version, job, f"mesh {operation}")

    def _start(self, kind: str, fn: Any, job: Any, name: str) -> None:
        self._job = kind
        self.message.setText(f"{name[0].upper()}{name[1:]}…")
        self.progress.setValue(0)
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.tools.set_busy(True)
        self.worker.start(fn, job, name=name)

    def _done(self, result: Any) -> None:
        if self._job == "build":
            self._built(result)
        else:
            self._edited(result)

    def _built(self, result: MeshResult) -> None:
        self.result = result
        self._show(result.mesh, result.qa, result.deviation, result.surface)
        builds = result.info.get("builds") or {}
        s = next(iter(builds.values()), {}).get("smoothing") or {}
        where = f"stored as v{result.version}" if result.version else "not stored (no case)"
        self._sync_versions()
        self._set_current(result.mesh, result.part, result.version, result.parts)
        self._finish(
            f"{len(result.mesh.faces)} triangles; smoothing changed the volume by "
            f"{s.get('volume_change_percent', 0):+.2f}%; {where}."
        )
        self.meshChanged.emit()
        self.meshBuilt.emit(result)

    def _edited(self, made: workflow.MeshVersion) -> None:
        """An edit finished: show the new version and its fresh QA report."""
        self._show(made.mesh, made.qa, None)
        self._sync_versions()
        self._set_current(made.mesh, made.part_name, made.number)
        self._finish(f"{self._job}: {len(made.mesh.faces)} triangles; stored as v{made.number}.")
        self.progress.setValue(1000)
        self.meshChanged.emit()
        self.meshEdited.emit(made)

    def _set_current(
        self, mesh: Any, part: str, version: int | None, parts: list | None = None
    ) -> None:
        self.current_mesh, self.current_part_name, self.current_version = mesh, part, version
        self.current_part = f"v{version}" if version is not None else part
        if version is not None:
            self.versions.setCurrentIndex(max(0, self.versions.findData(version)))
        self._show_parts(version, parts)

    # -- parts --------------------------------------------------------------------------------
    def _show_parts(self, version: int | None, found: list | None = None) -> None:
        """List the parts of stored ``version`` (``found``: already read, in a worker); with
        several, the 3D view shows each in its colour instead of the one mesh."""
        for name in self.view3d.mesh_names():
            if name.startswith(PART_PREFIX):
                self.view3d.remove_mesh(name)
        if found is None:
            found = self._read_parts(version)
        several = len(found) > 1
        if several:
            self.view3d.remove_mesh(MESH_NAME)
        self.parts.blockSignals(True)
        self.parts.setRowCount(len(found))
        for row, part in enumerate(found):
            shown = PART_PREFIX + part.name if several else MESH_NAME
            if several:
                self.view3d.add_mesh(shown, _surface(part), color=part.colour)
            self._part_row(row, part, shown)
        self.parts.blockSignals(False)
        self.parts.resizeColumnsToContents()

    def _read_parts(self, version: int | None) -> list:
        if version is None or self.case is None or self.actor is None:
            return []
        from app.workflow import parts as workflow_parts  # noqa: PLC0415 (with the mesh stack)

        try:
            return workflow_parts.version_parts(self.actor, self.case, version)
        except Exception as exc:  # one line for the user, whatever failed
            self.message.setText(error_message(exc, "listing the parts"))
            return []

    def _part_row(self, row: int, part: Any, shown: str) -> None:
        visible = QtWidgets.QTableWidgetItem()
        visible.setFlags(visible.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
        visible.setCheckState(QtCore.Qt.CheckState.Checked)
        visible.setData(QtCore.Qt.ItemDataRole.UserRole, shown)
        swatch = QtWidgets.QTableWidgetItem(part.colour)
        swatch.setBackground(QtGui.QColor(part.colour))
        swatch.setForeground(QtGui.QColor("#000000" if _light(part.colour) else "#ffffff"))
        items = [visible, QtWidgets.QTableWidgetItem(part.name), swatch]
        items.append(QtWidgets.QTableWidgetItem(part.material or "—"))
        for column, item in enumerate(items):
            self.parts.setItem(row, column, item)

    def _toggle_part(self, item: QtWidgets.QTableWidgetItem) -> None:
        """The Show box of a part: hide or show it in the 3D view."""
        name = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if item.column() == 0 and name in self.view3d.mesh_names():
            checked = item.checkState() == QtCore.Qt.CheckState.Checked
            self.view3d.set_mesh_style(name, visible=checked)

    def _finish(self, message: str) -> None:
        self.message.setText(message)
        self.cancel_button.setEnabled(False)
        self.build_button.setEnabled(bool(self.segments.segment_names()))
        self.progress.setValue(1000 if self.result else 0)
        self.tools.set_busy(False)

    # -- output -------------------------------------------------------------------------------
    def _show(self, mesh: Any, qa: Any, deviation: np.ndarray | None, surface: Any = None) -> None:
        """Show ``mesh`` (``surface``: its display surface made in the worker) and its QA."""
        if surface is None:
            scalars = None if deviation is None else {DEVIATION: deviation.astype(np.float32)}
            surface = display_surface(mesh, scalars)
        if deviation is not None:
            self.view3d.add_mesh(MESH_NAME, surface, scalars=DEVIATION)
        else:
            self.view3d.add_mesh(MESH_NAME, surface, color=(0.93, 0.89, 0.80))
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
        """Show the version chosen in the Stored list with its QA report."""
        number = self.versions.currentData()
        if self.case is None or self.actor is None or number is None:
            return
        mesh_stack().load_now()
        from app.workflow import mesh as workflow  # noqa: PLC0415

        try:
            made = workflow.load(self.actor, self.case, int(number))
        except Exception as exc:  # one line for the user, whatever failed
            self.message.setText(error_message(exc, "loading the mesh version"))
            return
        self._show(made.mesh, made.qa, None)
        self._set_current(made.mesh, made.part_name, made.number)
        self.meshChanged.emit()
        self.message.setText(f"Showing stored version v{made.number}.")

"""The Record panel: after the print, the case's chain, its signed steps and the verification.

- The chain (:func:`app.workflow.trace.trace`) as a timeline: each link's kind, short hash,
  who and when, and its check; a link that does not verify is shown BROKEN in red, never
  hidden.
- A form for post-processing and material steps (:func:`app.workflow.trace.record_step`:
  signed and audited there), which adds a link.
- "Verify printed part": a scan (STL/PLY/OBJ in mm, cm or inch, or a CT's DICOM folder
  segmented at a threshold in HU) checked against the approved mesh by
  :func:`app.workflow.verify_print.verify_print` in the worker; the panel shows mean, p95, max
  and the verdict (or the mirrored / units message), and the 3D view shows the scan coloured
  by its signed distance.

Every act goes through the workflow as the window's actor; refusals arrive as one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.progress import CancelToken, Progress, ensure
from app.ui.deferred import mesh_stack
from app.ui.worker import Worker
from app.viewers.view3d import View3D, display_surface
from app.workflow.actor import Actor

if TYPE_CHECKING:
    from app.workflow import trace, verify_print

SCAN_NAME = "printed part"
DEVIATION = "deviation (mm)"
SCAN_UNITS = ("mm", "cm", "inch")
COLUMNS = ("Link", "Status", "SHA-256", "Who / when", "Check")
_BROKEN = QtGui.QColor(255, 110, 110)
_BROKEN_BACK = QtGui.QColor(110, 30, 30)
_OK = QtGui.QColor(127, 211, 127)
_OTHER = QtGui.QColor(230, 200, 120)


@dataclass(frozen=True)
class VerifyJob:
    """What the panel asks the workflow to verify."""

    actor: Actor
    case: Case
    scan: Path
    units: str
    tolerance_mm: float
    threshold_hu: float


@dataclass(frozen=True)
class Verified:
    """A stored verification and the scan's display surface coloured by its deviation."""

    done: verify_print.Verification
    surface: Any


def chain_job(
    inputs: tuple[Actor, Case],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> trace.Trace:
    """The case's chain, every link checked (audited ``trace.view``); Qt-free."""
    from app.workflow import trace  # noqa: PLC0415 (matplotlib for its PDF: on first use)

    return trace.trace(*inputs)


def verify_job(
    job: VerifyJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Verified:
    """workflow.verify_print, then the scan's surface coloured by its signed distance."""
    import trimesh  # noqa: PLC0415 (heavy: on first use, in the worker)

    from app.workflow import verify_print  # noqa: PLC0415

    progress = ensure(progress)
    progress.update(0.05, "registering the scan to the approved mesh")
    done = verify_print.verify_print(
        job.actor, job.case, job.scan, units=job.units, tolerance_mm=job.tolerance_mm,
        threshold_hu=job.threshold_hu,
    )  # fmt: skip
    check = done.check
    surface = None
    if check.deviation is not None and check.aligned is not None and check.faces is not None:
        progress.update(0.9, "colouring the scan by its deviation")
        mesh = trimesh.Trimesh(check.aligned, check.faces, process=False)
        distances = np.asarray(check.deviation.distances, dtype=np.float32)
        surface = display_surface(mesh, {DEVIATION: distances})
    progress.update(1.0, "verified")
    return Verified(done, surface)


def result_text(check: Any) -> str:
    """The verification as the panel shows it: numbers, verdict, and why."""
    lines = [f"Verdict: {str(check.verdict).upper()}"]
    dev = check.deviation
    if dev is not None:
        lines.append(
            f"Deviation mean {dev.mean_mm:+.3f} mm, p95 {dev.p95_mm:.3f} mm, "
            f"max {dev.max_mm:.3f} mm (tolerance {check.tolerance_mm:g} mm)"
        )
    lines.append(check.message)
    return "\n".join(lines)


class RecordPanel(QtWidgets.QWidget):
    """The open case's print record: chain, steps, verification of the printed part."""

    chainShown = QtCore.Signal(object)  # trace.Trace
    verified = QtCore.Signal(object)  # Verified

    def __init__(self, view3d: View3D | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("recordPanel")
        self.view3d = view3d
        self.actor: Actor | None = None
        self.case: Case | None = None
        self.chain: Any = None
        self.last: Verified | None = None
        self.worker = Worker(self)
        self._build()
        self.worker.error.connect(self.message.setText)
        self.worker.finished.connect(self._sync)
        self._sync()

    # -- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._chain_box(), 3)
        layout.addWidget(self._step_box())
        layout.addWidget(self._verify_box())
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    def _chain_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Chain from scan to part", self)
        self.summary = QtWidgets.QLabel("No case open.", box)
        self.summary.setObjectName("auditStatus")
        self.summary.setWordWrap(True)
        self.refresh_button = QtWidgets.QPushButton("Check the chain", box)
        self.refresh_button.clicked.connect(self.refresh)
        self.links = QtWidgets.QTableWidget(0, len(COLUMNS), box)
        self.links.setHorizontalHeaderLabels(COLUMNS)
        self.links.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.links.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.links.verticalHeader().setVisible(False)
        self.links.horizontalHeader().setStretchLastSection(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.refresh_button)
        inner = QtWidgets.QVBoxLayout(box)
        inner.addLayout(top)
        inner.addWidget(self.links, 1)
        return box

    def _step_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Record a step (signed)", self)
        self.step = QtWidgets.QComboBox(box)
        self.detail = QtWidgets.QLineEdit(box)
        self.detail.setPlaceholderText("what was done (stays in the vault)")
        self.detail.setMaxLength(500)
        self.fields = {}
        for name, hint in (
            ("lot", "material or resin lot"),
            ("serial", "printer serial number"),
            ("method", "e.g. steam-134C"),
            ("cycle_id", "sterilisation cycle ID"),
        ):
            edit = QtWidgets.QLineEdit(box)
            edit.setPlaceholderText(hint)
            self.fields[name] = edit
        self.record_button = QtWidgets.QPushButton("Record step", box)
        self.record_button.clicked.connect(self.record_step)
        form = QtWidgets.QFormLayout(box)
        form.addRow("Step", self.step)
        form.addRow("Detail", self.detail)
        form.addRow("Lot", self.fields["lot"])
        form.addRow("Serial", self.fields["serial"])
        form.addRow("Method", self.fields["method"])
        form.addRow("Cycle ID", self.fields["cycle_id"])
        form.addRow("", self.record_button)
        return box

    def _verify_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Verify printed part", self)
        self.scan = QtWidgets.QLineEdit(box)
        self.scan.setPlaceholderText("scan of the print: STL, PLY, OBJ, or a CT folder")
        browse = QtWidgets.QPushButton("Scan…", box)
        browse.clicked.connect(self._browse)
        ct_folder = QtWidgets.QPushButton("CT folder…", box)
        ct_folder.setToolTip("a CT of the printed part: its DICOM folder")
        ct_folder.clicked.connect(self._browse_ct)
        self.threshold = QtWidgets.QSpinBox(box)
        self.threshold.setRange(-1000, 3000)
        self.threshold.setSingleStep(50)
        self.threshold.setSuffix(" HU")
        self.threshold.setValue(-300)
        self.threshold.setToolTip("segments a CT of the print (resin or plastic against air)")
        self.units = QtWidgets.QComboBox(box)
        self.units.addItems(SCAN_UNITS)
        self.tolerance = QtWidgets.QDoubleSpinBox(box)
        self.tolerance.setRange(0.05, 5.0)
        self.tolerance.setSingleStep(0.05)
        self.tolerance.setDecimals(2)
        self.tolerance.setSuffix(" mm")
        self.tolerance.setValue(0.5)
        self.verify_button = QtWidgets.QPushButton("Verify printed part", box)
        self.verify_button.clicked.connect(self.verify)
        self.result = QtWidgets.QLabel(box)
        self.result.setObjectName("auditStatus")
        self.result.setWordWrap(True)
        where = QtWidgets.QHBoxLayout()
        where.addWidget(self.scan, 1)
        where.addWidget(browse)
        where.addWidget(ct_folder)
        form = QtWidgets.QFormLayout(box)
        form.addRow("Scan", where)
        form.addRow("Units", self.units)
        form.addRow("CT threshold", self.threshold)
        form.addRow("Tolerance", self.tolerance)
        form.addRow("", self.verify_button)
        form.addRow(self.result)
        return box

    # -- state --------------------------------------------------------------------------------
    def set_actor(self, actor: Actor) -> None:
        self.actor = actor
        self._sync()

    def set_case(self, case: Case | None) -> None:
        """Show ``case``'s chain (the workflow imports in the background on first use)."""
        self.case = case
        self.result.clear()
        self.links.setRowCount(0)
        self._sync()
        mesh_stack().call(self._fill_steps)
        if case is not None:
            self.refresh()

    def _fill_steps(self) -> None:
        from app.workflow import trace  # noqa: PLC0415 (imported by the mesh stack's loader)

        if self.step.count() == 0:
            self.step.addItems(trace.STEPS)

    def _sync(self) -> None:
        ready = self.case is not None and self.actor is not None
        busy = self.worker.busy
        for widget in (self.refresh_button, self.record_button, self.verify_button):
            widget.setEnabled(ready and not busy)

    # -- the chain ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Check the chain again in the worker (audited ``trace.view``)."""
        if self.case is None or self.actor is None:
            return
        self.summary.setText("Checking every link…")
        self.worker.start(
            chain_job, (self.actor, self.case), name="checking the case's chain",
            on_done=self._show_chain,
        )  # fmt: skip
        self._sync()

    def _show_chain(self, chain: trace.Trace) -> None:
        self.chain = chain
        broken = [link.name for link in chain.links if link.status == "broken"]
        text = "✔ Chain intact" if not broken else f"✘ BROKEN: {', '.join(broken)}"
        self.summary.setText(text)
        _mark(self.summary, not broken)
        self.links.setRowCount(len(chain.links))
        for row, link in enumerate(chain.links):
            self._show_link(row, link)
        self.links.resizeColumnsToContents()
        self._sync()
        self.chainShown.emit(chain)

    def _show_link(self, row: int, link: Any) -> None:
        values = (
            link.name,
            "BROKEN" if link.status == "broken" else link.status,
            (link.sha256 or "")[:12],
            _who_when(link.facts),
            link.message,
        )
        for column, value in enumerate(values):
            item = QtWidgets.QTableWidgetItem(value)
            item.setToolTip(link.message)
            if link.status == "broken":
                item.setForeground(_BROKEN)
                item.setBackground(_BROKEN_BACK)
            elif column == 1:
                item.setForeground(_OK if link.status == "ok" else _OTHER)
            self.links.setItem(row, column, item)

    # -- steps --------------------------------------------------------------------------------
    def record_step(self) -> None:
        """Sign and store the step as the actor (quick: no worker), then show the chain."""
        if self.case is None or self.actor is None:
            return
        from app.workflow import trace  # noqa: PLC0415

        fields = {name: edit.text().strip() or None for name, edit in self.fields.items()}
        step = self.step.currentText()
        try:
            trace.record_step(self.actor, self.case, step, detail=self.detail.text(), **fields)
        except MedPrintError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(f"{step} recorded and signed by {self.actor.user}.")
        self.detail.clear()
        for edit in self.fields.values():
            edit.clear()
        self.refresh()

    # -- verification -------------------------------------------------------------------------
    def _browse(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "Scan of the printed part", self.scan.text(), "Mesh (*.stl *.ply *.obj)"
        )
        if chosen:
            self.scan.setText(chosen)

    def _browse_ct(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(
            self, "CT of the printed part (DICOM folder)", self.scan.text()
        )
        if chosen:
            self.scan.setText(chosen)
            self.units.setCurrentText("mm")  # a CT's geometry is in millimetres

    def verify(self) -> None:
        """Verify the scan in the worker; the result and the colour map follow."""
        if self.case is None or self.actor is None:
            return
        path = self.scan.text().strip()
        if not path:
            self.message.setText("Choose the scan of the printed part first.")
            return
        job = VerifyJob(
            self.actor, self.case, Path(path), self.units.currentText(), self.tolerance.value(),
            float(self.threshold.value()),
        )  # fmt: skip
        self.result.setText("Registering the scan and measuring its deviation…")
        _mark(self.result, True)
        self.worker.start(
            verify_job, job, name="verifying the printed part", on_done=self._verified
        )
        self._sync()

    def _verified(self, made: Verified) -> None:
        self.last = made
        check = made.done.check
        self.result.setText(result_text(check))
        _mark(self.result, check.passed)
        self.message.setText(f"Verification {made.done.number} stored and signed.")
        if self.view3d is not None and made.surface is not None:
            self.view3d.show_deviation(SCAN_NAME, made.surface, DEVIATION, check.tolerance_mm)
        elif self.view3d is not None:
            self.view3d.remove_mesh(SCAN_NAME)  # no deviation: no stale colours
        self.verified.emit(made)
        self.refresh()


def _who_when(facts: dict) -> str:
    who = facts.get("operator") or facts.get("signer") or facts.get("author") or ""
    when = str(facts.get("time_utc") or facts.get("started_utc") or "")[:16].replace("T", " ")
    return " · ".join(x for x in (str(who), when) if x)


def _mark(label: QtWidgets.QLabel, ok: bool) -> None:
    label.setProperty("ok", ok)
    label.style().unpolish(label)
    label.style().polish(label)

""" "Store to PACS" in the Package panel: choose a node, de-identified or not, and store the
approved mesh version (Encapsulated STL, OBJ + MTL when coloured, the segmentation as DICOM SEG)
through :func:`app.workflow.pacs.store` in the worker; the result line says what was stored."""

from __future__ import annotations

import sys
from collections.abc import Callable

from PySide6 import QtCore, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.ui.deferred import mesh_stack
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow.actor import Actor


def _pacs():
    from app.workflow import pacs  # noqa: PLC0415 (pynetdicom on first use, not at start-up)

    return pacs


class PacsStoreBox(QtWidgets.QGroupBox):
    """Node, de-identified, Store. ``selected`` gives the actor, case and mesh version."""

    stored = QtCore.Signal(object)  # app.workflow.pacs.Stored

    def __init__(
        self,
        selected: Callable[[], tuple[Actor, Case, int] | None],
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__("Store to PACS", parent)
        self.selected = selected
        self.version = 0
        self.node = QtWidgets.QComboBox(self)
        self.node.setToolTip(
            "Identified objects go only to the archive the case came from or a clinical archive"
        )
        self.deidentified = QtWidgets.QCheckBox("De-identified", self)
        self.store_button = QtWidgets.QPushButton("Store to PACS", self)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.bar = ProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.result = QtWidgets.QLabel(self)
        self.result.setObjectName("pacsStoreResult")
        self.result.setWordWrap(True)
        self.worker = Worker(self)
        self.worker.done.connect(self._stored)
        self.worker.error.connect(self.result.setText)
        self.worker.finished.connect(self.sync)
        self.worker.progress.connect(lambda f, _m: self.bar.setValue(int(f * 1000)))
        self.worker.cancelled.connect(lambda: self.result.setText("Cancelled; nothing was sent."))
        self.result.setMinimumHeight(self.result.fontMetrics().lineSpacing() * 3)
        self.result.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
        )
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.deidentified)
        row.addStretch(1)
        row.addWidget(self.store_button)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.bar, 1)
        run.addWidget(self.cancel_button)
        form = QtWidgets.QFormLayout(self)
        form.addRow("Node", self.node)
        form.addRow("", row)
        form.addRow(run)
        form.addRow(self.result)
        self.store_button.clicked.connect(self.store)
        self.cancel_button.clicked.connect(self.worker.cancel)

    def refresh(self, actor: Actor | None) -> None:
        """The configured nodes (names only: no identity here). While the window starts, once
        the PACS workflow (pydicom, pynetdicom: ~1 s) has loaded in the background."""
        if actor is not None and "app.workflow.pacs" not in sys.modules:
            mesh_stack().call_soon(lambda: self.refresh(actor))
            return
        current = self.node.currentText()
        self.node.clear()
        if actor is not None:
            try:
                self.node.addItems([n.name for n in _pacs().nodes(actor)])
            except MedPrintError as exc:
                self.result.setText(str(exc))
        if current:
            self.node.setCurrentText(current)
        self.sync()

    def sync(self) -> None:
        ready = self.selected() is not None and self.node.count() > 0
        self.store_button.setEnabled(ready and not self.worker.busy)
        self.cancel_button.setEnabled(self.worker.busy)

    def store(self) -> None:
        chosen, node = self.selected(), self.node.currentText()
        if chosen is None or not node:
            return
        actor, case, version = chosen
        self.version, deidentified = version, self.deidentified.isChecked()
        self.result.setText(f"Storing mesh v{version} to {node}…")
        self.bar.setValue(0)
        self.worker.start(
            lambda _i, progress, cancel: _pacs().store(
                actor,
                case,
                node,
                version,
                deidentified=deidentified,
                progress=progress,
                cancel=cancel,
            ),
            name="storing to the PACS",
        )
        self.sync()

    def _stored(self, stored) -> None:
        line = _pacs().stored_summary(stored, self.version)
        self.result.setText(line[:1].upper() + line[1:] + ".")
        self.stored.emit(stored)

"""The Package panel: review one stored mesh version (approve, or reject with a comment) and
write the signed print package to a removable drive or a folder.

Every act goes through the workflow as the window's actor: :func:`app.workflow.review.approve`
and :func:`~app.workflow.review.reject` (four eyes, QA, roles, audit) and
:func:`app.workflow.package.build` (the release gate, signing, read-back and verification).
Refusals arrive as their one-line messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6 import QtCore, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.progress import CancelToken, Progress
from app.security.drives import eject, list_drives
from app.ui.deferred import mesh_stack
from app.ui.pacs_store import PacsStoreBox
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow import review, users
from app.workflow.actor import Actor

if TYPE_CHECKING:
    from app.workflow import package


@dataclass(frozen=True)
class PackageJob:
    """What the panel asks the workflow to package."""

    actor: Actor
    case: Case
    version: int
    out_dir: Path
    make_zip: bool


def package_job(
    job: PackageJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> package.Packaged:
    from app.workflow import package  # noqa: PLC0415 (heavy: the mesh stack, on first use)

    return package.build(
        job.actor,
        job.case,
        version=job.version,
        out_dir=job.out_dir,
        make_zip=job.make_zip,
        progress=progress,
        cancel=cancel,
    )


class PackagePanel(QtWidgets.QWidget):
    """Review and release of one mesh version of the open case."""

    statusChanged = QtCore.Signal(str)
    packaged = QtCore.Signal(object)  # Path

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("packagePanel")
        self.actor: Actor | None = None
        self._roles_shown = False  # roles are read once the window is up (see show_user)
        self.case: Case | None = None
        self.drives: list[Any] = []
        self.last_drive: Any = None
        self.worker = Worker(self)
        self.worker.done.connect(self._packaged)
        self.worker.error.connect(self._finish)
        self.worker.cancelled.connect(
            lambda: self._finish("Cancelled; no package was left behind.")
        )
        self._build()
        self._sync()

    def _build(self) -> None:
        self.user = QtWidgets.QLabel(self)
        self.version = QtWidgets.QComboBox(self)
        self.version.currentIndexChanged.connect(self.refresh_status)
        self.status = QtWidgets.QLabel(self)
        self.status.setObjectName("auditStatus")
        self.status.setWordWrap(True)
        self.comment = QtWidgets.QLineEdit(self)
        self.comment.setPlaceholderText("Review comment (required to reject)")
        self.approve_button = QtWidgets.QPushButton("Approve", self)
        self.reject_button = QtWidgets.QPushButton("Reject", self)
        self.destination = QtWidgets.QComboBox(self)
        self.destination.setEditable(True)
        self.destination.setToolTip("a removable drive, or any folder")
        self.browse = QtWidgets.QPushButton("Folder…", self)
        self.zip = QtWidgets.QCheckBox("Also as one zip file", self)
        self.package_button = QtWidgets.QPushButton("Write signed package", self)
        self.eject_button = QtWidgets.QPushButton("Eject drive", self)
        self.eject_button.setEnabled(False)
        self.pacs_store = PacsStoreBox(self._chosen, self)
        self.progress = ProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        self.message.setMinimumHeight(self.message.fontMetrics().lineSpacing() * 3)
        self.message.setAlignment(
            QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft
        )
        self._lay_out()

    def _lay_out(self) -> None:
        review_row = QtWidgets.QHBoxLayout()
        review_row.addWidget(self.approve_button)
        review_row.addWidget(self.reject_button)
        where = QtWidgets.QHBoxLayout()
        where.addWidget(self.destination, 1)
        where.addWidget(self.browse)
        form = QtWidgets.QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Mesh version", self.version)
        form.addRow("Review", self.status)
        form.addRow("", self.comment)
        form.addRow("", review_row)
        form.addRow("Write to", where)
        form.addRow("", self.zip)
        run = QtWidgets.QHBoxLayout()
        run.addWidget(self.progress, 1)
        run.addWidget(self.package_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(run)
        layout.addWidget(self.message)
        layout.addWidget(self.eject_button)
        layout.addWidget(self.pacs_store)
        layout.addStretch(1)

        self.approve_button.clicked.connect(lambda: self.review(approve=True))
        self.reject_button.clicked.connect(lambda: self.review(approve=False))
        self.browse.clicked.connect(self._browse)
        self.package_button.clicked.connect(self.write_package)
        self.eject_button.clicked.connect(self._eject)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))

    # -- state --------------------------------------------------------------------------------
    def set_actor(self, actor: Actor) -> None:
        """Who reviews and packages: the window's actor."""
        self.actor = actor
        self.pacs_store.refresh(actor)
        self._sync()
        self.user.setText(actor.user)
        if self._roles_shown:
            self.show_user()

    def set_case(self, case: Case | None) -> None:
        self.case = case
        self.pacs_store.refresh(self.actor)
        mesh_stack().call(self.refresh_versions)  # the mesh workflow imports on first use
        self.refresh_drives()

    def refresh_versions(self) -> None:
        self.version.blockSignals(True)
        self.version.clear()
        if self.case is not None and self.actor is not None:
            mesh_stack().load_now()
            from app.workflow import mesh  # noqa: PLC0415

            try:
                numbers = [v.number for v in mesh.versions(self.actor, self.case)]
            except MedPrintError as exc:
                numbers = []
                self.message.setText(str(exc))
            for number in reversed(numbers):
                self.version.addItem(f"v{number}", number)
        self.version.blockSignals(False)
        self.refresh_status()

    def refresh_drives(self) -> None:
        try:
            self.drives = list_drives()
        except Exception:  # listing drives is a convenience; a folder always works
            self.drives = []
        text = self.destination.currentText()
        self.destination.clear()
        for drive in self.drives:
            free = drive.free / (1 << 30)
            self.destination.addItem(f"{drive.path}", drive)
            self.destination.setItemData(
                self.destination.count() - 1,
                f"{drive.label or 'drive'}: {free:.1f} GiB free",
                QtCore.Qt.ItemDataRole.ToolTipRole,
            )
        if text:
            self.destination.setCurrentText(text)

    def _chosen(self) -> tuple[Actor, Case, int] | None:
        number = self._selected()
        return None if number is None else (self.actor, self.case, number)  # type: ignore[return-value]

    def _selected(self) -> int | None:
        number = self.version.currentData()
        return None if number is None or self.case is None or self.actor is None else int(number)

    def refresh_status(self) -> None:
        self._sync()
        self.pacs_store.sync()
        number = self._selected()
        if number is None:
            self.status.setText("No stored mesh version yet: build one in the Mesh panel.")
            self.status.setProperty("ok", False)
            return
        assert self.actor is not None and self.case is not None
        try:
            state = review.status(self.actor, self.case, number)
        except MedPrintError as exc:
            self.status.setText(str(exc))
            return
        text = state.message or "not reviewed yet"
        self.status.setText(
            f"{state.state.capitalize()}: {text}"
            if state.state not in text
            else text[:1].upper() + text[1:]
        )
        self.status.setProperty("ok", state.approved)
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
        self.statusChanged.emit(state.state)

    def _sync(self) -> None:
        has = self._selected() is not None
        for widget in (self.approve_button, self.reject_button, self.package_button, self.comment):
            widget.setEnabled(has and not self.worker.busy)
        if self.actor is None:
            self.user.setText("")

    def show_user(self) -> None:
        """The actor and their roles (read from the signed chain, so from the keystore: the
        window calls it once it is on screen and the vault is open)."""
        if self.actor is None:
            return
        self._roles_shown = True
        try:
            roles = ", ".join(users.whoami(self.actor)["roles"]) or "no role"
        except MedPrintError:
            roles = "roles unavailable"
        self.user.setText(f"{self.actor.user} ({roles})")

    # -- actions ------------------------------------------------------------------------------
    def review(self, approve: bool) -> None:
        number = self._selected()
        if number is None:
            return
        assert self.actor is not None and self.case is not None
        comment = self.comment.text()
        try:
            if approve:
                review.approve(self.actor, self.case, number, comment=comment)
            else:
                review.reject(self.actor, self.case, number, comment=comment)
        except MedPrintError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(
            "Approved." if approve else "Rejected; the technician sees your comment."
        )
        self.comment.clear()
        self.refresh_status()

    def _browse(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Write the package to", self.destination.currentText()
        )
        if chosen:
            self.destination.setCurrentText(chosen)

    def write_package(self) -> None:
        number = self._selected()
        target = self.destination.currentText().strip()
        if number is None:
            return
        if not target:
            self.message.setText("Choose a drive or folder to write the package to.")
            return
        assert self.actor is not None and self.case is not None
        index = self.destination.currentIndex()
        chosen_drive = index >= 0 and self.destination.itemText(index) == target
        self.last_drive = self.destination.currentData() if chosen_drive else None
        job = PackageJob(self.actor, self.case, number, Path(target), self.zip.isChecked())
        self.message.setText("Writing, signing and verifying the package…")
        self.progress.setValue(0)
        self.package_button.setEnabled(False)
        self.worker.start(package_job, job, name="writing the print package")

    def _packaged(self, made: package.Packaged) -> None:
        kinds = ", ".join(str(o.get("kind")) for o in made.overrides)
        override = f" (released under administrator override: {kinds})" if kinds else ""
        where = "the drive" if self.last_drive is not None else "the folder"
        self._finish(
            f"Package written and verified on {where}: {made.path.name}{override}. "
            + ("It is safe to remove the drive." if self.last_drive is not None else "")
        )
        self.eject_button.setEnabled(self.last_drive is not None)
        self.progress.setValue(1000)
        self.packaged.emit(made.path)

    def _finish(self, message: str) -> None:
        self.message.setText(message)
        self._sync()

    def _eject(self) -> None:
        if self.last_drive is None:
            return
        try:
            self.message.setText(eject(self.last_drive))
        except MedPrintError as exc:
            self.message.setText(str(exc))
        self.eject_button.setEnabled(False)
        self.refresh_drives()

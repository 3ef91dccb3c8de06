"""The Package panel: review (approve / reject one stored mesh version) and the signed print
package written to a removable drive or a folder.

Everything goes through ``app.security.access`` (roles, approvals bound to the mesh's SHA-256
and its QA report) and ``app.security.package.package_case`` (builds, signs, reads back and
verifies the package). Refusals arrive as their one-line messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from app.errors import MedPrintError
from app.progress import CancelToken, Progress
from app.ui.worker import Worker


def package_job(
    inputs: dict, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Any:
    from app.security.package import package_case  # noqa: PLC0415

    return package_case(
        inputs["case"],
        inputs["out_dir"],
        mesh=inputs["mesh"],
        qa=inputs["qa"],
        user=inputs["user"],
        make_zip=inputs["zip"],
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
        self.case: Any = None
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
        self.progress = QtWidgets.QProgressBar(self)
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
        review = QtWidgets.QHBoxLayout()
        review.addWidget(self.approve_button)
        review.addWidget(self.reject_button)
        where = QtWidgets.QHBoxLayout()
        where.addWidget(self.destination, 1)
        where.addWidget(self.browse)
        form = QtWidgets.QFormLayout()
        form.addRow("User", self.user)
        form.addRow("Mesh version", self.version)
        form.addRow("Review", self.status)
        form.addRow("", self.comment)
        form.addRow("", review)
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
        layout.addStretch(1)

        self.approve_button.clicked.connect(lambda: self.review(approve=True))
        self.reject_button.clicked.connect(lambda: self.review(approve=False))
        self.browse.clicked.connect(self._browse)
        self.package_button.clicked.connect(self.write_package)
        self.eject_button.clicked.connect(self._eject)
        self.worker.progress.connect(lambda f, _m: self.progress.setValue(int(f * 1000)))

    # -- state --------------------------------------------------------------------------------
    def current_user(self) -> str:
        from app.security.access import current_user  # noqa: PLC0415

        return current_user()

    def set_case(self, case: Any) -> None:
        self.case = case
        self.refresh_versions()
        self.refresh_drives()

    def refresh_versions(self) -> None:
        self.version.blockSignals(True)
        self.version.clear()
        if self.case is not None:
            from app.tools.mesh.store import mesh_versions  # noqa: PLC0415

            for number in reversed(mesh_versions(self.case)):
                self.version.addItem(f"v{number}", number)
        self.version.blockSignals(False)
        self.refresh_status()

    def refresh_drives(self) -> None:
        try:
            from app.security.drives import list_drives  # noqa: PLC0415

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

    def _files(self) -> tuple[str, str] | None:
        number = self.version.currentData()
        return None if number is None else (f"mesh/v{number}.stl", f"mesh/v{number}.qa.json")

    def refresh_status(self) -> None:
        self._sync()
        files = self._files()
        if self.case is None or files is None:
            self.status.setText("No stored mesh version yet: build one in the Mesh panel.")
            self.status.setProperty("ok", False)
            return
        from app.security import access  # noqa: PLC0415

        try:
            mesh_sha = access.sha256_hex(self.case.load_bytes(files[0]))
            qa_sha = access.qa_report_sha256(self.case.load_json(files[1]))
            state = access.approval_status(self.case, mesh_sha, qa_sha)
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
        has = self.case is not None and self.version.count() > 0
        for widget in (self.approve_button, self.reject_button, self.package_button, self.comment):
            widget.setEnabled(has and not self.worker.busy)
        user = self.current_user()
        roles = ""
        if self.case is not None:
            from app.security.access import roles_of  # noqa: PLC0415

            try:
                roles = ", ".join(sorted(roles_of(user, self.case.vault))) or "no role"
            except MedPrintError:
                roles = "roles unavailable"
        self.user.setText(f"{user} ({roles})" if roles else user)

    # -- actions ------------------------------------------------------------------------------
    def review(self, approve: bool) -> None:
        files = self._files()
        if self.case is None or files is None:
            return
        from app.security import access  # noqa: PLC0415

        try:
            mesh_sha = access.sha256_hex(self.case.load_bytes(files[0]))
            report = self.case.load_json(files[1])
            decide = access.approve if approve else access.reject
            decide(self.case, mesh_sha, report, self.current_user(), self.comment.text())
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
        files = self._files()
        target = self.destination.currentText().strip()
        if self.case is None or files is None:
            return
        if not target:
            self.message.setText("Choose a drive or folder to write the package to.")
            return
        index = self.destination.currentIndex()
        chosen_drive = index >= 0 and self.destination.itemText(index) == target
        self.last_drive = self.destination.currentData() if chosen_drive else None
        inputs = {
            "case": self.case,
            "out_dir": Path(target),
            "mesh": files[0],
            "qa": files[1],
            "user": self.current_user(),
            "zip": self.zip.isChecked(),
        }
        self.message.setText("Writing, signing and verifying the package…")
        self.progress.setValue(0)
        self.package_button.setEnabled(False)
        self.worker.start(package_job, inputs, name="writing the print package")

    def _packaged(self, result: Any) -> None:
        path, release = result
        override = " (released by an administrator's override)" if release.overridden else ""
        where = "the drive" if self.last_drive is not None else "the folder"
        self._finish(
            f"Package written and verified on {where}: {Path(path).name}{override}. "
            + ("It is safe to remove the drive." if self.last_drive is not None else "")
        )
        self.eject_button.setEnabled(self.last_drive is not None)
        self.progress.setValue(1000)
        self.packaged.emit(Path(path))

    def _finish(self, message: str) -> None:
        self.message.setText(message)
        self._sync()

    def _eject(self) -> None:
        if self.last_drive is None:
            return
        from app.security.drives import eject  # noqa: PLC0415

        try:
            self.message.setText(eject(self.last_drive))
        except MedPrintError as exc:
            self.message.setText(str(exc))
        self.eject_button.setEnabled(False)
        self.refresh_drives()

"""The import dialog: choose a folder, drive or zip, see its studies and series with
thumbnails, import one series as a new case with a progress bar and Cancel.

Scanning and importing run through the worker adapter; cancelling an import leaves no case
behind (``app.workflow.intake.import_series`` removes a half-made case), so importing again
gives one.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow import intake
from app.workflow.actor import Actor

_SERIES_ROLE = QtCore.Qt.ItemDataRole.UserRole


def thumbnail_icon(pixels: np.ndarray) -> QtGui.QIcon:
    grey = np.ascontiguousarray(pixels, dtype=np.uint8)
    rows, cols = grey.shape
    image = QtGui.QImage(grey.data, cols, rows, cols, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QIcon(QtGui.QPixmap.fromImage(image))


class ImportDialog(QtWidgets.QDialog):
    """Scan → pick a series → import. Emits :attr:`imported` with the new case's pseudonym."""

    imported = QtCore.Signal(str)
    COLUMNS = ("Series", "Modality", "Images", "Matrix", "Spacing (mm)", "Notes")

    def __init__(self, actor: Actor, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import DICOM")
        self.resize(860, 560)
        self.actor = actor
        self.scanned: intake.Preview | None = None
        self.worker = Worker(self)
        self.worker.progress.connect(self._progress)
        self.worker.error.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)
        self.worker.finished.connect(self._sync)
        self._build()
        self._connect()
        self._sync()

    def _build(self) -> None:
        self.path = QtWidgets.QLineEdit(self)
        self.path.setPlaceholderText("A folder, drive or .zip file with DICOM images")
        self.folder_button = QtWidgets.QPushButton("Folder…", self)
        self.zip_button = QtWidgets.QPushButton("Zip…", self)
        self.drive_button = QtWidgets.QPushButton("Drive", self)
        self.drive_button.setToolTip("Removable drives (CD/DVD, USB) mounted on this computer")
        self.drive_menu = QtWidgets.QMenu(self.drive_button)
        self.drive_button.setMenu(self.drive_menu)
        self.scan_button = QtWidgets.QPushButton("Scan", self)
        self.show_identity = QtWidgets.QCheckBox("Show identity", self)
        self.tree = QtWidgets.QTreeWidget(self)
        self.tree.setHeaderLabels(self.COLUMNS)
        self.tree.setIconSize(QtCore.QSize(64, 64))
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(False)
        self.rejected = QtWidgets.QLabel(self)
        self.status = QtWidgets.QLabel("Choose a folder or zip file, then Scan.", self)
        self.status.setObjectName("importStatus")
        self.bar = ProgressBar(self)
        self.bar.setRange(0, 1000)
        self.import_button = QtWidgets.QPushButton("Import", self)
        self.import_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.close_button = QtWidgets.QPushButton("Close", self)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.path, 1)
        for widget in (self.folder_button, self.zip_button, self.drive_button, self.scan_button):
            top.addWidget(widget)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.bar, 1)
        for widget in (self.import_button, self.cancel_button, self.close_button):
            bottom.addWidget(widget)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.show_identity)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.rejected)
        layout.addWidget(self.status)
        layout.addLayout(bottom)

    def _connect(self) -> None:
        self.folder_button.clicked.connect(self._choose_folder)
        self.zip_button.clicked.connect(self._choose_zip)
        self.drive_menu.aboutToShow.connect(self._fill_drives)
        self.scan_button.clicked.connect(self.start_scan)
        self.path.returnPressed.connect(self.start_scan)
        self.import_button.clicked.connect(self.start_import)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.close_button.clicked.connect(self.reject)
        self.tree.itemSelectionChanged.connect(self._sync)
        self.tree.itemDoubleClicked.connect(
            lambda item, _c: item.data(0, _SERIES_ROLE) and self.start_import()
        )
        self.show_identity.toggled.connect(self._fill_tree)

    # -- choosing and scanning ----------------------------------------------------------------
    def _choose_folder(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(
            self, "DICOM folder or drive", self.path.text()
        )
        if chosen:
            self.path.setText(chosen)
            self.start_scan()

    def _choose_zip(self) -> None:
        chosen, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "DICOM zip file", self.path.text(), "Zip archives (*.zip)"
        )
        if chosen:
            self.path.setText(chosen)
            self.start_scan()

    def _fill_drives(self) -> None:
        self.drive_menu.clear()
        try:
            from app.security.drives import list_drives  # noqa: PLC0415

            drives = list_drives()
        except Exception:  # listing drives is a convenience; the folder button still works
            drives = []
        if not drives:
            self.drive_menu.addAction("No removable drive found").setEnabled(False)
            return
        for drive in drives:
            text = f"{drive.label or drive.path.name or drive.path}  ({drive.path})"
            self.drive_menu.addAction(text, lambda p=str(drive.path): self.start_scan(p))

    def start_scan(self, path: str | None = None) -> None:
        if path:
            self.path.setText(str(path))
        text = self.path.text().strip()
        if not text:
            self.status.setText("Choose a folder or zip file first.")
            return
        self.tree.clear()
        self.scanned = None
        self.status.setText("Scanning…")
        self.worker.start(
            partial(intake.preview, self.actor),
            [text],
            name="scanning for DICOM series",
            on_done=self._scanned,
        )
        self._sync()

    def _scanned(self, scanned: intake.Preview) -> None:
        self.scanned = scanned
        result = scanned.result
        self._fill_tree()
        n = len(result.series)
        self.status.setText(
            f"Found {n} series in {result.files} files." if n else "No image series found there."
        )
        skipped = result.rejected
        self.rejected.setText(
            f"{len(skipped)} files skipped (hover for reasons)" if skipped else ""
        )
        reasons = "\n".join(f"{r.file}: {r.reason}" for r in skipped[:40])
        self.rejected.setToolTip(reasons + ("\n…" if len(skipped) > 40 else ""))
        self._select_default()

    def _fill_tree(self) -> None:
        self.tree.clear()
        if self.scanned is None:
            return
        shown = self.show_identity.isChecked()
        for n, patient in enumerate(self.scanned.result.patients, start=1):
            name = patient.identity.get("patient_name") or "(no name)"
            label = (
                f"{name}  ID {patient.identity.get('patient_id', '')}" if shown else f"Patient {n}"
            )
            p_item = QtWidgets.QTreeWidgetItem(self.tree, [label])
            for m, study in enumerate(patient.studies, start=1):
                desc = study.identity.get("study_description", "") if shown else ""
                date = study.identity.get("study_date", "") if shown else ""
                s_label = " ".join(v for v in (f"Study {m}", date, desc) if v)
                s_item = QtWidgets.QTreeWidgetItem(p_item, [s_label])
                for series in study.series:
                    self._series_item(s_item, series, shown)
        self.tree.expandAll()
        for column in range(1, len(self.COLUMNS)):
            self.tree.resizeColumnToContents(column)
        self.tree.setColumnWidth(0, 260)

    def _series_item(self, parent: QtWidgets.QTreeWidgetItem, series: object, shown: bool) -> None:
        spacing = ", ".join("?" if v is None else f"{v:.2f}" for v in series.spacing)
        title = f"#{series.number}" if series.number is not None else series.key
        if shown and series.identity.get("series_description"):
            title += f"  {series.identity['series_description']}"
        item = QtWidgets.QTreeWidgetItem(
            parent,
            [
                title,
                series.modality,
                str(series.slice_count),
                f"{series.columns}×{series.rows}",
                spacing,
                "; ".join(series.notes),
            ],
        )
        item.setData(0, _SERIES_ROLE, series.key)
        thumb = self.scanned.thumbnails.get(series.key) if self.scanned else None
        if thumb is not None:
            item.setIcon(0, thumbnail_icon(thumb))
        if series.notes:
            item.setToolTip(5, "\n".join(series.notes))

    def _select_default(self) -> None:
        """Preselect the largest CT series (or the largest series)."""
        items = self.series_items()
        if not items or self.scanned is None:
            return
        by_key = {s.key: s for s in self.scanned.result.series}

        def rank(item: QtWidgets.QTreeWidgetItem) -> tuple[bool, int]:
            series = by_key[item.data(0, _SERIES_ROLE)]
            return (series.modality == "CT", series.slice_count)

        self.tree.setCurrentItem(max(items, key=rank))

    def series_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        found = []
        iterator = QtWidgets.QTreeWidgetItemIterator(self.tree)
        while iterator.value():
            item = iterator.value()
            if item.data(0, _SERIES_ROLE):
                found.append(item)
            iterator += 1
        return found

    def selected_series(self) -> object | None:
        item = self.tree.currentItem()
        if item is None or self.scanned is None:
            return None
        key = item.data(0, _SERIES_ROLE)
        if not key:
            return None
        return next((s for s in self.scanned.result.series if s.key == key), None)

    # -- importing ----------------------------------------------------------------------------
    def start_import(self) -> None:
        series = self.selected_series()
        if series is None:
            self.status.setText("Select a series to import.")
            return
        self.status.setText(f"Importing {series.slice_count} images…")
        self.bar.setValue(0)
        self.worker.start(
            partial(intake.import_series, self.actor),
            series,
            name="importing the series",
            on_done=self._imported,
        )
        self._sync()

    def _imported(self, case: Case) -> None:
        self.bar.setValue(1000)
        self.status.setText(f"Imported as case {case.pseudonym}.")
        self.imported.emit(case.pseudonym)
        self.accept()

    def _progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(fraction * 1000))
        if message:
            self.status.setText(message[:1].upper() + message[1:])

    def _failed(self, message: str) -> None:
        self.bar.setValue(0)
        self.status.setText(f"Failed: {message}")

    def _cancelled(self) -> None:
        self.bar.setValue(0)
        self.status.setText("Cancelled; nothing was imported.")

    def _sync(self) -> None:
        busy = self.worker.busy
        self.import_button.setEnabled(not busy and self.selected_series() is not None)
        self.scan_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def reject(self) -> None:
        self.worker.cancel()
        self.worker.wait(5.0)
        super().reject()

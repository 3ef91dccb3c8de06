"""The case browser: the vault's cases by pseudonym, searchable by patient fields.

Patient fields stay hidden unless the user ticks "Show identity" (the window then asks the
vault for them, audited); the search box matches them either way, inside the vault, so a
technician can find "Smith" and see only ``C-7K3M-Q9``.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.workflow.intake import CaseEntry

# (identity key, column title); the identity dict comes from the import (DICOM header fields).
IDENTITY_COLUMNS = (
    ("patient_name", "Patient"),
    ("patient_id", "Patient ID"),
    ("birth_date", "Birth date"),
    ("study_date", "Study date"),
    ("study_description", "Study"),
    ("series_description", "Series"),
)


class CaseBrowser(QtWidgets.QWidget):
    """A searchable table of cases; double-click or Open emits :attr:`openRequested`.

    Typing emits :attr:`searchChanged`; the window answers with :meth:`set_matches`.
    """

    openRequested = QtCore.Signal(str)
    importRequested = QtCore.Signal()
    refreshRequested = QtCore.Signal()
    identityToggled = QtCore.Signal(bool)
    searchChanged = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.entries: list[CaseEntry] = []
        self.matching: set[str] | None = None  # pseudonyms matching the search; None: all
        self.search = QtWidgets.QLineEdit(self)
        self.search.setPlaceholderText("Search pseudonym or patient fields…")
        self.search.setClearButtonEnabled(True)
        self.show_identity = QtWidgets.QCheckBox("Show identity", self)
        self.show_identity.setToolTip("Show patient fields in the list (recorded in the audit log)")
        self.table = QtWidgets.QTableWidget(0, 2 + len(IDENTITY_COLUMNS), self)
        self.table.setHorizontalHeaderLabels(
            ["Case", *[title for _, title in IDENTITY_COLUMNS], "Created"]
        )
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.status = QtWidgets.QLabel(self)
        self.status.setObjectName("caseBrowserStatus")
        self.open_button = QtWidgets.QPushButton("Open", self)
        self.import_button = QtWidgets.QPushButton("Import…", self)
        self.refresh_button = QtWidgets.QPushButton("Refresh", self)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.show_identity)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self.search.textChanged.connect(self.searchChanged)
        self.show_identity.toggled.connect(self._on_identity_toggled)
        self.table.itemDoubleClicked.connect(lambda _item: self._open_selected())
        self.table.itemSelectionChanged.connect(self._sync_buttons)
        self.open_button.clicked.connect(self._open_selected)
        self.import_button.clicked.connect(self.importRequested)
        self.refresh_button.clicked.connect(self.refreshRequested)
        self._set_identity_visible(False)
        self._sync_buttons()

    # -- data ---------------------------------------------------------------------------------
    def set_entries(self, entries: list[CaseEntry]) -> None:
        self.entries = list(entries)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.entries))
        for row, entry in enumerate(self.entries):
            values = [
                entry.pseudonym,
                *[entry.identity.get(k, "") for k, _ in IDENTITY_COLUMNS],
                entry.created.replace("T", " ")[:16],
            ]
            for column, value in enumerate(values):
                item = QtWidgets.QTableWidgetItem(str(value))
                item.setData(QtCore.Qt.ItemDataRole.UserRole, entry.pseudonym)
                self.table.setItem(row, column, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        self._apply_filter()

    def set_matches(self, pseudonyms: set[str] | None) -> None:
        """Show only these cases (the vault's answer to the search); None shows every case."""
        self.matching = pseudonyms
        self._apply_filter()

    def set_unavailable(self, message: str) -> None:
        """Show why the vault cannot be listed (no keystore, not initialised...)."""
        self.entries = []
        self.table.setRowCount(0)
        self.status.setText(message)
        self._sync_buttons()

    def visible_pseudonyms(self) -> list[str]:
        return [
            self.table.item(row, 0).text()
            for row in range(self.table.rowCount())
            if not self.table.isRowHidden(row)
        ]

    def select(self, pseudonym: str) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == pseudonym:
                self.table.selectRow(row)
                return

    def selected(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        return self.table.item(rows[0].row(), 0).text()

    # -- slots --------------------------------------------------------------------------------
    def _apply_filter(self) -> None:
        shown = 0
        for row in range(self.table.rowCount()):
            pseudonym = self.table.item(row, 0).text()
            visible = self.matching is None or pseudonym in self.matching
            self.table.setRowHidden(row, not visible)
            shown += visible
        total = len(self.entries)
        noun = "case" if total == 1 else "cases"
        filtered = self.matching is not None
        self.status.setText(f"{shown} of {total} {noun}" if filtered else f"{total} {noun}")
        self._sync_buttons()

    def _on_identity_toggled(self, shown: bool) -> None:
        self._set_identity_visible(shown)
        self.identityToggled.emit(shown)

    def _set_identity_visible(self, shown: bool) -> None:
        for column in range(1, 1 + len(IDENTITY_COLUMNS)):
            self.table.setColumnHidden(column, not shown)

    def _open_selected(self) -> None:
        pseudonym = self.selected()
        if pseudonym:
            self.openRequested.emit(pseudonym)

    def _sync_buttons(self) -> None:
        self.open_button.setEnabled(self.selected() is not None)

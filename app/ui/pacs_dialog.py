"""The PACS dialog, beside Import: the configured archives (add, edit, remove, Test = C-ECHO),
a study query (patient ID, name, birth date, accession number, modality, date range), the
matching studies with their series, and Retrieve into the vault with progress and Cancel.

Every act goes through :mod:`app.workflow.pacs` as the window's actor; the network work (echo,
find, retrieve) runs in the worker. The identity the archive answers with is shown here only;
a cancelled retrieve leaves no case (the workflow imports only a complete transfer).
"""

from __future__ import annotations

import dataclasses
from functools import partial

from PySide6 import QtCore, QtWidgets

from app.errors import MedPrintError
from app.imaging.pacs.nodes import DEFAULT_OUR_AET, DEFAULT_OUR_PORT, Node
from app.imaging.pacs.query import FindPage, Query, StudyMatch
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow import pacs
from app.workflow.actor import Actor

_UID_ROLE = QtCore.Qt.ItemDataRole.UserRole
METHODS = (("DIMSE C-GET", "get"), ("DIMSE C-MOVE", "move"), ("DICOMweb (QIDO/WADO-RS)", "wado"))
_STUDY_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


class NodeDialog(QtWidgets.QDialog):
    """Add or edit one node: AE titles, address, ports, DICOMweb root, research or clinical,
    DICOM TLS (the CA to trust, our certificate and key: PEM file paths)."""

    def __init__(self, node: Node | None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Edit PACS node" if node else "Add PACS node")
        self.original = node
        self.name = QtWidgets.QLineEdit(node.name if node else "", self)
        self.name.setReadOnly(node is not None)
        self.aet = QtWidgets.QLineEdit(node.aet if node else "", self)
        self.host = QtWidgets.QLineEdit(node.host if node else "", self)
        self.port = self._spin(node.port if node else 104)
        self.our_aet = QtWidgets.QLineEdit(node.our_aet if node else DEFAULT_OUR_AET, self)
        self.our_port = self._spin(node.our_port if node else DEFAULT_OUR_PORT)
        self.dicomweb = QtWidgets.QLineEdit(node.dicomweb if node else "", self)
        self.kind = QtWidgets.QComboBox(self)
        self.kind.addItems(["Ordinary", "Clinical archive", "Research archive"])
        self.kind.setCurrentIndex(
            2 if node and node.research else 1 if node and node.clinical else 0
        )
        self.kind.setToolTip(
            "Clinical: takes identified objects of any case. Research: de-identified only. "
            "Ordinary: identified objects only of the cases retrieved from it."
        )
        self.tls = QtWidgets.QCheckBox("DICOM TLS", self)
        self.tls.setChecked(bool(node and node.tls))
        self.tls_files = {
            key: QtWidgets.QLineEdit(getattr(node, key, "") if node else "", self)
            for key in ("tls_ca", "tls_cert", "tls_key")
        }
        self.tls_files["tls_ca"].setPlaceholderText("CA file (PEM); empty: the system's CAs")
        self.tls_files["tls_cert"].setPlaceholderText("our certificate (PEM), if asked")
        self.tls_files["tls_key"].setPlaceholderText("its key (PEM)")
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QtWidgets.QFormLayout(self)
        for label, widget in (
            ("Name", self.name), ("AE title", self.aet), ("Host", self.host),
            ("Port", self.port), ("Our AE title", self.our_aet), ("Our port", self.our_port),
            ("DICOMweb root", self.dicomweb), ("Kind", self.kind), ("", self.tls),
            ("TLS CA", self.tls_files["tls_ca"]), ("Our certificate", self.tls_files["tls_cert"]),
            ("Our key", self.tls_files["tls_key"]),
        ):  # fmt: skip
            form.addRow(label, widget)
        form.addRow(buttons)

    def _spin(self, value: int) -> QtWidgets.QSpinBox:
        spin = QtWidgets.QSpinBox(self)
        spin.setRange(1, 65535)
        spin.setValue(value)
        return spin

    def node(self) -> Node:
        """The node as entered (a :class:`PacsError` when a field is not valid)."""
        values = {
            "name": self.name.text().strip(),
            "aet": self.aet.text().strip(),
            "host": self.host.text().strip(),
            "port": self.port.value(),
            "our_aet": self.our_aet.text().strip(),
            "our_port": self.our_port.value(),
            "dicomweb": self.dicomweb.text().strip(),
            "clinical": self.kind.currentIndex() == 1,
            "research": self.kind.currentIndex() == 2,
            "tls": self.tls.isChecked(),
        } | {key: edit.text().strip() for key, edit in self.tls_files.items()}
        if self.original is not None:  # keep any field this form does not show
            return dataclasses.replace(self.original, **values)
        return Node(**values)


class PacsDialog(QtWidgets.QDialog):
    """Nodes, query, results, retrieve. Emits :attr:`retrieved` with the new case's pseudonym."""

    retrieved = QtCore.Signal(str)
    COLUMNS = ("Patient / series", "ID", "Date", "Modality", "Images", "Description")

    def __init__(self, actor: Actor, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import from PACS")
        self.resize(980, 640)
        self.actor = actor
        self.page: FindPage | None = None
        self.known: dict[str, Node] = {}
        self.worker = Worker(self)
        self.worker.progress.connect(self._progress)
        self.worker.error.connect(self._failed)
        self.worker.cancelled.connect(self._cancelled)
        self.worker.finished.connect(self._sync)
        self._build()
        self.refresh_nodes()
        self._sync()

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self._nodes_box())
        top.addWidget(self._query_box(), 1)
        layout.addLayout(top)
        self.tree = QtWidgets.QTreeWidget(self)
        self.tree.setHeaderLabels(self.COLUMNS)
        self.tree.setAlternatingRowColors(True)
        self.tree.itemSelectionChanged.connect(self._sync)
        layout.addWidget(self.tree, 1)
        self.status = QtWidgets.QLabel("Choose a node, then Find.", self)
        self.status.setObjectName("pacsStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.bar = ProgressBar(self)
        self.bar.setRange(0, 1000)
        self.retrieve_button = QtWidgets.QPushButton("Retrieve", self)
        self.retrieve_button.setDefault(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel", self)
        self.close_button = QtWidgets.QPushButton("Close", self)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.bar, 1)
        for widget in (self.retrieve_button, self.cancel_button, self.close_button):
            bottom.addWidget(widget)
        layout.addLayout(bottom)
        self.retrieve_button.clicked.connect(self.start_retrieve)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.close_button.clicked.connect(self.reject)

    def _nodes_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Nodes", self)
        self.nodes = QtWidgets.QListWidget(box)
        self.nodes.setMaximumWidth(260)
        self.nodes.currentRowChanged.connect(self._sync)
        self.add_button = QtWidgets.QPushButton("Add…", box)
        self.edit_button = QtWidgets.QPushButton("Edit…", box)
        self.remove_button = QtWidgets.QPushButton("Remove", box)
        self.test_button = QtWidgets.QPushButton("Test", box)
        self.test_button.setToolTip("C-ECHO: does the node answer us?")
        self.node_status = QtWidgets.QLabel(box)
        self.node_status.setObjectName("nodeStatus")
        self.node_status.setWordWrap(True)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.add_button, self.edit_button, self.remove_button, self.test_button):
            buttons.addWidget(button)
        column = QtWidgets.QVBoxLayout(box)
        column.addWidget(self.nodes, 1)
        column.addLayout(buttons)
        column.addWidget(self.node_status)
        self.add_button.clicked.connect(lambda: self.edit_node(None))
        self.edit_button.clicked.connect(lambda: self.edit_node(self.current_node()))
        self.remove_button.clicked.connect(self.remove_node)
        self.test_button.clicked.connect(self.test_node)
        return box

    def _query_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Query", self)
        self.keys = {
            key: QtWidgets.QLineEdit(box)
            for key in ("patient_id", "name", "birth_date", "accession", "modality")
        }
        self.keys["name"].setPlaceholderText("DOE^J*")
        self.keys["birth_date"].setPlaceholderText("YYYYMMDD")
        self.keys["modality"].setPlaceholderText("CT, MR…")
        self.date_from = QtWidgets.QLineEdit(box)
        self.date_from.setPlaceholderText("from YYYYMMDD")
        self.date_to = QtWidgets.QLineEdit(box)
        self.date_to.setPlaceholderText("to YYYYMMDD")
        self.find_button = QtWidgets.QPushButton("Find", box)
        self.next_button = QtWidgets.QPushButton("Next page", box)
        self.limit = 100
        self.method = QtWidgets.QComboBox(box)
        for label, method in METHODS:
            self.method.addItem(label, method)
        self.method.setToolTip("How to query and retrieve; DICOMweb needs the node's root")
        dates = QtWidgets.QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(self.date_to)
        form = QtWidgets.QFormLayout(box)
        labels = ("Patient ID", "Name", "Birth date", "Accession number", "Modality")
        for label, widget in zip(labels, self.keys.values(), strict=True):
            form.addRow(label, widget)
            widget.returnPressed.connect(self.new_query)
        form.addRow("Study date", dates)
        form.addRow("Transfer", self.method)
        find_row = QtWidgets.QHBoxLayout()
        find_row.addWidget(self.find_button, 1)
        find_row.addWidget(self.next_button)
        form.addRow("", find_row)
        self.next_button.clicked.connect(self.next_page)
        self.find_button.clicked.connect(self.new_query)
        return box

    # -- nodes --------------------------------------------------------------------------------
    def refresh_nodes(self, select: str | None = None) -> None:
        current = select or (self.current_node().name if self.current_node() else None)
        self.nodes.clear()
        try:
            self.known = {n.name: n for n in pacs.nodes(self.actor)}
        except MedPrintError as exc:
            self.known = {}
            self.node_status.setText(str(exc))
        for name, node in self.known.items():
            item = QtWidgets.QListWidgetItem(f"{name}  ({node.aet}@{node.host}:{node.port})")
            item.setData(_UID_ROLE, name)
            self.nodes.addItem(item)
            if name == current:
                self.nodes.setCurrentItem(item)
        if self.nodes.currentRow() < 0 and self.nodes.count():
            self.nodes.setCurrentRow(0)
        if not self.known:
            self.node_status.setText("No PACS node yet: an administrator adds one (Add…).")

    def current_node(self) -> Node | None:
        item = self.nodes.currentItem()
        return None if item is None else self.known.get(item.data(_UID_ROLE))

    def edit_node(self, node: Node | None) -> None:
        dialog = NodeDialog(node, self)
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return
        self.save_node(dialog)

    def save_node(self, dialog: NodeDialog) -> None:
        try:
            saved = pacs.add_node(self.actor, dialog.node())
        except MedPrintError as exc:
            self.node_status.setText(str(exc))
            return
        self.node_status.setText(f"Saved node {saved.name}.")
        self.refresh_nodes(select=saved.name)

    def remove_node(self) -> None:
        node = self.current_node()
        if node is None:
            return
        try:
            pacs.remove_node(self.actor, node.name)
        except MedPrintError as exc:
            self.node_status.setText(str(exc))
            return
        self.node_status.setText(f"Removed node {node.name}.")
        self.refresh_nodes()

    def test_node(self) -> None:
        node = self.current_node()
        if node is None:
            return
        self.node_status.setText(f"Testing {node.name}…")
        self.worker.start(
            lambda _i, progress, cancel: pacs.echo(self.actor, node.name),
            name="testing the connection",
            on_done=lambda seconds: self.node_status.setText(
                f"{node.name}: C-ECHO ok in {seconds * 1000:.0f} ms"
            ),
            on_error=lambda message: self.node_status.setText(f"{node.name}: {message}"),
        )
        self._sync()

    # -- query --------------------------------------------------------------------------------
    def query(self) -> Query:
        values = {key: edit.text().strip() for key, edit in self.keys.items()}
        return Query(
            **values, date_from=self.date_from.text().strip(), date_to=self.date_to.text().strip()
        )

    def is_web(self) -> bool:
        return self.method.currentData() == "wado"

    def start_find(self, offset: int = 0) -> None:
        node = self.current_node()
        if node is None:
            self.status.setText("Choose a node first.")
            return
        try:
            query = self.query()
        except MedPrintError as exc:
            self.status.setText(str(exc))
            return
        self.tree.clear()
        self.status.setText(f"Querying {node.name}…")
        self.worker.start(
            lambda _i, progress, cancel: pacs.find(
                self.actor,
                node.name,
                query,
                limit=self.limit,
                offset=offset,
                method="dicomweb" if self.is_web() else "dimse",
            ),
            name="querying the PACS",
            on_done=self._found,
        )
        self._sync()

    def new_query(self) -> None:
        self.start_find(0)

    def next_page(self) -> None:
        if self.page is not None and self.page.more:
            self.start_find(self.page.offset + self.page.limit)

    def _found(self, page: FindPage) -> None:
        self.page = page
        self.tree.clear()
        for study in page.studies:
            self._study_item(study)
        self.tree.expandAll()
        for column in range(len(self.COLUMNS)):
            self.tree.resizeColumnToContents(column)
        self.tree.setColumnWidth(0, max(self.tree.columnWidth(0) + 24, 200))  # room for the arrow
        n, first = len(page.studies), page.offset + 1
        shown = (
            f"{n} stud{'y' if n == 1 else 'ies'} found"
            if page.offset == 0 and not page.more
            else f"Studies {first}-{page.offset + n}"
        )
        more = " (more on the archive: Next page, or narrow the query)" if page.more else ""
        self.status.setText(f"{shown}{more}." if n else "No study matches.")
        self._select_default()

    def _study_item(self, study: StudyMatch) -> None:
        item = QtWidgets.QTreeWidgetItem(
            self.tree,
            [study.patient_name or "(no name)", study.patient_id, study.date,
             "/".join(study.modalities), "", study.description],
        )  # fmt: skip
        item.setData(0, _STUDY_ROLE, study.uid)
        for series in study.series:
            child = QtWidgets.QTreeWidgetItem(
                item,
                [f"Series #{series.number if series.number is not None else '?'}", "", "",
                 series.modality, "" if series.instances is None else str(series.instances),
                 series.description],
            )  # fmt: skip
            child.setData(0, _STUDY_ROLE, study.uid)
            child.setData(0, _UID_ROLE, series.uid)

    def _select_default(self) -> None:
        """The first image series with the most images (CT first), as Import does."""
        items = [i for i in self.series_items() if i.text(3) in ("CT", "MR")] or self.series_items()
        if items:
            self.tree.setCurrentItem(
                max(items, key=lambda i: (i.text(3) == "CT", int(i.text(4) or 0)))
            )

    def series_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        found = []
        for n in range(self.tree.topLevelItemCount()):
            study = self.tree.topLevelItem(n)
            found += [study.child(k) for k in range(study.childCount())]
        return found

    # -- retrieve -----------------------------------------------------------------------------
    def selection(self) -> tuple[str, str | None] | None:
        item = self.tree.currentItem()
        if item is None:
            return None
        return item.data(0, _STUDY_ROLE), item.data(0, _UID_ROLE)

    def start_retrieve(self) -> None:
        node, chosen = self.current_node(), self.selection()
        if node is None or chosen is None:
            self.status.setText("Select a study or series to retrieve.")
            return
        study, series = chosen
        self.status.setText(f"Retrieving from {node.name}…")
        self.bar.setValue(0)
        self.worker.start(
            partial(_retrieve, self.actor, node.name, study, series, self.method.currentData()),
            name="retrieving from the PACS",
            on_done=self._retrieved,
        )
        self._sync()

    def _retrieved(self, got: pacs.Retrieved) -> None:
        self.bar.setValue(1000)
        rejected = f"; {len(got.rejected)} instance(s) not usable" if got.rejected else ""
        self.status.setText(
            f"Retrieved {got.instances} instances as case {got.case.pseudonym}{rejected}."
        )
        self.retrieved.emit(got.case.pseudonym)
        self.accept()

    # -- feedback -----------------------------------------------------------------------------
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
        has_node = self.current_node() is not None
        for button in (self.edit_button, self.remove_button, self.test_button, self.find_button):
            button.setEnabled(has_node and not busy)
        self.add_button.setEnabled(not busy)
        self.next_button.setEnabled(not busy and self.page is not None and self.page.more)
        self.retrieve_button.setEnabled(
            not busy and has_node and self.tree.currentItem() is not None
        )
        self.cancel_button.setEnabled(busy)

    def reject(self) -> None:
        self.worker.cancel()
        self.worker.wait(10.0)
        super().reject()


def _retrieve(
    actor: Actor,
    node: str,
    study: str,
    series: str | None,
    method: str,
    _inputs: object,
    *,
    progress,
    cancel,
) -> pacs.Retrieved:
    return pacs.retrieve(
        actor, node, study, series, method=method, progress=progress, cancel=cancel
    )

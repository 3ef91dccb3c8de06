"""The PACS dialog and "Store to PACS" against the real Orthanc of the PACS tests: Test (C-ECHO)
says so, the query shows the uploaded study and its series, Retrieve makes a case (the window
opens it), Cancel leaves no case, nodes are added, refused and removed, and the Package panel
stores an approved coloured version (STL, MTL, OBJ) into Orthanc. The canary's name is shown in
the dialog only, never logged."""

from __future__ import annotations

import io
import logging

import pydicom
import pytest
from PySide6 import QtWidgets

from app.imaging.pacs.model_obj import MTL_SOP_CLASS, OBJ_SOP_CLASS
from app.imaging.pacs.nodes import Node
from app.imaging.pacs.query import STL_SOP_CLASS
from app.ui.package_panel import PackagePanel
from app.ui.pacs_dialog import NodeDialog, PacsDialog
from app.workflow import intake, pacs
from tests.pacs.conftest import CANARY, CANARY_ID, node_for, orthanc, study_of  # noqa: F401
from tests.pacs.orthanc import free_port
from tests.pacs.stores import coloured_version, delete_new
from tests.ui.conftest import ARTIFACTS, grab_array
from tests.ui.stall import StallMeter
from tests.workflow.conftest import ADMIN, REVIEWER, admin, people, person  # noqa: F401

RETRIEVE_S = 180_000
STALL_LIMIT_S = 0.5  # the GUI thread never waits on the network or the import (2 busy cores)


@pytest.fixture
def dialog(qtbot, styled_app, admin, orthanc, caplog):  # noqa: F811 (fixtures)
    caplog.set_level(logging.DEBUG)
    pacs.add_node(admin, node_for(orthanc))
    widget = PacsDialog(admin)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.worker.cancel()
    widget.worker.wait(20.0)
    assert CANARY not in caplog.text and CANARY_ID not in caplog.text


def _find_canary(qtbot, dialog: PacsDialog) -> None:
    dialog.keys["patient_id"].setText(CANARY_ID)
    dialog.find_button.click()
    qtbot.waitUntil(lambda: dialog.tree.topLevelItemCount() == 1, timeout=30_000)


def test_test_query_and_retrieve(qtbot, dialog, admin, artifacts):  # noqa: F811
    assert dialog.nodes.count() == 1 and dialog.current_node().name == "pacs"
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "C-ECHO ok" in dialog.node_status.text(), timeout=30_000)
    _find_canary(qtbot, dialog)
    study = dialog.tree.topLevelItem(0)
    assert (study.text(0), study.text(1)) == (CANARY, CANARY_ID)  # identity inside the app
    [series] = [study.child(n) for n in range(study.childCount())]
    assert (series.text(3), series.text(4)) == ("CT", "134")
    assert dialog.tree.currentItem() is series and dialog.retrieve_button.isEnabled()
    assert dialog.status.text() == "1 study found."
    pixels = grab_array(dialog)
    assert pixels.std() > 10  # drawn, not blank
    dialog.grab().save(str(artifacts / "pacs-dialog.png"))
    before = {e.pseudonym for e in intake.list_cases(admin)}
    with StallMeter() as meter, qtbot.waitSignal(dialog.retrieved, timeout=RETRIEVE_S) as got:
        dialog.retrieve_button.click()
    assert meter.longest_s < STALL_LIMIT_S, meter.report()
    pseudonym = got.args[0]
    assert {e.pseudonym for e in intake.list_cases(admin)} - before == {pseudonym}
    case = intake.open_case(admin, pseudonym)
    assert len(case.original_names()) == 134 and case.origin()["pacs_node"] == "pacs"
    assert dialog.status.text() == f"Retrieved 134 instances as case {pseudonym}."


def test_query_and_retrieve_over_dicomweb(qtbot, dialog, admin):  # noqa: F811
    dialog.method.setCurrentIndex(dialog.method.findData("wado"))
    _find_canary(qtbot, dialog)
    study = dialog.tree.topLevelItem(0)
    assert (study.text(0), study.child(0).text(3), study.child(0).text(4)) == (CANARY, "CT", "134")
    with qtbot.waitSignal(dialog.retrieved, timeout=RETRIEVE_S) as got:
        dialog.retrieve_button.click()
    case = intake.open_case(admin, got.args[0])
    assert case.series_facts()["geometry"]["shape"][0] == 134


def test_pages_of_studies(qtbot, dialog):
    dialog.limit = 1
    dialog.find_button.click()  # every study: the canary CT and the MR
    qtbot.waitUntil(lambda: dialog.tree.topLevelItemCount() == 1, timeout=30_000)
    assert dialog.status.text().startswith("Studies 1-1 (more on the archive")
    first = dialog.tree.topLevelItem(0).text(3)
    assert dialog.next_button.isEnabled()
    dialog.next_button.click()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Studies 2-2"), timeout=30_000)
    assert {first, dialog.tree.topLevelItem(0).text(3)} == {"CT", "MR"}


def test_cancel_leaves_no_case(qtbot, dialog, admin):  # noqa: F811
    _find_canary(qtbot, dialog)
    before = intake.list_cases(admin)
    dialog.retrieve_button.click()
    qtbot.waitUntil(lambda: dialog.bar.value() > 0, timeout=60_000)
    assert dialog.cancel_button.isEnabled()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.worker.busy, timeout=60_000)
    assert dialog.status.text() == "Cancelled; nothing was imported."
    assert intake.list_cases(admin) == before and dialog.isVisible()


def test_nodes_add_refuse_edit_remove(qtbot, dialog, orthanc):  # noqa: F811
    form = NodeDialog(None, dialog)
    qtbot.addWidget(form)
    form.name.setText("archive2")
    form.aet.setText("BAD\\AET")
    form.host.setText("127.0.0.1")
    dialog.save_node(form)
    assert "AE title 'BAD\\AET' is not valid" in dialog.node_status.text()
    form.aet.setText("ORTHANC")
    form.tls.setChecked(True)
    form.tls_files["tls_ca"].setText("/nonexistent/ca.pem")
    dialog.save_node(form)
    assert dialog.node_status.text() == "--tls-ca file ca.pem not found"
    form.tls.setChecked(False)
    form.tls_files["tls_ca"].clear()
    form.port.setValue(orthanc.dicom_port)
    form.kind.setCurrentIndex(1)
    dialog.save_node(form)
    assert dialog.node_status.text() == "Saved node archive2."
    assert dialog.current_node().name == "archive2" and dialog.current_node().clinical
    edit = NodeDialog(dialog.current_node(), dialog)
    qtbot.addWidget(edit)
    assert edit.name.isReadOnly() and edit.kind.currentIndex() == 1
    edit.kind.setCurrentIndex(2)
    dialog.save_node(edit)
    assert dialog.current_node().research and not dialog.current_node().clinical
    dialog.remove_button.click()
    assert dialog.node_status.text() == "Removed node archive2."
    assert [dialog.nodes.item(n).text().split()[0] for n in range(dialog.nodes.count())] == ["pacs"]


def test_test_reports_a_node_that_does_not_answer(qtbot, dialog, admin):  # noqa: F811
    pacs.add_node(admin, Node("dead", "NOBODY", "127.0.0.1", free_port()))
    dialog.refresh_nodes(select="dead")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: "does not answer" in dialog.node_status.text(), timeout=60_000)
    assert dialog.node_status.text().startswith("dead: PACS 'dead' at 127.0.0.1:")


@pytest.fixture
def store_case(people, orthanc):  # noqa: F811
    pacs.add_node(people[ADMIN], node_for(orthanc))
    study, series = study_of(orthanc, CANARY_ID)
    before = set(orthanc.get("/instances"))
    yield pacs.retrieve(people[ADMIN], "pacs", study, series).case
    delete_new(orthanc, before)


@pytest.mark.usefixtures("styled_app")
def test_store_from_the_package_panel(qtbot, people, store_case, orthanc, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    version = coloured_version(people, store_case, segmentation=False)
    panel = PackagePanel()
    qtbot.addWidget(panel)
    panel.set_actor(people[REVIEWER])
    panel.set_case(store_case)
    panel.show()
    qtbot.waitUntil(lambda: panel.version.currentData() == version, timeout=60_000)
    box = panel.pacs_store
    assert box.node.currentText() == "pacs" and box.store_button.isEnabled()
    before = set(orthanc.get("/instances"))
    with qtbot.waitSignal(box.stored, timeout=60_000):
        box.store_button.click()
        assert box.cancel_button.isEnabled() and not box.store_button.isEnabled()
    assert box.bar.value() == 1000 and not box.cancel_button.isEnabled()
    assert box.result.text() == (
        f"Stored 4 objects (2 STL, 1 MTL, 1 OBJ) of mesh v{version} in 1 series to PACS 'pacs'."
    )
    classes = sorted(
        str(pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{i}/file"))).SOPClassUID)
        for i in set(orthanc.get("/instances")) - before
    )
    assert classes == sorted([STL_SOP_CLASS, STL_SOP_CLASS, MTL_SOP_CLASS, OBJ_SOP_CLASS])
    assert grab_array(panel).std() > 10
    # Another archive: identified is refused on the result line, de-identified goes.
    pacs.add_node(people[ADMIN], node_for(orthanc, "other", host="localhost"))
    panel.set_case(store_case)
    box.node.setCurrentText("other")
    with qtbot.waitSignal(box.worker.finished, timeout=60_000):
        box.store_button.click()
    assert "neither the archive case" in box.result.text() and "--deidentified" in box.result.text()
    box.deidentified.setChecked(True)
    with qtbot.waitSignal(box.stored, timeout=60_000):
        box.store_button.click()
    assert box.result.text().startswith("Stored 4 de-identified objects (2 STL, 1 MTL, 1 OBJ)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.grab().save(str(ARTIFACTS / "package-panel-pacs-store.png"))
    assert CANARY not in caplog.text and CANARY_ID not in caplog.text


@pytest.mark.usefixtures("styled_app", "data_dir", "keystore_service")
def test_window_pacs_action_cancel_late_then_retrieve_opens_the_case(qtbot, orthanc, artifacts):  # noqa: F811
    """From the window: cancelled while the case is being stored, nothing is left; retrieved
    again, the window opens the one new case."""
    from app.settings import resolve_paths
    from app.ui.main_window import MainWindow

    window = MainWindow(resolve_paths())
    window.resize(1500, 920)
    window.show()
    qtbot.addWidget(window)
    window.startup(open_sample=False)
    for box in window.findChildren(QtWidgets.QMessageBox):
        box.close()
    pacs.add_node(window.actor, node_for(orthanc))
    window.act_pacs.trigger()
    dialog = window.pacs_dialog
    _find_canary(qtbot, dialog)
    seen: list[float] = []

    def cancel_late(fraction: float, _message: str) -> None:
        seen.append(fraction)
        if fraction >= 0.65 and dialog.cancel_button.isEnabled():
            dialog.cancel_button.click()

    dialog.worker.progress.connect(cancel_late)
    with qtbot.waitSignal(dialog.worker.cancelled, timeout=RETRIEVE_S):
        dialog.start_retrieve()
    dialog.worker.progress.disconnect(cancel_late)
    assert max(seen) >= 0.65 and window.actor.vault.list_cases() == []
    with qtbot.waitSignal(window.caseOpened, timeout=RETRIEVE_S) as opened:
        dialog.start_retrieve()
    pseudonym = opened.args[0]
    assert [c.pseudonym for c in window.actor.vault.list_cases()] == [pseudonym]
    assert pseudonym in window.windowTitle() and not dialog.isVisible()
    window.save_screenshot(artifacts / "main-window-pacs-case.png", whole_window=True)
    assert grab_array(window.area).std() > 20

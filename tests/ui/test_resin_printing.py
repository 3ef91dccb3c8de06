"""Resin and Formlabs printing in the window: the Print section lists what the printer takes
(mesh versions for a Formlabs printer, stored SL1 slicings for a PrusaLink resin printer) and
prints it through the workflow; PreForm's mesh-hash mismatch and an unapproved version are
refused with one line and nothing is printed. The printers are the contract servers of
tests/printing/peers."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6 import QtCore

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.case import Case
from app.printing.connection import login_name, login_secret
from app.printing.profiles import get_printer
from app.security.keystore import Keystore
from app.settings import resolve_paths
from app.ui.print_job import PrintSection
from app.ui.print_panel import PrintPanel
from app.workflow import review, users
from app.workflow.actor import Actor
from tests.printing.peers.preform_server import PRINTER as FORM4
from tests.workflow.conftest import person
from tests.workflow.print_fixtures import store_version

pytest_plugins = ["tests.printing.peers.fixtures"]

FORM = "formlabs-form4b"
SL1S = "prusa-sl1s"


def approved_case(data_dir) -> tuple[Actor, Case]:
    """A case with mesh v1 approved by a reviewer, and the founder who prints it."""
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({"PatientName": "TEST^RESIN"}))
    store_version(case, author="tess")
    review.approve(person(actor, "rafael", "reviewer"), case, 1, comment="fits")
    return actor, case


def section_for(qtbot, actor: Actor, case: Case, printer: str, url: str) -> PrintSection:
    section = PrintSection()
    qtbot.addWidget(section)
    section.poll_interval = 0.05
    section.set_actor(actor)
    section.set_printers({printer: get_printer(printer)}, printer)
    section.set_case(case)
    qtbot.waitUntil(lambda: section.selected_gcode() is not None, timeout=20000)
    section.connection.setEditText(url)
    return section


def refused(qtbot, section: PrintSection) -> str:
    section.print_button.click()
    qtbot.waitUntil(lambda: section.refusal.text().startswith("Not printed"), timeout=20000)
    assert "\n" not in section.refusal.text() and section.print_button.isEnabled()
    return section.refusal.text()


def test_formlabs_prints_the_approved_mesh_and_refuses_a_mismatch(
    qtbot, styled_app, data_dir, keystore_service, preform
):
    actor, case = approved_case(data_dir)
    section = section_for(qtbot, actor, case, FORM, preform.url)
    assert section.gcode.currentText().startswith("mesh v1")
    assert section.form.labelForField(section.gcode).text() == "Mesh version"
    assert section.device.isVisible() or not section.isVisible()
    section.device.setText(FORM4)
    preform.swap_mesh = True
    text = refused(qtbot, section)
    assert text.startswith("Not printed (mesh v1):") and "reports a different mesh" in text
    assert not preform.printed
    preform.swap_mesh = False
    section.print_button.click()
    qtbot.waitUntil(lambda: section.view.job is not None, timeout=20000)
    qtbot.waitUntil(lambda: section.view.state.text() == "Finished", timeout=30000)
    assert section.view.progress.value() == 1000
    assert [p["job_name"] for p in preform.printed] == [f"{case.pseudonym}-m1"]


def test_formlabs_refuses_an_unapproved_version(
    qtbot, styled_app, data_dir, keystore_service, preform
):
    actor, case = approved_case(data_dir)
    store_version(case, author="tess", radius=9.0)  # v2, never reviewed
    section = section_for(qtbot, actor, case, FORM, preform.url)
    assert section.selected_gcode() == 2
    text = refused(qtbot, section)
    assert text.startswith("Not printed (mesh v2):") and "cannot be printed" in text
    assert not preform.printed and section.view.job is None


def test_an_sl1_prints_on_a_prusalink_resin_printer_with_progress(
    qtbot, styled_app, data_dir, keystore_service, prusalink
):
    actor, case = approved_case(data_dir)
    archive = b"PK\x03\x04" + bytes(range(256)) * 20
    facts = {"mesh_version": 1, "mesh_sha256": case.mesh_sha256(1), "printer": SL1S}
    case.save_sla(archive, facts | {"layers": 412, "resin_ml": 3.24, "print_time_s": 3900})
    Keystore().set(login_name(SL1S), login_secret("maker", "pl-secret"))
    section = section_for(qtbot, actor, case, SL1S, prusalink.url)
    assert section.gcode.currentText() == "s1 · mesh v1 · 412 layers · 3.2 ml · 1:05:00"
    assert not section.device.isVisibleTo(section)
    section.print_button.click()
    qtbot.waitUntil(lambda: section.view.job is not None, timeout=20000)
    seen: set[int] = set()
    qtbot.waitUntil(
        lambda: seen.add(section.view.progress.value()) or section.view.state.text() == "Finished",
        timeout=30000,
    )
    assert any(0 < value < 1000 for value in seen) and section.view.progress.value() == 1000
    assert f"{case.pseudonym}-s1.sl1" in prusalink.files


class _MeshPanel(QtCore.QObject):
    meshChanged = QtCore.Signal()  # noqa: N815 (the Mesh panel's signal name)
    current_version = 1


def test_the_print_panel_slices_an_sl1_for_a_resin_printer(
    qtbot, styled_app, data_dir, keystore_service
):
    actor, case = approved_case(data_dir)
    panel = PrintPanel(_MeshPanel())
    qtbot.addWidget(panel)
    panel.set_actor(actor)
    panel.load_profiles(actor.paths, SL1S)
    panel.set_case(case)
    panel.layer_height.setValue(0.1)
    panel.slice_button.click()
    qtbot.waitUntil(lambda: panel.summary.text().startswith("Stored"), timeout=240000)
    lines = panel.summary.text().splitlines()
    assert lines[0] == "Stored resin slicing s1 from mesh v1."
    assert " layers · " in lines[1] and " ml resin · " in lines[1]
    assert case.sla_versions() == [1]

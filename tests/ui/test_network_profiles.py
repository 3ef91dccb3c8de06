"""PrusaLink and Formlabs in the window: the profile dialog keeps their connection kind (a
shipped SL1S or Form 4B profile must not reopen as USB), tests PrusaLink with its API key and asks
no key for PreForm; the Print section prints an approved G-code on a PrusaLink printer."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.case import Case
from app.printing.connection import login_name, login_secret
from app.printing.profiles import edit_profile, get_printer, save_printer
from app.security.keystore import Keystore
from app.settings import resolve_paths
from app.ui.print_job import PrintSection
from app.ui.profile_dialog import ProfileDialog
from app.workflow import printers, review, users
from app.workflow.actor import Actor
from tests.workflow.conftest import person
from tests.workflow.print_fixtures import store_version

pytest_plugins = ["tests.printing.peers.fixtures"]


def test_prusalink_and_formlabs_profiles_keep_their_kind(
    qtbot, styled_app, data_dir, keystore_service, prusalink
):
    prusalink.api_key = "pl-key"
    dialog = ProfileDialog(get_printer("prusa-sl1s"))
    qtbot.addWidget(dialog)
    assert dialog.kind.currentData() == "prusalink" and dialog.api_key.isEnabled()
    dialog.url.setText(prusalink.url)
    dialog.api_key.setText("pl-key")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✔"), timeout=10000)
    assert "PrusaLink 2.1.2, printer MK4" in dialog.message.text()

    form = ProfileDialog(get_printer("formlabs-form4b"))
    qtbot.addWidget(form)
    assert form.kind.currentData() == "formlabs" and not form.api_key.isEnabled()


def test_the_print_section_prints_on_a_prusalink_printer(
    qtbot, styled_app, data_dir, keystore_service, prusalink
):
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({"PatientName": "TEST^PRINT"}))
    store_version(case, author="tess")
    review.approve(person(actor, "rafael", "reviewer"), case, 1, comment="fits")
    gcode = "M104 S215\nG28\n" + "".join(f"G1 X{i % 40} Y5 E0.1\n" for i in range(200))
    case.save_gcode(gcode, {"mesh_version": 1, "mesh_sha256": case.mesh_sha256(1)})
    profile = edit_profile(
        get_printer("prusa-mk3s"),
        id="mk4-test",
        name="MK4 (test)",
        connection={"kind": "prusalink", "url": prusalink.url},
    )
    save_printer(profile)
    Keystore().set(login_name(profile.id), login_secret("maker", "pl-secret"))
    section = PrintSection()
    qtbot.addWidget(section)
    section.poll_interval = 0.1
    section.set_printers({profile.id: profile}, profile.id)
    section.set_actor(actor)
    section.set_case(case, select=1)
    qtbot.waitUntil(lambda: section.selected_gcode() == 1, timeout=20000)
    assert section.connection.currentText() == f"PrusaLink: {prusalink.url}"
    section.print_button.click()
    qtbot.waitUntil(lambda: section.view.job is not None, timeout=10000)
    qtbot.waitUntil(lambda: section.view.state.text() == "Finished", timeout=20000)
    assert prusalink.files[f"{case.pseudonym}-g1.gcode"] == gcode.encode()


def test_the_dialog_stores_a_prusalink_login_that_then_works(
    qtbot, styled_app, data_dir, keystore_service, prusalink
):
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    dialog = ProfileDialog(get_printer("prusa-sl1s"), actor=actor)
    qtbot.addWidget(dialog)
    assert dialog.user.isEnabled() and dialog.password.isEnabled()
    dialog.url.setText(prusalink.url)
    dialog.user.setText("maker")
    dialog.password.setText("not-it")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✘"), timeout=10000)
    assert "refused the user name or password (HTTP 401)" in dialog.message.text()
    assert "\n" not in dialog.message.text() and "not-it" not in dialog.message.text()
    dialog.password.setText("pl-secret")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✔"), timeout=10000)
    saved = dialog.save()
    assert saved is not None and Keystore().get(login_name(saved.id)) is not None
    assert "pl-secret" not in (resolve_paths(data_dir).printers / f"{saved.id}.json").read_text()
    assert printers.check(actor, saved.id).startswith("PrusaLink 2.1.2")
    form = ProfileDialog(get_printer("formlabs-form4b"), actor=actor)
    qtbot.addWidget(form)
    assert not form.user.isEnabled() and form.url.isEnabled()


def test_the_dialog_tests_a_formlabs_preform_url(
    qtbot, styled_app, data_dir, keystore_service, preform
):
    dialog = ProfileDialog(get_printer("formlabs-form4b"))
    qtbot.addWidget(dialog)
    dialog.url.setText(preform.url)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text()[:1] in ("✔", "✘"), timeout=10000)
    assert dialog.message.text().startswith("✔"), dialog.message.text()

"""The Print panel's print section and job view, driven from the GUI against a simulated Marlin.

A real vault and case: mesh v1 approved by a reviewer, v2 never reviewed, a stored G-code sliced
from each (provenance naming the version's hash). Printing goes through the workflow as the OS
user (the vault's founder, an administrator). The real job core and USB link, the simulated
firmware of ``tests/printing/peers``. Run with::

    xvfb-run -a scripts/with-keyring.sh .venv/bin/pytest tests/ui/test_print_job.py -q
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from PySide6 import QtCore

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.case import Case
from app.printing.marlin import PrinterState
from app.printing.profiles import api_key_name, get_printer
from app.printing.serial_link import LinkOptions
from app.security import audit
from app.security.keystore import Keystore
from app.settings import resolve_paths
from app.ui.print_job import ACTIVE_JOBS, PrintSection, TemperaturePlot, format_duration
from app.ui.profile_dialog import ProfileDialog
from app.workflow import review, users
from app.workflow.actor import Actor
from tests.printing.peers.gcode_samples import commands_of, synthetic_gcode
from tests.workflow.conftest import person
from tests.workflow.print_fixtures import store_version

pytest_plugins = ["tests.printing.peers.fixtures"]

LINK = LinkOptions(connect_timeout=3.0, command_timeout=2.0, temperature_interval=0.3)
PRINTER = "generic-marlin-220"


@pytest.fixture
def actor(data_dir, keystore_service) -> Actor:
    """The OS user: founder of the vault (an administrator, who may print)."""
    me = Actor.current(resolve_paths(data_dir))
    users.init_vault(me)
    return me


@pytest.fixture
def gcode(tmp_path) -> Path:
    return synthetic_gcode(tmp_path / "part.gcode", lines=1500)


@pytest.fixture
def case(actor, gcode) -> Case:
    """Mesh v1 (approved by the reviewer) and v2 (never reviewed); G-code g1 from v1, g2 from
    v2 (the same synthetic print, so the simulator's record can be compared line by line)."""
    case = Case(actor.vault, actor.vault.create_case({"PatientName": "TEST^PRINT"}))
    store_version(case, author="tess")
    store_version(case, author="tess", radius=6.0)
    review.approve(person(actor, "rafael", "reviewer"), case, 1, comment="fits")
    for version in (1, 2):
        provenance = {"mesh_version": version, "mesh_sha256": case.mesh_sha256(version)}
        case.save_gcode(gcode.read_text(), provenance | {"printer": PRINTER})
    return case


@pytest.fixture
def section(qtbot, styled_app, actor, case):
    widget = PrintSection()
    widget.link_options = LINK
    widget.view.confirm = lambda title, text: True
    profile = get_printer(PRINTER)
    widget.set_printers({profile.id: profile}, profile.id)
    widget.set_actor(actor)
    widget.set_case(case, select=1)
    widget.resize(720, 700)
    qtbot.addWidget(widget)
    widget.show()
    yield widget
    job = widget.view.job
    if job is not None and not job.state.done:
        job.cancel()
        job.wait(10)
    if job is not None:
        job.close()
    ACTIVE_JOBS.clear()


def start(section, qtbot):
    """Click Print and wait for the job (connecting runs in the worker)."""
    section.print_button.click()
    qtbot.waitUntil(lambda: section.view.job is not None, timeout=10000)
    return section.view.job


def _is_subsequence(needle: list[str], haystack: list[str]) -> bool:
    it = iter(haystack)
    return all(any(item == other for other in it) for item in needle)


def _actions() -> list[str]:
    return [r["action"] for r in audit.read_records()]


def _check_audit(job, case) -> None:
    """Every step is in the audit log with the G-code's hash, mesh version and profile."""
    actions = _actions()
    for action in ("print.start", "print.pause", "print.resume", "print.finish"):
        assert action in actions
    start = next(r for r in audit.read_records() if r["action"] == "print.start")
    facts = start["facts"]
    assert facts["gcode_sha256"] == case.load_gcode(1).sha256 == job.summary.sha256
    assert facts["mesh_version"] == 1 and facts["mesh_sha256"] == case.mesh_sha256(1)
    assert facts["profile"] == PRINTER and start["case"] == case.pseudonym
    assert facts["file"] == f"{case.pseudonym}-g1.gcode" and facts["transport"] == "usb"
    pause = next(r for r in audit.read_records() if r["action"] == "print.pause")
    assert pause["facts"]["cool_down"] is True and pause["facts"]["job"] == facts["job"]


def test_print_from_the_gui_pause_resume_to_completion(section, marlin, gcode, qtbot, artifacts):
    sim = marlin(delay=0.004)
    view = section.view
    section.connection.setEditText(sim.port)
    assert view.state.text() == "No print job yet."
    section.print_button.click()
    assert not section.print_button.isEnabled(), "one print at a time, from the click on"
    qtbot.waitUntil(lambda: view.job is not None, timeout=10000)
    job = view.job
    assert not section.refusal.isVisible()
    qtbot.waitUntil(
        lambda: view.state.text() == "Printing" and view.progress.value() > 30, timeout=15000
    )
    qtbot.waitUntil(lambda: "/ 210 °C" in view.temperatures.text(), timeout=5000)
    assert view.temperatures.text().startswith("Nozzle") and "Bed" in view.temperatures.text()
    assert view.plot.series().get("T0"), "the live plot has nozzle samples"
    assert "layer" in view.layer.text() and "line" in view.layer.text()
    assert "elapsed" in view.times.text()
    assert view.pause_button.isEnabled() and not view.resume_button.isEnabled()

    view.cool_down.setChecked(True)  # a long pause: the nozzle cools, the bed stays warm
    view.pause_button.click()
    qtbot.waitUntil(lambda: view.state.text() == "Paused", timeout=10000)
    assert view.resume_button.isEnabled() and not view.pause_button.isEnabled()
    qtbot.waitUntil(lambda: sim.targets["T0"] == 0.0, timeout=5000)
    assert sim.targets["B"] == 60.0
    paused_at, plotted = view.progress.value(), view.plot.samples[-1][0]
    qtbot.waitUntil(
        lambda: "Nozzle" in view.temperatures.text() and "/ 210" not in view.temperatures.text(),
        timeout=5000,
    )
    qtbot.wait(300)
    assert view.progress.value() == paused_at, "nothing is fed while paused"
    assert view.plot.samples[-1][0] > plotted, "the plot goes on during the pause"

    # the panel is hidden: the job goes on; shown again, the view catches up
    view.resume_button.click()
    qtbot.waitUntil(lambda: view.state.text() == "Printing", timeout=10000)
    assert sim.targets["T0"] == 210.0, "heated again before printing resumed"
    section.hide()
    before = job.status().line
    qtbot.waitUntil(lambda: job.status().line > before + 100, timeout=10000)
    section.show()
    qtbot.waitUntil(lambda: len(view.plot.samples) >= 4, timeout=5000)
    qtbot.wait(REFRESH_WAIT)
    view.grab().save(str(artifacts / "print-job.png"))
    reopened = PrintSection()  # a panel opened again while the job runs shows that job
    qtbot.addWidget(reopened)
    assert reopened.view.job is job

    qtbot.waitUntil(lambda: view.state.text() == "Finished", timeout=40000)
    assert view.progress.value() == 1000 and section.print_button.isEnabled()
    assert not view.pause_button.isEnabled() and not view.cancel_button.isEnabled()
    assert _is_subsequence(commands_of(gcode), sim.accepted), "every line, in order"
    sent = [c for c in sim.accepted if c in set(commands_of(gcode))]
    assert len(sim.accepted) >= len(commands_of(gcode)) and len(sent) >= len(commands_of(gcode))
    _check_audit(job, section.case)


REFRESH_WAIT = 400


def test_cancel_asks_first_then_stops_the_heaters(section, marlin, qtbot):
    sim = marlin(delay=0.004)
    view = section.view
    section.connection.setEditText(sim.port)
    start(section, qtbot)
    qtbot.waitUntil(
        lambda: view.state.text() == "Printing" and view.progress.value() > 20, timeout=15000
    )
    view.resume()  # not paused: refused, one readable line, the print goes on
    assert view.message.text() == "cannot resume: the job is printing"
    asked = []
    view.confirm = lambda title, text: asked.append(title) or False
    view.cancel_button.click()
    qtbot.wait(300)
    assert asked == ["Cancel the print"] and view.state.text() == "Printing"
    view.confirm = lambda title, text: True
    view.cancel_button.click()
    qtbot.waitUntil(lambda: view.state.text() == "Cancelled", timeout=15000)
    assert view.message.text().startswith("cancelled"), "the stale refusal is gone"
    assert sim.targets == {"T0": 0.0, "B": 0.0}, "heaters off after a cancel"
    assert "print.cancel" in _actions()
    assert not view.cancel_button.isEnabled() and not view.stop_button.isEnabled()


def test_lost_link_offers_resume_from_the_last_line(section, marlin, gcode, qtbot):
    sim = marlin(delay=0.002)
    view = section.view
    section.connection.setEditText(sim.port)
    start(section, qtbot)
    qtbot.waitUntil(lambda: (view.job.status().line or 0) > 300, timeout=15000)
    sim.unplug()
    qtbot.waitUntil(lambda: view.state.text() == "Disconnected", timeout=5000)
    assert "resume" in view.message.toolTip()
    assert view.recover_button.isVisible(), "offered, not done silently"
    point = view.job.resume_point
    assert view.recover_button.text() == f"Resume from line {point.index + 2}…"
    sim2 = marlin(delay=0.0)  # the printer is back, on another port
    section.connection.setEditText(sim2.port)
    view.recover_button.click()
    qtbot.waitUntil(lambda: view.state.text() == "Finished", timeout=30000)
    tail = commands_of(gcode)[point.index + 1 :]
    assert sim2.accepted[-len(tail) :] == tail
    assert "G28 X Y" in sim2.accepted


def test_gcode_of_an_unapproved_mesh_is_refused_with_a_message(section, case, marlin, qtbot):
    sim = marlin()
    section.connection.setEditText(sim.port)
    labels = [section.gcode.itemText(i) for i in range(section.gcode.count())]
    assert labels[0].startswith("g2 · mesh v2") and labels[1].startswith("g1 · mesh v1")
    section.gcode.setCurrentIndex(section.gcode.findData(2))  # sliced from v2: never reviewed
    section.print_button.click()
    qtbot.waitUntil(lambda: section.refusal.text().startswith("Not printed"), timeout=10000)
    text = section.refusal.text()
    assert text.startswith("Not printed (g2): mesh v2 of") and "cannot be printed" in text
    assert "ask a reviewer to approve" in text
    assert section.view.job is None and sim.accepted == []
    assert section.print_button.isEnabled()
    denied = [r for r in audit.read_records() if r["action"] == "access.denied"]
    assert denied[-1]["facts"]["attempted"] == "print" and denied[-1]["case"] == case.pseudonym
    assert "print.start" not in _actions()


def test_emergency_stop_asks_then_halts(section, marlin, qtbot):
    sim = marlin(delay=0.004)
    view = section.view
    section.connection.setEditText(sim.port)
    start(section, qtbot)
    qtbot.waitUntil(lambda: view.state.text() == "Printing", timeout=15000)
    asked = []
    view.confirm = lambda title, text: asked.append(text) or True
    view.stop_button.click()
    assert "M112" in asked[0]
    qtbot.waitUntil(lambda: view.state.text() == "Error", timeout=5000)
    assert "emergency stop" in view.message.text()
    qtbot.waitUntil(lambda: "M112" in sim.stats.emergency, timeout=3000)


def test_a_moonraker_printer_prints_from_the_gui(section, case, moonraker, gcode, qtbot):
    """The profile's URL, the API key from the keystore, upload with checksum, job to the end."""
    from app.printing.profiles import edit_profile, save_printer

    profile = edit_profile(
        get_printer(PRINTER),
        id="klipper-test",
        name="Klipper (test)",
        connection={"kind": "moonraker", "url": moonraker.url},
    )
    save_printer(profile)
    Keystore().set(api_key_name(profile), b"moonraker-test-key")
    moonraker.lines_per_second = 800
    section.poll_interval = 0.2
    section.set_printers({profile.id: profile}, profile.id)
    assert section.connection.currentText() == f"Moonraker: {moonraker.url}"
    job = start(section, qtbot)
    view = section.view
    qtbot.waitUntil(lambda: view.state.text() == "Finished", timeout=20000)
    assert view.progress.value() == 1000
    assert job.remote_name == f"{case.pseudonym}-g1.gcode", "pseudonym and G-code number only"
    assert moonraker.files[job.remote_name] == gcode.read_bytes()


def test_profile_dialog_validates_and_keeps_the_api_key_in_the_keystore(
    qtbot, styled_app, data_dir, keystore_service, moonraker
):
    from app.settings import resolve_paths

    dialog = ProfileDialog(get_printer("generic-marlin-220"))
    qtbot.addWidget(dialog)
    assert dialog.id.text() == "generic-marlin-220-copy"
    dialog.kind.setCurrentIndex(dialog.kind.findData("moonraker"))
    dialog.url.setText("printer.local:7125")
    dialog.api_key.setText("moonraker-test-key")
    assert dialog.save() is None
    assert "connection.url must be an http(s) URL" in dialog.message.text()
    assert not (resolve_paths().printers / "generic-marlin-220-copy.json").exists()
    dialog.baud.setCurrentText("fast")
    dialog.url.setText(moonraker.url)
    assert dialog.save() is None and "baud rate 'fast'" in dialog.message.text()
    dialog.baud.setCurrentText("250000")

    # Test connection: the typed key against the Moonraker contract server, in the worker
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✔"), timeout=10000)
    assert "Klipper ready" in dialog.message.text()
    dialog.api_key.setText("wrong-key")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✘"), timeout=10000)
    dialog.api_key.setText("moonraker-test-key")

    saved = dialog.save()
    assert saved is not None and saved.connection.kind == "moonraker"
    path = resolve_paths().printers / "generic-marlin-220-copy.json"
    text = path.read_text()
    assert "moonraker-test-key" not in text and moonraker.url in text
    assert json.loads(text)["connection"]["baud_rate"] == 250000
    assert Keystore().get(api_key_name(saved)) == b"moonraker-test-key"


@pytest.mark.usefixtures("styled_app")
def test_the_print_panel_slices_into_the_case_and_lists_its_gcode(
    qtbot, actor, case, tmp_path, artifacts
):
    from app.ui.print_panel import PrintPanel

    class MeshPanel(QtCore.QObject):
        meshChanged = QtCore.Signal()  # noqa: N815 (the Mesh panel's signal name)
        current_version = 1

    panel = PrintPanel(MeshPanel())
    qtbot.addWidget(panel)
    panel.load_profiles(actor.paths, PRINTER)
    panel.set_actor(actor)
    panel.set_case(case)
    section = panel.findChild(PrintSection)
    assert section is not None and section.profile.currentData() == PRINTER
    assert panel.version.currentData() == 1, "the Mesh panel's version is the one to slice"
    assert [panel.version.itemData(i) for i in range(panel.version.count())] == [2, 1]
    assert section.selected_gcode() == 2, "newest stored G-code first"

    panel.layer_height.setValue(0.3)
    panel.infill.setValue(10)
    panel.slice_button.click()
    qtbot.waitUntil(lambda: panel.summary.text().startswith("Stored G-code g3"), timeout=120000)
    stored = case.load_gcode(3)
    assert stored.provenance["mesh_version"] == 1
    assert stored.provenance["mesh_sha256"] == case.mesh_sha256(1)
    assert section.selected_gcode() == 3 and section.gcode.currentText().startswith("g3 · mesh v1")
    assert panel.layer.isEnabled() and "layer" in panel.layer_label.text()
    slices = [r for r in audit.read_records() if r["action"] == "slice"]
    assert slices[-1]["facts"]["gcode_version"] == 3 and slices[-1]["user"] == actor.user

    copy = tmp_path / "copy.gcode"
    panel.save_gcode(str(copy))
    assert copy.read_text() == stored.text

    panel.set_case(None)  # no case open: refused, nothing started
    section.print_button.click()
    assert "open a case" in section.refusal.text() and section.view.job is None
    panel.set_case(case)
    panel.resize(460, 1100)
    panel.show()
    qtbot.waitExposed(panel)
    panel.grab().save(str(artifacts / "print-panel-printing.png"))


def test_plot_and_durations():
    from app.printing.marlin import Temperature

    plot = TemperaturePlot()
    samples = [
        (t, {"T0": Temperature(20 + t, 210.0), "B": Temperature(20, 60.0)})
        for t in range(0, 900, 10)
    ]
    plot.set_history(samples)
    series = plot.series()
    assert set(series) == {"T0", "B"}
    assert series["T0"][0][0] >= 890 - 600, "only the last ten minutes"
    assert format_duration(None) == "–" and format_duration(65) == "1:05"
    assert format_duration(3725) == "1:02:05"
    assert PrinterState.PRINTING.active


def test_connection_list_puts_printer_like_ports_first(qtbot, styled_app, data_dir, monkeypatch):
    from app.printing import serial_link
    from app.printing.serial_link import PortInfo

    ports = [
        PortInfo("/dev/ttyS0", "", None, None, -3),
        PortInfo("/dev/ttyUSB0", "CH340 serial", 0x1A86, 0x7523, 6),
    ]
    monkeypatch.setattr(
        serial_link, "list_ports", lambda: sorted(ports, key=lambda p: (-p.score, p.device))
    )
    section = PrintSection()
    qtbot.addWidget(section)
    profile = get_printer("generic-marlin-220")
    section.set_printers({profile.id: profile}, profile.id)
    items = [section.connection.itemText(i) for i in range(section.connection.count())]
    assert items[0] == "USB: most printer-like port"
    assert items[1].startswith("USB: /dev/ttyUSB0 (CH340 serial)") and "printer?" in items[1]
    assert items[2] == "USB: /dev/ttyS0"
    assert section.connection_choice() == ("usb", "auto")
    section.connection.setCurrentIndex(1)
    assert section.connection_choice() == ("usb", "/dev/ttyUSB0")
    section.connection.setEditText("http://octopi.local")
    assert section.connection_choice() == ("octoprint", "http://octopi.local")
    section.connection.setEditText("/dev/ttyACM3")
    assert section.connection_choice() == ("usb", "/dev/ttyACM3")


def test_edit_profile_from_the_section_saves_a_copy_and_selects_it(
    qtbot, styled_app, data_dir, keystore_service, monkeypatch
):
    def fill_and_save(dialog):
        dialog.name.setText("My Marlin")
        return dialog.save() is not None

    monkeypatch.setattr(ProfileDialog, "exec", fill_and_save)
    section = PrintSection()
    qtbot.addWidget(section)
    profile = get_printer("generic-marlin-220")
    section.set_printers({profile.id: profile}, profile.id)
    section.edit_profile.click()
    assert section.profile.currentData() == "generic-marlin-220-copy"
    assert section.profile.currentText() == "My Marlin"
    assert section.profile.findData("generic-marlin-220") >= 0, "the shipped one stays"

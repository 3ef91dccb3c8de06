"""The Print section's gate over the networked printers: G-code of a version never reviewed,
or of a mesh that is no version of the case, is refused with one line and nothing is uploaded
to OctoPrint or Moonraker, while approved G-code prints (USB: tests/ui/test_print_job.py). Same
world as test_print_job: mesh v1 approved, v2 never reviewed, g1 sliced from v1, g2 from v2.
"""

from __future__ import annotations

import pytest

from app.printing.profiles import api_key_name, edit_profile, get_printer, save_printer
from app.security import audit
from app.security.keystore import Keystore
from tests.ui import test_print_job as world

pytest_plugins = ["tests.printing.peers.fixtures"]
PRINTER = world.PRINTER
actor, case, gcode, section = world.actor, world.case, world.gcode, world.section  # the fixtures


def _networked(request, kind: str):
    """A profile of ``kind`` pointing at a running server with its key in the keystore; the
    server and how to list what it received."""
    if kind == "moonraker":
        server = request.getfixturevalue("moonraker")
        key, files = "moonraker-test-key", lambda: set(server.files)
    else:
        server = request.getfixturevalue("octoprint_server")
        server.wait_operational()
        key = server.api_key

        def files() -> set[str]:
            listed = server.request("GET", "/api/files/local")["files"]
            return {f["name"] for f in listed}

    profile = edit_profile(
        get_printer(PRINTER),
        id=f"{kind}-gate",
        name=f"{kind} (gate test)",
        connection={"kind": kind, "url": server.url},
    )
    save_printer(profile)
    Keystore().set(api_key_name(profile), key.encode())
    return profile, files


@pytest.mark.parametrize("kind", ["moonraker", "octoprint"])
def test_unapproved_and_foreign_gcode_are_refused_over_the_network(
    request, section, case, qtbot, kind
):
    provenance = {"mesh_version": None, "mesh_sha256": "0" * 64, "printer": PRINTER}
    foreign = case.save_gcode(case.load_gcode(1).text, provenance).number
    profile, uploaded = _networked(request, kind)
    before = uploaded()
    section.set_printers({profile.id: profile}, profile.id)
    section.set_case(case, select=1)
    for number, reason in ((2, "mesh v2 of"), (foreign, "was not sliced from a mesh version")):
        section.gcode.setCurrentIndex(section.gcode.findData(number))
        section.print_button.click()
        qtbot.waitUntil(lambda: section.refusal.text().startswith("Not printed"), timeout=10000)
        text = section.refusal.text()
        assert text.startswith(f"Not printed (g{number}): ") and reason in text
        assert section.view.job is None and section.print_button.isEnabled()
        section.refusal.setText("")
    assert uploaded() == before
    denied = [r for r in audit.read_records() if r["action"] == "access.denied"]
    assert [r["facts"]["attempted"] for r in denied[-2:]] == ["print", "print"]
    assert not any(r["action"] == "print.start" for r in audit.read_records())


def test_approved_gcode_prints_on_octoprint_from_the_gui(request, section, case, qtbot, tmp_path):
    """The other side of the gate: G-code sliced from the approved v1 is uploaded to OctoPrint
    under the pseudonym and G-code number, and runs to the end."""
    from tests.printing.peers.gcode_samples import synthetic_gcode

    # no waiting for heat, and moves at ten times the feed rates: 2 s of virtual printing, not 30
    text = synthetic_gcode(tmp_path / "short.gcode", lines=300, wait_for_heat=False).read_text()
    provenance = {"mesh_version": 1, "mesh_sha256": case.mesh_sha256(1), "printer": PRINTER}
    number = case.save_gcode(text, provenance).number
    profile, uploaded = _networked(request, "octoprint")
    section.poll_interval = 0.2
    section.set_printers({profile.id: profile}, profile.id)
    section.set_case(case, select=1)
    section.gcode.setCurrentIndex(section.gcode.findData(number))
    with request.getfixturevalue("octoprint_server").fast_moves():
        job = world.start(section, qtbot)
        qtbot.waitUntil(lambda: section.view.state.text() == "Finished", timeout=120000)
    assert job.remote_name == f"{case.pseudonym}-g{number}.gcode" in uploaded()
    start = next(r for r in audit.read_records() if r["action"] == "print.start")
    assert start["facts"]["gcode_version"] == number and start["facts"]["transport"] == "octoprint"

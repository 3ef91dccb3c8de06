"""The print record names the machine: the serial number the printer reports (USB Marlin's
M115 UUID, Moonraker's /machine/system_info), else its profile's, which ``medprint
printer-serial`` sets; the trace's print link carries it."""

from __future__ import annotations

import pytest

from app.cli import main
from app.errors import PrintingError
from app.printing.marlin import PrinterState
from app.printing.profiles import api_key_name, get_printer
from app.printing.serial_link import LinkOptions
from app.security import audit
from app.security.keystore import Keystore
from app.workflow import printing, trace
from app.workflow import slice as slicing
from tests.printing.peers.gcode_samples import synthetic_gcode

pytest_plugins = ["tests.printing.peers.fixtures", "tests.workflow.print_fixtures"]

PRINTER = "generic-marlin-220"
LINK = LinkOptions(connect_timeout=3.0, command_timeout=1.0)
SIM_UUID = "cede2a2f-41a2-4748-9b12-c55c62f367ff"  # what the simulated Marlin's M115 says
PLATE = "SN-PLATE-0042"


def _facts(actor, action: str) -> dict:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action][-1]["facts"]


def _print(actor, case, number: int, **where) -> None:
    job = printing.start(
        actor, case, gcode_version=number, printer=PRINTER, link_options=LINK,
        poll_interval=0.1, **where,
    )  # fmt: skip
    try:
        assert job.wait(300) == PrinterState.FINISHED, job.status().message
    finally:
        job.close()


def test_usb_marlin_reports_its_uuid_over_the_profiles_serial(approved_case, people, marlin):
    tess = people["tess"]
    assert printing.set_serial(tess, PRINTER, PLATE).serial == PLATE
    assert get_printer(PRINTER, tess.paths).serial == PLATE
    assert _facts(tess, "printer.serial") == {"profile": PRINTER, "serial": PLATE}
    sliced = slicing.slice_version(tess, approved_case, version=1, printer=PRINTER)
    sim = marlin(delay=0.0)
    _print(tess, approved_case, sliced.gcode.number, port=sim.port)
    start = _facts(tess, "print.start")
    assert start["serial"] == PLATE and start["serial_source"] == "profile"
    finish = _facts(tess, "print.finish")
    assert finish["serial"] == SIM_UUID and finish["serial_source"] == "printer (M115 UUID)"
    assert finish["machine"] == "MedPrint Sim" and finish["profile"] == PRINTER
    link = next(x for x in trace.trace(tess, approved_case).links if x.name == "print")
    assert link.status == "ok" and link.facts["serial"] == SIM_UUID
    assert link.facts["profile"] == PRINTER and link.facts["machine"] == "MedPrint Sim"


@pytest.mark.parametrize(
    "answer",
    [
        (
            {"cpu_info": {"serial_number": "100000003231d0f7", "model": "Raspberry Pi 4"},
             "product_info": {"serial_number": "VC-2211-0042", "machine_name": "Voron 2.4"}},
            "VC-2211-0042",
            "printer (Moonraker product_info)",
        ),
        (
            {"cpu_info": {"serial_number": "100000003231d0f7", "model": "Raspberry Pi 4"}},
            "100000003231d0f7",
            "printer host (Moonraker cpu_info)",
        ),
        (None, PLATE, "profile"),  # an older Moonraker: no system_info
    ],
)  # fmt: skip
def test_moonraker_system_info_or_the_profile(approved_case, people, moonraker, tmp_path, answer):
    system_info, serial, source = answer
    tess = people["tess"]
    printing.set_serial(tess, PRINTER, PLATE)
    Keystore().set(api_key_name(PRINTER), b"moonraker-test-key")
    moonraker.system_info = system_info
    text = synthetic_gcode(tmp_path / "short.gcode", lines=300).read_text()
    mesh_sha = approved_case.mesh_sha256(1)
    number = approved_case.save_gcode(
        text, {"mesh_version": 1, "mesh_sha256": mesh_sha, "printer": PRINTER}
    ).number
    _print(tess, approved_case, number, url=moonraker.url, kind="moonraker")
    finish = _facts(tess, "print.finish")
    assert finish["serial"] == serial and finish["serial_source"] == source


def test_cli_sets_a_profiles_serial_and_refuses_a_bad_one(admin, capsys):
    assert main(["printer-serial", PRINTER, PLATE]) == 0
    assert PLATE in capsys.readouterr().out
    assert get_printer(PRINTER, admin.paths).serial == PLATE
    assert main(["printer-serial", PRINTER, "SN 42; DOE"]) == 2
    err = capsys.readouterr().err
    assert "'serial' must be" in err and len(err.strip().splitlines()) == 1
    assert get_printer(PRINTER, admin.paths).serial == PLATE
    with pytest.raises(PrintingError, match="'serial' must be"):
        printing.set_serial(admin, PRINTER, "x" * 65)

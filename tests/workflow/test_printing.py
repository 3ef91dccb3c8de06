"""Printing through the workflow: provenance, not trust, over USB, OctoPrint and Moonraker.

The printers are real components: the simulated Marlin on a pty, a real OctoPrint (virtual
printer) and the Moonraker contract server (tests/printing/peers). The CLI runs as the OS user,
who founded the vault (an administrator, who may print too).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.*

from app.case import Case
from app.errors import AccessDenied
from app.printing.marlin import PrinterState, clean_command
from app.printing.profiles import api_key_name
from app.printing.serial_link import LinkOptions
from app.printing.slicer import SliceSettings
from app.security import audit
from app.security.keystore import Keystore
from app.workflow import printing, review
from app.workflow import slice as slicing
from tests.printing.peers.gcode_samples import synthetic_gcode

pytest_plugins = ["tests.printing.peers.fixtures", "tests.workflow.print_fixtures"]

PRINTER = "generic-marlin-220"
LINK = LinkOptions(connect_timeout=3.0, command_timeout=1.0)
MOONRAKER_KEY = "moonraker-test-key"


def commands(text: str) -> list[str]:
    return [c for c in (clean_command(line) for line in text.splitlines()) if c]


def received(sim) -> list[str]:
    """What the simulator was sent, without the handshake the host adds."""
    return [c for c in sim.accepted if c not in ("M110 N0", "M115") and not c.startswith("M155")]


def store_gcode(case: Case, version: int | None, text: str) -> int:
    """A stored G-code whose provenance names mesh ``version`` (None: a hash of no version)."""
    mesh_sha = case.mesh_sha256(version) if version is not None else "0" * 64
    provenance = {"mesh_version": version, "mesh_sha256": mesh_sha, "printer": PRINTER}
    return case.save_gcode(text, provenance).number


@pytest.fixture
def short_text(tmp_path) -> str:
    """400 lines that set the temperatures without waiting for them (OctoPrint's printer
    heats in real time: 20 s of a 34 s test)."""
    path = synthetic_gcode(tmp_path / "short.gcode", lines=400, wait_for_heat=False)
    return path.read_text()


def actions(actor) -> list[str]:
    return [r["action"] for r in audit.read_records(actor.paths)]


def records(actor, action) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


# --- where to print: the three transports --------------------------------------------------------


class Transport:
    """One printer to print on, and what it received."""

    def __init__(self, name, where, got):
        self.name, self.where, self._got = name, where, got

    def got(self, case: Case, number: int) -> list[str] | None:
        return self._got(f"{case.pseudonym}-g{number}.gcode")


@pytest.fixture(params=["usb", "octoprint", "moonraker"])
def transport(request, marlin, keystore_service) -> Iterator[Transport]:
    if request.param == "usb":
        sim = marlin(delay=0.0)
        yield Transport("usb", {"port": sim.port}, lambda _name: received(sim) or None)
    elif request.param == "moonraker":
        server = request.getfixturevalue("moonraker")
        Keystore().set(api_key_name(PRINTER), MOONRAKER_KEY.encode())
        where = {"url": server.url, "kind": "moonraker"}
        yield Transport("moonraker", where, lambda name: _text(server.files.get(name)))
    else:
        server = request.getfixturevalue("octoprint_server")
        server.wait_operational()
        Keystore().set(api_key_name(PRINTER), server.api_key.encode())
        where = {"url": server.url, "kind": "octoprint"}
        with server.fast_moves():
            yield Transport("octoprint", where, lambda name: _octoprint_has(server, name))


def _text(data: bytes | None) -> list[str] | None:
    return commands(data.decode()) if data is not None else None


def _octoprint_has(server, name: str) -> list[str] | None:
    files = server.request("GET", "/api/files/local")["files"]
    return ["uploaded"] if name in [f["name"] for f in files] else None


# --- the gate over every transport --------------------------------------------------------------


def test_unapproved_gcode_is_refused_and_nothing_reaches_the_printer(
    add_version, sphere_case, people, transport, short_text
):
    tess = people["tess"]
    version = add_version(sphere_case)  # never reviewed
    number = store_gcode(sphere_case, version, short_text)
    with pytest.raises(AccessDenied, match=rf"mesh v{version} of .* cannot be printed"):
        printing.start(tess, sphere_case, printer=PRINTER, link_options=LINK, **transport.where)
    assert transport.got(sphere_case, number) is None
    [denied] = records(tess, "access.denied")
    assert denied["facts"]["attempted"] == "print" and denied["case"] == sphere_case.pseudonym
    assert "print.start" not in actions(tess)


def test_approved_gcode_prints_and_is_audited(approved_case, people, transport, short_text):
    tess = people["tess"]
    number = store_gcode(approved_case, 1, short_text)
    job = printing.start(
        tess,
        approved_case,
        gcode_version=number,
        printer=PRINTER,
        link_options=LINK,
        poll_interval=0.2,
        **transport.where,
    )
    try:
        assert job.wait(120) == PrinterState.FINISHED, job.status().message
    finally:
        job.close()
    got = transport.got(approved_case, number)
    assert got == (["uploaded"] if transport.name == "octoprint" else commands(short_text))
    [start] = records(tess, "print.start")
    facts = start["facts"]
    assert start["case"] == approved_case.pseudonym and start["user"] == "tess"
    stored = approved_case.load_gcode(number)
    assert facts["gcode_sha256"] == stored.sha256 and facts["gcode_version"] == number
    assert facts["mesh_sha256"] == approved_case.mesh_sha256(1) and facts["mesh_version"] == 1
    assert facts["transport"] == transport.name and facts["profile"] == PRINTER
    assert facts["file"] == f"{approved_case.pseudonym}-g{number}.gcode"
    assert facts["approval_id"] and facts["override_ids"] == []
    finish = records(tess, "print.finish")
    assert len(finish) == 1 and finish[0]["facts"]["job"] == facts["job"]


# --- provenance -----------------------------------------------------------------------------------


def test_slice_v1_then_print_and_an_edited_mesh_needs_its_own_approval(
    add_version, approved_case, people, marlin
):
    """Approve v1, slice v1: it prints. An edit makes v2; its G-code is refused until v2 is
    approved, while v1's G-code still prints (a new version does not void v1's approval)."""
    tess = people["tess"]
    fast = SliceSettings(layer_height=0.3, first_layer_height=0.3, infill_density=10.0)
    sliced = slicing.slice_version(tess, approved_case, version=1, printer=PRINTER, settings=fast)
    sim = marlin(delay=0.0)
    job = printing.start(tess, approved_case, printer=PRINTER, port=sim.port, link_options=LINK)
    try:
        assert job.wait(300) == PrinterState.FINISHED, job.status().message
    finally:
        job.close()
    assert received(sim) == commands(sliced.gcode.text), "the stored G-code, every line in order"

    v2 = add_version(approved_case, radius=6.0)  # "edited": a new version
    of_v2 = slicing.slice_version(tess, approved_case, version=v2, printer=PRINTER, settings=fast)
    with pytest.raises(AccessDenied, match=f"mesh v{v2} .* cannot be printed"):
        printing.start(tess, approved_case, printer=PRINTER, port=sim.port)
    assert of_v2.gcode.number == 2
    _start_and_cancel(tess, approved_case, marlin, gcode_version=1)  # v1's approval stands
    review.approve(people["rafael"], approved_case, v2)
    _start_and_cancel(tess, approved_case, marlin, gcode_version=2)


def _start_and_cancel(actor, case, marlin, **kwargs) -> None:
    job = printing.start(
        actor, case, printer=PRINTER, port=marlin().port, link_options=LINK, **kwargs
    )
    try:
        assert job.state == PrinterState.PRINTING
        printing.cancel(actor, job)
        assert job.wait(30) == PrinterState.CANCELLED
    finally:
        job.close()


def test_gcode_whose_mesh_hash_is_no_version_of_the_case_is_refused(
    approved_case, people, marlin, short_text
):
    number = store_gcode(approved_case, None, short_text)
    sim = marlin()
    with pytest.raises(AccessDenied, match=rf"G-code g{number} was not sliced from a mesh version"):
        printing.start(people["tess"], approved_case, printer=PRINTER, port=sim.port)
    assert received(sim) == []
    assert records(people["tess"], "access.denied")[-1]["facts"]["reason"] == "foreign-gcode"


@pytest.mark.parametrize("who", ["rafael", "nemo"])
def test_reviewer_and_no_role_may_not_print(approved_case, people, marlin, short_text, who):
    store_gcode(approved_case, 1, short_text)
    sim = marlin()
    with pytest.raises(AccessDenied, match="may not print"):
        printing.start(people[who], approved_case, printer=PRINTER, port=sim.port)
    assert received(sim) == [] and records(people[who], "access.denied")


# --- a loose G-code file --------------------------------------------------------------------------


def test_loose_file_needs_an_administrators_override(approved_case, people, marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "elsewhere.gcode", lines=300)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    sim = marlin(delay=0.0)
    tess, ada = people["tess"], people["ada"]
    with pytest.raises(AccessDenied, match="not sliced here from an approved mesh version"):
        printing.start_file(tess, approved_case, path, printer=PRINTER, port=sim.port)
    with pytest.raises(AccessDenied, match="may not review override"):
        printing.start_file(tess, approved_case, path, reason="vendor file", printer=PRINTER)
    assert received(sim) == []

    job = printing.start_file(
        ada,
        approved_case,
        path,
        reason="vendor's calibrated G-code",
        printer=PRINTER,
        port=sim.port,
        link_options=LINK,
    )
    try:
        assert job.wait(60) == PrinterState.FINISHED, job.status().message
    finally:
        job.close()
    assert received(sim) == commands(path.read_text())
    [override] = records(ada, "review.override")
    assert (
        override["facts"]["kind"] == "foreign-gcode" and override["facts"]["subject_sha256"] == sha
    )
    start = records(ada, "print.start")[-1]["facts"]
    assert start["gcode_sha256"] == sha and start["override_ids"] == [
        override["facts"]["record_id"]
    ]
    assert start["file"] == f"{approved_case.pseudonym}-x{sha[:12]}.gcode"
    assert start["gcode_version"] is None and start["mesh_sha256"] is None


# --- controls ---------------------------------------------------------------------------------------


def test_pause_resume_cancel_are_audited_with_who_did_it(approved_case, people, marlin, tmp_path):
    text = synthetic_gcode(tmp_path / "long.gcode", lines=3000).read_text()
    store_gcode(approved_case, 1, text)
    sim = marlin(delay=0.001)
    tess, ada = people["tess"], people["ada"]
    job = printing.start(tess, approved_case, printer=PRINTER, port=sim.port, link_options=LINK)
    try:
        _wait(lambda: (job.status().line or 0) > 200)
        with pytest.raises(AccessDenied, match="may not print"):
            printing.pause(people["rafael"], job)
        assert job.state == PrinterState.PRINTING, "a refusal leaves the print alone"
        printing.pause(tess, job)
        _wait(lambda: job.state == PrinterState.PAUSED)
        printing.resume(ada, job)
        _wait(lambda: job.state == PrinterState.PRINTING)
        printing.cancel(tess, job)
        assert job.wait(30) == PrinterState.CANCELLED
    finally:
        job.close()
    trail = [
        (r["action"], r["user"])
        for r in audit.read_records(tess.paths)
        if r["action"].startswith("print.")
    ]
    assert trail == [
        ("print.start", "tess"),
        ("print.pause", "tess"),
        ("print.resume", "ada"),
        ("print.cancel", "tess"),
        ("print.cancelled", "tess"),
    ]


def test_a_lost_link_is_recovered_on_request_and_audited(approved_case, people, marlin, tmp_path):
    text = synthetic_gcode(tmp_path / "long.gcode", lines=3000).read_text()
    store_gcode(approved_case, 1, text)
    sim = marlin(delay=0.0005)
    tess = people["tess"]
    job = printing.start(tess, approved_case, printer=PRINTER, port=sim.port, link_options=LINK)
    try:
        _wait(lambda: (job.status().line or 0) > 500)
        sim.unplug()
        assert job.wait(5) == PrinterState.DISCONNECTED
        point = job.resume_point
        sim2 = marlin(delay=0.0)
        printing.recover(tess, job, after=point.index - 5, port=sim2.port)
        assert job.wait(60) == PrinterState.FINISHED
    finally:
        job.close()
    tail = commands(text)[point.index - 4 :]
    assert sim2.accepted[-len(tail) :] == tail, "five commands repeated, then the rest"
    [recover] = records(tess, "print.recover")
    assert recover["facts"]["resume_from"] == point.index - 4
    assert [a for a in actions(tess) if a.startswith("print.")] == [
        "print.start",
        "print.disconnect",
        "print.recover",
        "print.finish",
    ]


def _wait(predicate, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# --- the CLI ------------------------------------------------------------------------------------------


def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_cli_refuses_unapproved_and_prints_approved_over_usb(
    add_version, sphere_case, people, marlin, short_text
):
    version = add_version(sphere_case)
    number = store_gcode(sphere_case, version, short_text)
    sim = marlin(delay=0.0)
    base = ["print", sphere_case.pseudonym, "--printer", PRINTER, "--port", sim.port]
    refused = run_cli(*base)
    assert refused.returncode == 2
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("medprint: error: mesh v1 of") and "cannot be printed" in last
    assert received(sim) == []

    review.approve(people["rafael"], sphere_case, version)
    done = run_cli(*base, "--gcode-version", str(number), "--json")
    assert done.returncode == 0, done.stderr
    assert '"state": "finished"' in done.stdout
    assert received(sim) == commands(short_text)
    [start] = [r for r in records(people["founder"], "print.start")]
    assert start["facts"]["gcode_sha256"] == sphere_case.load_gcode(number).sha256
    assert start["user"] == people["founder"].user


def _cli_where(transport: Transport) -> list[str]:
    if "port" in transport.where:
        return ["--port", transport.where["port"]]
    return ["--url", transport.where["url"], "--kind", transport.where["kind"]]


def test_cli_refuses_unapproved_edited_and_foreign_gcode_on_every_transport(
    add_version, approved_case, transport, short_text
):
    """From the command line, over USB, OctoPrint and Moonraker: G-code of a version never
    reviewed, of an edit of the approved version (its approval does not carry over) and of a
    mesh that is no version of the case is refused in one line; nothing reaches the printer."""
    from tests.workflow.print_fixtures import QA_PASSED, sphere_stl  # a plugin here

    case = approved_case
    never_reviewed = add_version(case, radius=7.0)
    edited = case.save_mesh_version(
        {"sphere": sphere_stl(9.0)}, qa=QA_PASSED, info={"author": "tess", "parent_version": 1}
    )
    refused = {
        store_gcode(case, never_reviewed, short_text): f"mesh v{never_reviewed} of",
        store_gcode(case, edited, short_text): f"mesh v{edited} of",
        store_gcode(case, None, short_text): "was not sliced from a mesh version",
    }
    base = ["print", case.pseudonym, "--printer", PRINTER, *_cli_where(transport)]
    for number, reason in refused.items():
        proc = run_cli(*base, "--gcode-version", str(number))
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2 and last.startswith("medprint: error: ") and reason in last
        assert "Traceback" not in proc.stderr
        assert transport.got(case, number) is None
    denied = [r for r in audit.read_records() if r["action"] == "access.denied"]
    assert [r["facts"]["attempted"] for r in denied[-3:]] == ["print"] * 3


def test_cli_loose_file_needs_override_and_reason(approved_case, people, marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "loose.gcode", lines=300)
    sim = marlin(delay=0.0)
    base = ["print", approved_case.pseudonym, "--gcode-file", str(path), "--printer", PRINTER]
    base += ["--port", sim.port]
    refused = run_cli(*base)
    assert refused.returncode == 2 and "with --override" in refused.stderr
    assert received(sim) == []
    no_reason = run_cli(*base, "--override")
    assert no_reason.returncode == 2 and "needs --reason TEXT" in no_reason.stderr
    done = run_cli(*base, "--override", "--reason", "vendor's calibrated G-code")
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout and received(sim) == commands(path.read_text())


def test_cli_prints_through_moonraker_with_the_key_from_the_keystore(
    approved_case, moonraker, short_text
):
    number = store_gcode(approved_case, 1, short_text)
    store = Keystore()
    command = ["print", approved_case.pseudonym, "--printer", PRINTER]
    command += ["--url", moonraker.url, "--kind", "moonraker"]
    store.set(api_key_name(PRINTER), b"not-the-key")
    refused = run_cli(*command)
    assert refused.returncode == 2
    assert "refused the API key (HTTP 401)" in refused.stderr.strip().splitlines()[-1]
    store.set(api_key_name(PRINTER), MOONRAKER_KEY.encode())
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr
    name = f"{approved_case.pseudonym}-g{number}.gcode"
    assert moonraker.files[name] == short_text.encode()


def test_cli_missing_port_is_one_clear_line(approved_case, short_text):
    store_gcode(approved_case, 1, short_text)
    proc = run_cli(
        "print", approved_case.pseudonym, "--printer", PRINTER, "--port", "/dev/ttyMEDPRINT-NONE"
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("medprint: error: port /dev/ttyMEDPRINT-NONE does not exist")
    assert "Traceback" not in proc.stderr

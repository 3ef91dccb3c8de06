"""Our PrusaLink client against the contract server (PrusaLink's published v1 API)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.errors import PrinterConnectionError
from app.printing.backends.prusalink import PrusaLinkClient
from app.printing.connection import ConnectionSettings, check_connection, open_job
from app.printing.marlin import PrinterState
from tests.printing.peers.octoprint_server import free_port
from tests.printing.peers.prusalink_server import SERIAL

pytest_plugins = ["tests.printing.peers.fixtures"]

PASSWORD = "pl-secret"


def gcode(layers: int = 5) -> bytes:
    lines = ["M140 S60", "M104 S215", "G28", "G90", "M83"]
    for layer in range(layers):
        lines += [";LAYER_CHANGE", f"G1 Z{0.2 * (layer + 1):.1f}"]
        lines += [f"G1 X{100 + i % 20} Y{100 + i % 13} E0.04 F1800" for i in range(50)]
    return ("\n".join([*lines, "M104 S0", "M140 S0", "M84"]) + "\n").encode()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event, facts):
        self.events.append((event, facts))

    @property
    def actions(self) -> list[str]:
        return [event for event, _ in self.events]


def settings(server, password: str = PASSWORD) -> ConnectionSettings:
    return ConnectionSettings(kind="prusalink", url=server.url, api_key=password, user="maker")


def make_job(server, data, recorder, name="C-TEST-04-g1.gcode", **kwargs):
    return open_job(
        data,
        settings(server),
        printer="mk4",
        remote_name=name,
        on_event=recorder,
        poll_interval=0.05,
        **kwargs,
    )


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_digest_login_upload_print_and_finish(prusalink):
    prusalink.percent_per_second = 25
    data = gcode()
    recorder = Recorder()
    progress, temps = [], []
    job = make_job(
        prusalink,
        data,
        recorder,
        on_progress=lambda s: progress.append(s.progress),
        on_temperature=temps.append,
    )
    job.start()
    assert job.wait(30) == PrinterState.FINISHED, job.status().message
    assert prusalink.files["C-TEST-04-g1.gcode"] == data
    calls = [(m, p) for m, p in prusalink.requests]
    assert ("PUT", "/api/v1/files/usb/C-TEST-04-g1.gcode") in calls
    assert ("POST", "/api/v1/files/usb/C-TEST-04-g1.gcode") in calls
    assert any(0.0 < p < 1.0 for p in progress), "progress is reported as it runs"
    assert job.status().progress == 1.0
    assert any(t["T0"].target == 215.0 and t["B"].target == 60.0 for t in temps)
    assert recorder.actions == ["finish"]
    facts = recorder.events[0][1]
    assert facts["serial"] == SERIAL and facts["transport"] == "prusalink"


def test_connection_test_names_version_and_printer(prusalink):
    assert check_connection(settings(prusalink)) == "PrusaLink 2.1.2, printer MK4 idle"


def test_wrong_password_is_one_clear_line(prusalink):
    client = PrusaLinkClient(prusalink.url, "wrong", user="maker")
    with pytest.raises(PrinterConnectionError) as caught:
        client.test_connection()
    message = str(caught.value)
    assert "refused the user name or password (HTTP 401)" in message
    assert "\n" not in message and "wrong" not in message


def test_api_key_is_accepted_instead_of_digest(prusalink):
    prusalink.api_key = "pl-key"
    assert "PrusaLink 2.1.2" in PrusaLinkClient(prusalink.url, "pl-key").test_connection()
    with pytest.raises(PrinterConnectionError, match=r"refused the API key \(HTTP 401\)"):
        PrusaLinkClient(prusalink.url, "other").test_connection()


def test_busy_printer_refuses_and_nothing_is_uploaded(prusalink):
    prusalink.busy = True
    recorder = Recorder()
    job = make_job(prusalink, gcode(1), recorder)
    with pytest.raises(PrinterConnectionError, match="printer is busy"):
        job.start()
    assert job.state == PrinterState.ERROR and not prusalink.files
    prusalink.busy = False
    client = PrusaLinkClient(prusalink.url, PASSWORD, user="maker")
    client.upload("C-TEST-05-g1.gcode", gcode(1))
    client.start("C-TEST-05-g1.gcode")
    with pytest.raises(PrinterConnectionError, match=r"busy \(HTTP 409\)"):
        client.start("C-TEST-05-g1.gcode")


def test_pause_resume_and_cancel(prusalink):
    prusalink.percent_per_second = 5
    recorder = Recorder()
    job = make_job(prusalink, gcode(), recorder)
    job.start()
    assert wait_for(lambda: job.status().progress > 0.02)
    job.pause()
    assert wait_for(lambda: job.state == PrinterState.PAUSED)
    assert prusalink.state == "PAUSED"
    job.resume()
    assert wait_for(lambda: job.state == PrinterState.PRINTING)
    job.cancel()
    assert job.wait(10) == PrinterState.CANCELLED
    assert prusalink.state == "STOPPED" and prusalink.targets["nozzle"] == 0.0
    methods = [m for m, p in prusalink.requests if p.startswith("/api/v1/job/4")]
    assert methods == ["PUT", "PUT", "DELETE"]
    assert recorder.actions == ["cancelled"]


def test_sl1_archive_for_the_sl1s(prusalink):
    archive = b"PK\x03\x04" + bytes(range(256)) * 40  # an SL1 is a zip; bytes, not G-code
    recorder = Recorder()
    job = make_job(prusalink, archive, recorder, name="C-TEST-04-s1.sl1")
    job.start()
    assert job.wait(30) == PrinterState.FINISHED
    assert prusalink.files["C-TEST-04-s1.sl1"] == archive
    facts = recorder.events[-1][1]
    assert facts["sl1_sha256"] and "gcode_sha256" not in facts


def test_server_down_garbage_and_html_errors(prusalink):
    down = PrusaLinkClient(f"http://127.0.0.1:{free_port()}", PASSWORD, user="maker", timeout=2)
    with pytest.raises(PrinterConnectionError, match=r"PrusaLink at .* does not answer"):
        down.test_connection()
    client = PrusaLinkClient(prusalink.url, PASSWORD, user="maker")
    prusalink.garbage = True
    with pytest.raises(PrinterConnectionError, match="not a JSON object; is the URL that of"):
        client.poll()
    prusalink.garbage = False
    prusalink.odd_json = True
    with pytest.raises(PrinterConnectionError, match="not a JSON object"):
        client.test_connection()
    prusalink.odd_json = False
    prusalink.html_errors = True
    with pytest.raises(PrinterConnectionError) as caught:
        client.start("C-NONE.gcode")
    assert str(caught.value).startswith("PrusaLink has no such file or job (HTTP 404)")
    assert "<" not in str(caught.value)
    with pytest.raises(PrinterConnectionError, match="not a print file name"):
        client.upload("notes.txt", b"x")


def test_a_printer_that_stops_answering_times_out_in_one_line(prusalink):
    prusalink.delay = 1.5
    client = PrusaLinkClient(prusalink.url, PASSWORD, user="maker", timeout=0.5)
    with pytest.raises(PrinterConnectionError, match=r"does not answer \(timed out\)"):
        client.poll()

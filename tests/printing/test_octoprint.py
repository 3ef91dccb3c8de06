"""Our OctoPrint client against a real OctoPrint (virtual printer) on 127.0.0.1.

One server for the whole session (it takes ~10 s to start); skipped with the reason when
OctoPrint cannot be installed or started here.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.errors import PrinterConnectionError
from app.printing.backends.octoprint import HttpError, OctoPrintClient
from app.printing.connection import ConnectionSettings, open_job
from app.printing.marlin import PrinterState
from tests.printing.peers.octoprint_server import free_port

pytest_plugins = ["tests.printing.peers.fixtures"]
pytestmark = pytest.mark.slow


def short_gcode(moves: int, length: float = 2.0) -> bytes:
    """A small print: set temperatures without waiting, then short moves (fast in the
    virtual printer, which sleeps a tenth of each move's real duration)."""
    lines = ["M140 S60", "M104 S200", "G28", "G90", "M83", "G92 E0", ";LAYER_CHANGE", "G1 Z0.2"]
    for i in range(moves):
        x = 100 + (length if i % 2 else 0)
        lines.append(f"G1 X{x:.2f} Y{100 + (i % 7) * 0.1:.2f} E0.05 F6000")
    lines += ["M104 S0", "M140 S0", "M84"]
    return ("\n".join(lines) + "\n").encode()


NUMBERS = itertools.count(1)  # one file name per job on the session's server


class Recorder:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def __call__(self, event, facts):
        self.actions.append(event)


def make_job(server, data, recorder, **kwargs):
    settings = ConnectionSettings(kind="octoprint", url=server.url, api_key=server.api_key)
    return open_job(
        data,
        settings,
        printer="octoprint-virtual",
        remote_name=f"C-TEST-02-g{next(NUMBERS)}.gcode",
        on_event=recorder,
        poll_interval=0.3,
        **kwargs,
    )


def test_connection_test_names_the_server(octoprint_server):
    client = OctoPrintClient(octoprint_server.url, octoprint_server.api_key)
    assert "OctoPrint" in client.test_connection()


def test_wrong_key_is_a_clear_error(octoprint_server):
    client = OctoPrintClient(octoprint_server.url, "0123456789ABCDEF0123456789ABCDEF")
    with pytest.raises(PrinterConnectionError, match=r"refused the API key \(HTTP 40[13]\)"):
        client.test_connection()


def test_server_down_is_a_clear_error():
    client = OctoPrintClient(f"http://127.0.0.1:{free_port()}", "key", timeout=2)
    start = time.monotonic()
    with pytest.raises(PrinterConnectionError, match="does not answer"):
        client.test_connection()
    assert time.monotonic() - start < 3


def test_unsupported_file_type_is_refused_with_415(octoprint_server):
    client = OctoPrintClient(octoprint_server.url, octoprint_server.api_key)
    with pytest.raises(HttpError, match="refused the file type") as caught:
        client.http.upload("/api/files/local", "notes.txt", b"hello", {})
    assert caught.value.status == 415
    with pytest.raises(PrinterConnectionError, match="not a G-code file name"):
        client.upload("notes.txt", b"hello")


def test_upload_start_and_progress_to_completion(octoprint_server):
    octoprint_server.wait_operational()
    recorder = Recorder()
    progress, temps = [], []
    job = make_job(
        octoprint_server,
        short_gcode(400, length=5.0),
        recorder,
        on_progress=lambda s: progress.append(s.progress),
        on_temperature=temps.append,
    )
    job.start()
    assert job.wait(90) == PrinterState.FINISHED, job.status().message
    files = octoprint_server.request("GET", "/api/files/local")["files"]
    assert job.remote_name in [f["name"] for f in files]
    assert job.remote_name.startswith("C-TEST-02-g")
    assert progress[-1] == 1.0 and max(progress[:-1] or [0]) <= 1.0
    assert any("T0" in t for t in temps)
    assert recorder.actions == ["finish"]


def test_pause_resume_busy_and_cancel(octoprint_server):
    octoprint_server.wait_operational()
    recorder = Recorder()
    job = make_job(octoprint_server, short_gcode(600, length=20.0), recorder)
    job.start()
    end = time.monotonic() + 30
    while job.status().progress < 0.05 and time.monotonic() < end:
        time.sleep(0.2)
    assert job.state == PrinterState.PRINTING
    # a second job while this one prints: OctoPrint's 409, as a clear message
    other = OctoPrintClient(octoprint_server.url, octoprint_server.api_key)
    other.upload("C-TEST-03.gcode", short_gcode(5))
    with pytest.raises(PrinterConnectionError, match="busy or not ready"):
        other.select_and_start("C-TEST-03.gcode")
    job.pause()
    end = time.monotonic() + 30
    while job.state != PrinterState.PAUSED and time.monotonic() < end:
        time.sleep(0.2)
    assert job.state == PrinterState.PAUSED
    held = job.status().progress
    time.sleep(1.0)
    assert job.status().progress == pytest.approx(held, abs=0.01)
    job.resume()
    end = time.monotonic() + 30
    while job.state != PrinterState.PRINTING and time.monotonic() < end:
        time.sleep(0.2)
    assert job.state == PrinterState.PRINTING
    job.cancel()
    assert job.wait(60) == PrinterState.CANCELLED
    assert recorder.actions == ["cancelled"], "pause, resume and cancel are the caller's"
    octoprint_server.wait_operational()

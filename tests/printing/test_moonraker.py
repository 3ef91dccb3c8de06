"""Our Moonraker client against the recorded-contract server (Moonraker's documented HTTP API)."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.errors import PrinterConnectionError
from app.printing.backends.moonraker import MoonrakerClient
from app.printing.connection import ConnectionSettings, open_job
from app.printing.connection import check_connection as check_printer
from app.printing.marlin import PrinterState
from tests.printing.peers.octoprint_server import free_port

pytest_plugins = ["tests.printing.peers.fixtures"]

KEY = "moonraker-test-key"


def gcode(layers: int = 5, moves: int = 200) -> bytes:
    lines = ["M140 S60", "M104 S215", "G28", "G90", "M83"]
    for layer in range(layers):
        lines += [";LAYER_CHANGE", f"G1 Z{0.2 * (layer + 1):.1f}"]
        lines += [f"G1 X{100 + i % 20} Y{100 + i % 13} E0.04 F1800" for i in range(moves)]
    lines += ["M104 S0", "M140 S0", "M84"]
    return ("\n".join(lines) + "\n").encode()


class Recorder:
    def __init__(self) -> None:
        self.actions: list[str] = []

    def __call__(self, event, facts):
        self.actions.append(event)


def make_job(server, data, recorder, **kwargs):
    settings = ConnectionSettings(kind="moonraker", url=server.url, api_key=KEY)
    return open_job(
        data,
        settings,
        printer="voron",
        remote_name="C-TEST-04-g1.gcode",
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


def test_upload_with_checksum_start_and_complete(moonraker):
    data = gcode()
    recorder = Recorder()
    layers, temps = [], []
    job = make_job(
        moonraker,
        data,
        recorder,
        on_progress=lambda s: layers.append(s.layer),
        on_temperature=temps.append,
    )
    job.start()
    assert job.wait(30) == PrinterState.FINISHED, job.status().message
    assert moonraker.files[job.remote_name] == data
    upload = [r for r in moonraker.requests if r[1] == "/server/files/upload"]
    assert len(upload) == 1
    status = job.status()
    assert status.progress == 1.0 and status.layers == 5
    assert any(layer for layer in layers if layer)
    assert any(t["T0"].target == 215.0 for t in temps)
    assert recorder.actions == ["finish"]


def test_pause_resume_and_cancel(moonraker):
    moonraker.lines_per_second = 200
    recorder = Recorder()
    job = make_job(moonraker, gcode(layers=20), recorder)
    job.start()
    assert wait_for(lambda: job.status().progress > 0.02)
    job.pause()
    assert wait_for(lambda: job.state == PrinterState.PAUSED)
    assert moonraker.state == "paused"
    held = moonraker.progress
    time.sleep(0.3)
    assert moonraker.progress == held
    job.resume()
    assert wait_for(lambda: job.state == PrinterState.PRINTING)
    job.cancel()
    assert job.wait(10) == PrinterState.CANCELLED
    assert moonraker.state == "cancelled" and moonraker.targets["extruder"] == 0.0
    assert recorder.actions == ["cancelled"], "pause, resume and cancel are the caller's"


def test_wrong_key_is_a_clear_error(moonraker):
    with pytest.raises(PrinterConnectionError, match=r"refused the API key \(HTTP 401\)"):
        MoonrakerClient(moonraker.url, "wrong").test_connection()


def test_damaged_upload_is_refused_by_checksum(moonraker):
    moonraker.damage_uploads = True
    client = MoonrakerClient(moonraker.url, KEY)
    data = gcode(1, 10)
    with pytest.raises(PrinterConnectionError, match="arrived damaged"):
        client.upload("C-TEST-05.gcode", data, hashlib.sha256(data).hexdigest())
    assert "C-TEST-05.gcode" not in moonraker.files


def test_klipper_not_ready_is_reported(moonraker):
    moonraker.klippy_state = "shutdown"
    client = MoonrakerClient(moonraker.url, KEY)
    with pytest.raises(PrinterConnectionError, match="Klipper is 'shutdown'"):
        client.test_connection()
    with pytest.raises(PrinterConnectionError, match="Klipper is not ready"):
        client.pause()
    assert client.poll().state == PrinterState.ERROR


def test_klipper_errors_come_through(moonraker):
    client = MoonrakerClient(moonraker.url, KEY)
    with pytest.raises(PrinterConnectionError, match="File not found"):
        client.start("C-NONE.gcode")
    data = gcode(1, 10)
    client.upload("C-TEST-06.gcode", data, hashlib.sha256(data).hexdigest())
    moonraker.lines_per_second = 1
    client.start("C-TEST-06.gcode")
    with pytest.raises(PrinterConnectionError, match="SD busy"):
        client.start("C-TEST-06.gcode")
    with pytest.raises(PrinterConnectionError, match="not paused"):
        client.resume()
    with pytest.raises(PrinterConnectionError, match="not a G-code file name"):
        client.upload("notes.txt", b"x", "")


def test_printer_error_mid_print_ends_the_job(moonraker):
    moonraker.lines_per_second = 100
    recorder = Recorder()
    job = make_job(moonraker, gcode(layers=20), recorder)
    job.start()
    assert wait_for(lambda: job.status().progress > 0.01)
    moonraker.klippy_state = "shutdown"
    assert job.wait(10) == PrinterState.ERROR
    assert "Timer too close" in job.status().message
    assert recorder.actions == ["error"]


def test_server_down_is_a_clear_error():
    client = MoonrakerClient(f"http://127.0.0.1:{free_port()}", KEY, timeout=2)
    with pytest.raises(PrinterConnectionError, match=r"Moonraker at .* does not answer"):
        client.test_connection()


def test_connection_test_and_emergency_stop(moonraker):
    settings = ConnectionSettings(kind="moonraker", url=moonraker.url, api_key=KEY)
    assert check_printer(settings) == "Moonraker v0.9.3-contract, Klipper ready"
    recorder = Recorder()
    moonraker.lines_per_second = 50
    job = make_job(moonraker, gcode(layers=20), recorder)
    job.start()
    job.emergency_stop()
    assert job.wait(5) == PrinterState.ERROR
    assert moonraker.klippy_state == "shutdown"
    assert recorder.actions == [], "the emergency stop is the caller's to record"

"""The USB path against a simulated Marlin on a pty: every line once and in order, faults, jobs."""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
import time
from pathlib import Path

import pytest
import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.errors import PrinterConnectionError
from app.printing import serial_link
from app.printing.backends.usb import PauseSettings, UsbBackend, UsbJob
from app.printing.marlin import PrinterState
from app.printing.serial_link import LinkListener, LinkOptions, SerialLink
from tests.printing.peers.gcode_samples import commands_of, synthetic_gcode

pytest_plugins = ["tests.printing.peers.fixtures"]

FAST = {"connect_timeout": 3.0, "command_timeout": 1.0}


class Recorder:
    """A job event listener that keeps the events in memory."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict]] = []

    def __call__(self, event: str, facts: dict) -> None:
        self.records.append((event, facts))

    @property
    def actions(self) -> list[str]:
        return [r[0] for r in self.records]


def make_job(path, sim, recorder, **kwargs):
    options = LinkOptions(**{**FAST, **kwargs.pop("options", {})})
    backend = UsbBackend(sim.port, options=options, pause=kwargs.pop("pause", None))
    return UsbJob(
        path,
        backend,
        printer="sim",
        context={"case": "C-TEST-01", "gcode_version": 3},
        on_event=recorder,
        **kwargs,
    )


def wait_for(predicate, timeout=10.0, step=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def strip_host_lines(accepted: list[str]) -> list[str]:
    """The simulator's record without the handshake lines the host adds."""
    return [c for c in accepted if c not in ("M110 N0", "M115") and not c.startswith("M155")]


@pytest.mark.parametrize("error_rate", [0.0, 0.02, 0.05])
def test_full_sliced_print_arrives_once_and_in_order(marlin, sliced_gcode, error_rate):
    sim = marlin(error_rate=error_rate, seed=11)
    recorder = Recorder()
    job = make_job(sliced_gcode, sim, recorder)
    job.start()
    assert job.wait(120) == PrinterState.FINISHED, job.status().message
    expected = commands_of(sliced_gcode)
    assert strip_host_lines(sim.accepted) == expected
    assert sim.executed[-len(expected) :] == expected
    if error_rate:
        assert sim.stats.corrupted > 0 and sim.stats.resend_requests >= sim.stats.corrupted
    status = job.status()
    assert status.progress == 1.0 and status.line == status.lines == len(expected)
    assert status.layers and status.layer == status.layers
    assert recorder.actions == ["finish"], "the job reports what happened by itself only"
    facts = recorder.records[0][1]
    assert facts["case"] == "C-TEST-01" and facts["gcode_version"] == 3, "the caller's context"
    assert facts["gcode_sha256"] == hashlib.sha256(sliced_gcode.read_bytes()).hexdigest()
    assert facts["printer"] == "sim" and facts["transport"] == "usb"
    assert facts["line"] == len(expected)
    job.close()


def test_handshake_firmware_capabilities_and_autoreport(marlin):
    sim = marlin()
    temps = []

    class Listener(LinkListener):
        def on_temperatures(self, t):
            temps.append(t)

    link = SerialLink(sim.port, LinkOptions(**FAST, temperature_interval=0.5), Listener())
    firmware = link.connect()
    try:
        assert firmware.is_marlin and "simulator" in firmware.name
        assert firmware.has("AUTOREPORT_TEMP") and firmware.has("EMERGENCY_PARSER")
        assert link.window == 4
        assert wait_for(lambda: len(temps) >= 2, 5)
        assert "T0" in temps[-1] and "B" in temps[-1]
        assert "M155 S1" in sim.accepted and "M105" not in sim.accepted
    finally:
        link.close()


def test_polls_m105_when_the_firmware_cannot_autoreport(marlin):
    sim = marlin(autoreport=False)
    link = SerialLink(sim.port, LinkOptions(**FAST, temperature_interval=0.2))
    link.connect()
    try:
        link.send("M104 S215")
        assert wait_for(
            lambda: link.temperatures.get("T0") and link.temperatures["T0"].target == 215.0, 5
        )
        assert wait_for(lambda: sim.accepted.count("M105") >= 3, 3)
    finally:
        link.close()


def test_port_busy_gives_a_clear_message(marlin):
    sim = marlin()
    holder = serial.Serial(sim.port, 115200, exclusive=True)
    try:
        start = time.monotonic()
        with pytest.raises(PrinterConnectionError, match="in use by another program"):
            SerialLink(sim.port, LinkOptions(**FAST)).connect()
        assert time.monotonic() - start < 2
    finally:
        holder.close()


def test_missing_port_lists_the_ports_found():
    with pytest.raises(PrinterConnectionError, match="does not exist"):
        SerialLink("/dev/ttyMEDPRINT-NONE", LinkOptions(**FAST)).connect()


def test_wrong_baud_rate_is_named_within_seconds(marlin):
    sim = marlin(baud=250000)
    start = time.monotonic()
    with pytest.raises(PrinterConnectionError, match="baud rate is probably wrong"):
        SerialLink(sim.port, LinkOptions(**FAST, baud=115200)).connect()
    assert time.monotonic() - start < 5
    # the right rate works on the same printer
    link = SerialLink(sim.port, LinkOptions(**FAST, baud=250000))
    assert link.connect().is_marlin
    link.close()


def test_firmware_that_never_answers(marlin):
    sim = marlin(silent=True)
    start = time.monotonic()
    with pytest.raises(PrinterConnectionError, match="no answer from"):
        SerialLink(sim.port, LinkOptions(**FAST)).connect()
    assert time.monotonic() - start < 5


def test_lost_ok_is_recovered_without_duplicating_a_line(marlin, tmp_path):
    sim = marlin(drop_ok_every=13)
    path = synthetic_gcode(tmp_path / "small.gcode", lines=250)
    recorder = Recorder()
    job = make_job(path, sim, recorder, options={"window": 1, "command_timeout": 0.1})
    job.start()
    assert job.wait(60) == PrinterState.FINISHED, job.status().message
    assert strip_host_lines(sim.accepted) == commands_of(path)
    assert sim.stats.dropped_oks > 5
    assert job.backend.link.counters["timeouts"] >= 1


def test_busy_keepalive_is_alive_and_a_stall_recovers(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "p.gcode", lines=600)
    sim = marlin(delays={"M17": 1.2}, busy_interval=0.1, delay=0.002)
    link = SerialLink(sim.port, LinkOptions(**{**FAST, "command_timeout": 0.5, "max_retries": 8}))
    link.connect()
    try:
        link.send("M17")  # 1.2 s of work, with busy: keepalives every 0.1 s
        assert link.wait_idle(5)
        assert link.counters["timeouts"] == 0 and link.counters["busy"] >= 5
        commands = commands_of(path)
        link.start_stream((c, i) for i, c in enumerate(commands))
        assert wait_for(lambda: len(sim.accepted) > 50, 5)
        sim.stall(1.5)  # the firmware hangs for longer than the timeout, then recovers
        assert link.wait_idle(30), link.failure
        assert link.counters["timeouts"] >= 1
        assert strip_host_lines(sim.accepted) == ["M17", *commands]
    finally:
        link.close()


def test_emergency_command_jumps_the_queue(marlin):
    sim = marlin(heat_rate=5.0)  # heating to 250 would take ~45 s
    link = SerialLink(sim.port, LinkOptions(**FAST))
    link.connect()
    try:
        link.send("M109 S250")
        for _ in range(3):
            link.send("G4 P0")
        assert wait_for(lambda: "M109 S250" in sim.accepted, 3)
        time.sleep(0.2)
        start = time.monotonic()
        link.send("M108")  # routed to send_emergency: goes out despite the full window
        assert wait_for(lambda: "M108" in sim.stats.emergency, 2)
        assert link.wait_idle(5)
        assert time.monotonic() - start < 3
        assert sim.executed.count("G4 P0") == 3
    finally:
        link.close()


def test_reset_while_printing_stops_the_job_and_recovery_continues(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "r.gcode", lines=3000)
    commands = commands_of(path)
    sim = marlin(delay=0.0005)
    recorder = Recorder()
    job = make_job(path, sim, recorder)
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 800, 20)
    sim.reset()
    assert job.wait(10) == PrinterState.ERROR
    assert "restarted" in job.status().message
    point = job.resume_point
    assert point is not None and 800 <= point.index < len(commands)
    assert point.machine.hotend.get(0) == 210.0 and point.machine.bed == 60.0
    assert wait_for(lambda: job.backend.link.state == PrinterState.IDLE, 5)  # usable again
    before = len(sim.accepted)
    job.recover()
    assert job.wait(60) == PrinterState.FINISHED, job.status().message
    after = sim.accepted[before:]
    assert "G28 X Y" in after and "M190 S60" in after and "M109 S210" in after
    tail = commands[point.index + 1 :]
    assert after[-len(tail) :] == tail
    assert recorder.actions == ["error", "finish"]
    assert recorder.records[0][1]["reason"] == "printer reset"


def test_unplugged_cable_offers_resume_on_the_new_port(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "u.gcode", lines=3000)
    commands = commands_of(path)
    sim = marlin(delay=0.0005)
    recorder = Recorder()
    job = make_job(path, sim, recorder)
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 500, 20)
    start = time.monotonic()
    sim.unplug()
    assert job.wait(5) == PrinterState.DISCONNECTED
    assert time.monotonic() - start < 3
    assert "connection" in job.status().message and "resume" in job.status().message
    assert recorder.actions == ["disconnect"]
    point = job.resume_point
    assert point is not None
    sim2 = marlin(delay=0.0)
    job.recover(port=sim2.port)
    assert job.wait(60) == PrinterState.FINISHED
    tail = commands[point.index + 1 :]
    assert sim2.accepted[-len(tail) :] == tail
    assert "G28 X Y" in sim2.accepted


def test_pause_parks_and_resume_restores_position(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "pause.gcode", lines=3000)
    commands = commands_of(path)
    sim = marlin(delay=0.0005)
    recorder = Recorder()
    states = []
    job = make_job(
        path,
        sim,
        recorder,
        pause=PauseSettings(park_x=5, park_y=210, lift=10),
        on_state=lambda s, m: states.append(s),
    )
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 600, 20)
    job.pause()
    assert wait_for(lambda: job.state == PrinterState.PAUSED, 10)
    saved = job._saved
    paused_at = len(sim.accepted)
    assert sim.accepted[-1] == "G1 X5 Y210 F6000" and "G1 Z10 F600" in sim.accepted[-4:]
    time.sleep(0.3)
    assert len(sim.accepted) == paused_at  # nothing is fed while paused
    job.resume()
    assert job.wait(60) == PrinterState.FINISHED
    resumed = sim.accepted[paused_at:]
    assert f"G1 X{saved.x:g} Y{saved.y:g} F6000" in resumed[:10]
    assert f"G1 Z{saved.z:g} F600" in resumed[:10]
    assert "M109 S210" in resumed[:10] and "M190 S60" in resumed[:10]
    # with the pause and resume scripts taken out, the G-code arrived exactly once
    pause, resume = job_scripts(job, saved)
    before, after = sim.accepted[:paused_at], sim.accepted[paused_at:]
    assert before[-len(pause) :] == pause and after[: len(resume)] == resume
    received = strip_host_lines(before[: -len(pause)]) + after[len(resume) :]
    assert received == commands
    assert states.count(PrinterState.PAUSED) == 1
    assert recorder.actions == ["finish"], "pause and resume are the caller's to record"


def job_scripts(job, saved):
    from app.printing.backends.usb import pause_script, resume_script

    settings = job.backend.pause_settings
    return pause_script(saved, settings), resume_script(saved, settings)


def test_cancel_turns_heaters_and_motors_off(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "c.gcode", lines=3000)
    sim = marlin(delay=0.0005)
    recorder = Recorder()
    job = make_job(path, sim, recorder)
    job.start()
    assert wait_for(lambda: sim.targets["T0"] == 210.0 and (job.status().line or 0) > 300, 20)
    job.cancel()
    assert job.wait(20) == PrinterState.CANCELLED
    assert sim.targets == {"T0": 0.0, "B": 0.0}
    assert not sim.steppers_on
    assert sim.executed[-2:] == ["M400", "M84"]
    assert len(strip_host_lines(sim.accepted)) < len(commands_of(path))
    assert recorder.actions == ["cancelled"]


def test_progress_and_temperature_callbacks(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "cb.gcode", lines=1500)
    sim = marlin()
    seen = {"progress": [], "temps": []}
    lock = threading.Lock()

    def on_progress(status):
        with lock:
            seen["progress"].append(status.progress)

    def on_temperature(temps):
        with lock:
            seen["temps"].append(temps)

    job = make_job(
        path,
        sim,
        Recorder(),
        on_progress=on_progress,
        on_temperature=on_temperature,
        options={"temperature_interval": 0.2},
    )
    job.start()
    assert job.wait(30) == PrinterState.FINISHED
    assert seen["progress"] == sorted(seen["progress"]) and seen["progress"][-1] == 1.0
    assert any("T0" in t for t in seen["temps"])


def test_port_discovery_puts_printers_first(monkeypatch):
    class Port:
        def __init__(self, device, description, vid=None, pid=None):
            self.device, self.description, self.vid, self.pid = device, description, vid, pid

    ports = [
        Port("/dev/ttyS0", "n/a"),
        Port("/dev/ttyACM0", "Original Prusa i3 MK3", 0x2C99, 2),
        Port("/dev/rfcomm0", "Bluetooth serial"),
        Port("/dev/ttyUSB0", "USB2.0-Serial", 0x1A86, 0x7523),
    ]
    monkeypatch.setattr(serial_link.serial.tools.list_ports, "comports", lambda: ports)
    found = serial_link.list_ports()
    assert [p.device for p in found[:2]] == ["/dev/ttyACM0", "/dev/ttyUSB0"]
    assert found[0].likely_printer and not found[-1].likely_printer
    assert serial_link.auto_port() == "/dev/ttyACM0"
    monkeypatch.setattr(
        serial_link.serial.tools.list_ports, "comports", lambda: [Port("/dev/ttyS0", "n/a")]
    )
    with pytest.raises(PrinterConnectionError, match="no printer-like"):
        serial_link.auto_port()


def test_connection_check_names_the_firmware(marlin):
    from app.printing.connection import ConnectionSettings, check_connection

    sim = marlin()
    answer = check_connection(
        ConnectionSettings(kind="usb", port=sim.port), options=LinkOptions(**FAST)
    )
    assert answer.startswith("Marlin 2.1.2.1 (MedPrint simulator) on /dev/pts/")
    busy = serial.Serial(sim.port, 115200, exclusive=True)
    try:
        with pytest.raises(PrinterConnectionError, match="in use"):
            check_connection(
                ConnectionSettings(kind="usb", port=sim.port), options=LinkOptions(**FAST)
            )
    finally:
        busy.close()


def test_a_failing_listener_does_not_stop_the_print(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "bug.gcode", lines=600)
    sim = marlin()

    def broken(*args):
        raise RuntimeError("a bug in the panel")

    job = make_job(
        path, sim, Recorder(), on_progress=broken, on_state=broken, on_temperature=broken
    )
    job.start()
    assert job.wait(30) == PrinterState.FINISHED
    assert strip_host_lines(sim.accepted) == commands_of(path)


def test_long_pause_cools_the_hot_end_and_resume_reheats(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "cool.gcode", lines=2000)
    sim = marlin(delay=0.0005)
    job = make_job(path, sim, Recorder(), options={"temperature_interval": 0.2})
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 300, 20)
    job.pause(cool_down=True)
    assert wait_for(lambda: job.state == PrinterState.PAUSED, 10)
    assert sim.targets == {"T0": 0.0, "B": 60.0}  # the part stays on a warm bed
    time.sleep(1.2)  # one auto-report (M155 S1) while paused
    job.resume()
    assert wait_for(lambda: sim.targets["T0"] == 210.0, 10)
    assert job.wait(60) == PrinterState.FINISHED
    history = job.temperature_history()
    assert history and all(a <= b for (a, _), (b, _) in itertools.pairwise(history))
    assert any(reading.get("T0") and reading["T0"].target == 0.0 for _, reading in history)


def test_advanced_ok_line_numbers_repair_lost_oks_at_once(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "adv.gcode", lines=800)
    sim = marlin(advanced_ok=True, drop_ok_every=7)
    job = make_job(path, sim, Recorder(), options={"command_timeout": 0.3})
    job.start()
    assert job.wait(60) == PrinterState.FINISHED
    assert strip_host_lines(sim.accepted) == commands_of(path)
    link = job.backend.link
    assert link.counters["lost_oks"] >= sim.stats.dropped_oks - 1 > 50
    assert link.counters["timeouts"] <= 1  # only a lost last ok needs the timeout


def test_remaining_time_prefers_the_slicers_countdown():
    from app.printing.job import estimate_remaining

    assert estimate_remaining(100, 0.5, 3600, 600) == 600  # M73 R from the G-code wins
    assert estimate_remaining(0, 0.0, 3600, None) == 3600  # the slicer's estimate at the start
    # half done in 1200 s where the slicer expected 1800 s: the rest goes as fast
    assert estimate_remaining(1200, 0.5, 3600, None) == pytest.approx(1200)
    assert estimate_remaining(50, 0.25, None, None) == pytest.approx(150)
    assert estimate_remaining(0, 0.0, None, None) is None


def test_printer_that_stops_answering_mid_print_is_reported_within_seconds(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "hang.gcode", lines=3000)
    sim = marlin(delay=0.0005)
    job = make_job(path, sim, Recorder(), options={"command_timeout": 0.3, "max_retries": 2})
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 300, 20)
    sim.stall(60)  # the firmware hangs for good
    start = time.monotonic()
    assert job.wait(10) == PrinterState.DISCONNECTED
    assert time.monotonic() - start < 3
    assert "stopped answering" in job.status().message
    assert job.resume_point is not None and job.resume_point.index >= 300


def test_emergency_stop_halts_the_printer_at_once(marlin, tmp_path):
    path = synthetic_gcode(tmp_path / "estop.gcode", lines=3000)
    sim = marlin(delay=0.001)
    recorder = Recorder()
    job = make_job(path, sim, recorder)
    job.start()
    assert wait_for(lambda: (job.status().line or 0) > 200, 20)
    job.emergency_stop()
    assert job.wait(2) == PrinterState.ERROR
    assert wait_for(lambda: sim.killed, 1) and sim.stats.emergency == ["M112"]
    assert sim.targets == {"T0": 0.0, "B": 0.0}
    executed = len(sim.executed)
    time.sleep(0.2)
    assert len(sim.executed) == executed  # nothing runs after the kill
    assert recorder.actions == [], "the emergency stop is the caller's to record"

"""A simulated Marlin firmware on a pseudo-terminal pair: the USB printer of the tests.

The host opens :attr:`SimulatedMarlin.port` (a ``/dev/pts/N`` path) with pyserial exactly as it
would open ``/dev/ttyUSB0``. The simulator behaves like Marlin 2 where it matters for a host:

- Opening the port "resets the board" (DTR): after ``boot_delay`` it prints ``start`` and the
  boot banner; closing and reopening resets it again.
- Line numbers and checksums are checked like ``GCodeQueue::get_serial_commands``: a bad
  checksum or an unexpected line number gives ``Error:...``, ``Resend: <last+1>`` and ``ok``;
  ``M110`` sets the line number. Accepted lines go into a command buffer of ``bufsize`` entries;
  when it is full the simulator stops reading (the host's bytes wait in the pty, as in a real
  serial buffer). Each command takes ``delay`` seconds (or ``delays[code]``) and then says ``ok``.
- ``error_rate`` corrupts that fraction of received lines (one byte flipped, as noise on the
  wire would), so the firmware's own checksum test rejects them.
- ``busy_interval``: ``echo:busy: processing`` while a command runs longer than that.
- M105 answers ``ok T:.. /.. B:.. /..``; M155 S<n> auto-reports temperatures; M109/M190 wait
  for the (fast) simulated heaters and print temperatures while waiting; M115 reports the
  firmware name and capabilities; M112/M108/M410 act on receipt (emergency parser).
- ``advanced_ok``: replies ``ok N<line> P<planner> B<buffer>`` as Marlin with ADVANCED_OK.
- Faults on demand: :meth:`reset` (prints ``start`` mid-print), :meth:`stall` (the next reply
  is held back), ``drop_ok_every`` (an ``ok`` lost on the wire), :meth:`unplug` (the cable is
  pulled: the pty master closes), ``silent`` (a board that never answers) and a ``baud`` other
  than the host's (the host hears only noise).

Every accepted command is recorded in :attr:`accepted`, in order, for the tests to compare with
the G-code that was sent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import queue
import random
import select
import struct
import threading
import time
import tty
from dataclasses import dataclass, field

from app.printing.marlin import checksum, command_code, param, split_line

_TCGETS2 = 0x802C542A  # Linux: struct termios2 with the real baud rate (pyserial sets BOTHER)


@dataclass
class SimStats:
    """Counts of what the simulated firmware saw and did."""

    received: int = 0
    corrupted: int = 0
    resend_requests: int = 0
    dropped_oks: int = 0
    resets: int = 0
    boots: int = 0
    emergency: list[str] = field(default_factory=list)
    starved: int = 0  # times the executor found no command waiting (the host kept it idle)


class SimulatedMarlin:
    """A Marlin-like firmware behind a pty; see the module docstring."""

    def __init__(
        self,
        *,
        error_rate: float = 0.0,
        delay: float = 0.0,
        delays: dict[str, float] | None = None,
        bufsize: int = 4,
        seed: int = 1,
        baud: int = 115200,
        boot_delay: float = 0.05,
        busy_interval: float | None = None,
        autoreport: bool = True,
        emergency_parser: bool = True,
        silent: bool = False,
        drop_ok_every: int = 0,
        advanced_ok: bool = False,
        heat_rate: float = 2000.0,
        firmware_name: str = "Marlin 2.1.2.1 (MedPrint simulator)",
    ) -> None:
        self.error_rate = error_rate
        self.delay = delay
        self.delays = {k.upper(): v for k, v in (delays or {}).items()}
        self.bufsize = bufsize
        self.baud = baud
        self.boot_delay = boot_delay
        self.busy_interval = busy_interval
        self.autoreport = autoreport
        self.emergency_parser = emergency_parser
        self.silent = silent
        self.drop_ok_every = drop_ok_every
        self.advanced_ok = advanced_ok
        self.heat_rate = heat_rate
        self.firmware_name = firmware_name
        self.rng = random.Random(seed)
        self.accepted: list[str] = []
        self.executed: list[str] = []
        self.stats = SimStats()
        self.temps = {"T0": 21.0, "B": 21.0}
        self.targets = {"T0": 0.0, "B": 0.0}
        self.steppers_on = False
        self.killed = False
        self._last_n = 0
        # one slot is the command being executed, as in Marlin's ring buffer
        self._buffer: queue.Queue[tuple[str, int]] = queue.Queue(maxsize=max(1, bufsize - 1))
        self._write_lock = threading.Lock()
        self._stall_until = 0.0
        self._break_wait = threading.Event()
        self._autoreport_interval = 0.0
        self._last_report = 0.0
        self._ok_count = 0
        self._generation = 0
        self._booting = False
        self._baud_ok = True
        self._stop = threading.Event()
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        os.close(slave)  # the host opens it; we notice open/close through EIO on the master
        self._threads = [
            threading.Thread(target=self._read_loop, name="sim-read", daemon=True),
            threading.Thread(target=self._exec_loop, name="sim-exec", daemon=True),
            threading.Thread(target=self._report_loop, name="sim-report", daemon=True),
        ]

    # -- control -----------------------------------------------------------------------------

    def start(self) -> SimulatedMarlin:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._break_wait.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._close_master()

    def __enter__(self) -> SimulatedMarlin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """A reset while running (power glitch, watchdog): state is lost, ``start`` is printed."""
        self.stats.resets += 1
        self._boot()

    def stall(self, seconds: float) -> None:
        """Hold back every reply for ``seconds`` (a firmware that hangs, then recovers)."""
        self._stall_until = time.monotonic() + seconds

    def unplug(self) -> None:
        """Pull the cable: the host's next read or write fails."""
        self._stop.set()
        self._break_wait.set()
        self._close_master()

    def _close_master(self) -> None:
        with self._write_lock:
            if self._master >= 0:
                os.close(self._master)
                self._master = -1

    # -- output ------------------------------------------------------------------------------

    def send(self, text: str) -> None:
        if self.silent or self._master < 0:
            return
        wait = self._stall_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        data = (text + "\n").encode("ascii")
        if not self._baud_ok:
            data = bytes(self.rng.randrange(128, 256) for _ in data)
        with self._write_lock:
            if self._master < 0:
                return
            with contextlib.suppress(OSError):
                os.write(self._master, data)

    def _ok(self, extra: str = "", number: int | None = None) -> None:
        self._ok_count += 1
        if self.drop_ok_every and self._ok_count % self.drop_ok_every == 0:
            self.stats.dropped_oks += 1
            return
        if self.advanced_ok:  # Marlin's ADVANCED_OK: ok N<line> P<planner free> B<buffer free>
            line = self._last_n if number is None else number
            free = self._buffer.maxsize - self._buffer.qsize()
            extra = f"N{line} P15 B{free}" + (" " + extra if extra else "")
        self.send("ok" + (" " + extra if extra else ""))

    def _host_baud(self) -> int | None:
        try:
            raw = fcntl.ioctl(self._master, _TCGETS2, bytes(44))
        except OSError:
            return None
        return struct.unpack_from("I", raw, 36)[0]

    def _baud_matches(self) -> bool:
        host = self._host_baud()
        return host is None or host == self.baud

    # -- boot and reading --------------------------------------------------------------------

    def _boot(self) -> None:
        self._generation += 1
        self.stats.boots += 1
        self.killed = False
        self._last_n = 0
        self._autoreport_interval = 0.0
        self.targets = {"T0": 0.0, "B": 0.0}
        self.steppers_on = False
        self._break_wait.set()
        self._booting = True
        while True:
            try:
                self._buffer.get_nowait()
            except queue.Empty:
                break
        time.sleep(self.boot_delay)  # bytes that arrive while the board boots are lost
        self._baud_ok = self._baud_matches()
        self._booting = False
        self._break_wait.clear()
        self.send("start")
        self.send("echo:Marlin 2.1.2.1")
        self.send("echo: Last Updated: 2023-07-21 | Author: (MedPrint simulator)")
        self.send("echo:SD card ok")

    def _read_loop(self) -> None:
        connected = False
        pending = b""
        while not self._stop.is_set():
            if self._master < 0:
                return
            ready, _, _ = select.select([self._master], [], [], 0.02)
            if not ready:  # quiet but no EIO: the host has the port open
                if not connected:
                    connected = True
                    threading.Thread(target=self._boot, daemon=True).start()
                continue
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # no one has the slave open: the host is not connected
                if connected:
                    connected = False
                    pending = b""
                time.sleep(0.005)
                continue
            if not connected:
                connected = True
                threading.Thread(target=self._boot, daemon=True).start()
            self._baud_ok = self._baud_matches()  # once per chunk: an ioctl per line is costly
            pending += chunk
            if b"\n" in pending:
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._receive(raw)

    def _receive(self, raw: bytes) -> None:
        if self._stop.is_set() or self._booting:
            return
        if not self._baud_ok:
            self.send("start")  # scrambled by send(): the host hears noise
            return
        text = raw.decode("ascii", errors="replace").strip("\r ")
        if not text:
            return
        self.stats.received += 1
        if self.emergency_parser and ("M11" in text or "M10" in text or "M41" in text):
            self._emergency(text)
        if self.killed:
            return
        if self.error_rate and self.rng.random() < self.error_rate:
            text = self._corrupt(text)
        number, command, valid = split_line(text)
        if number is not None or "*" in text:
            if not self._check_line(number, command, valid, text):
                return
        elif not command:
            return
        self._enqueue(command, number)

    def _check_line(self, number: int | None, command: str, valid: bool, text: str) -> bool:
        if number is None:
            return self._line_error("No Line Number with checksum, Last Line: ")
        if "*" not in text:
            return self._line_error("No Checksum with line number, Last Line: ")
        if not valid:
            return self._line_error("checksum mismatch, Last Line: ")
        if command_code(command) == "M110":
            value = param(command, "N")
            self._last_n = int(value) if value is not None else number
            return True
        if number != self._last_n + 1:
            return self._line_error("Line Number is not Last Line Number+1, Last Line: ")
        self._last_n = number
        return True

    def _line_error(self, message: str) -> bool:
        self.stats.resend_requests += 1
        self.send(f"Error:{message}{self._last_n}")
        self.send(f"Resend: {self._last_n + 1}")
        self._ok()
        return False

    def _corrupt(self, text: str) -> str:
        self.stats.corrupted += 1
        data = bytearray(text.encode("ascii"))
        i = self.rng.randrange(len(data))
        data[i] = (data[i] ^ (1 << self.rng.randrange(7))) or 0x21
        if data[i] == 10:  # never turn a byte into a newline
            data[i] = 0x21
        return data.decode("ascii", errors="replace")

    def _enqueue(self, command: str, number: int | None) -> None:
        generation = self._generation
        if number is not None or command_code(command) != "M110":
            self.accepted.append(command)
        while not self._stop.is_set():
            try:
                self._buffer.put((command, generation, number), timeout=0.1)
                return
            except queue.Full:
                if generation != self._generation:
                    return

    def _emergency(self, text: str) -> None:
        _, command, _ = split_line(text)
        code = command_code(command)
        if code == "M112":
            self.stats.emergency.append(code)
            self.killed = True
            self.targets = {"T0": 0.0, "B": 0.0}
            self.send("Error:Printer halted. kill() called!")
        elif code in ("M108", "M410"):
            self.stats.emergency.append(code)
            self._break_wait.set()

    # -- execution ---------------------------------------------------------------------------

    def _exec_loop(self) -> None:
        while not self._stop.is_set():
            try:
                command, generation, number = self._buffer.get_nowait()
            except queue.Empty:
                try:
                    command, generation, number = self._buffer.get(timeout=0.1)
                except queue.Empty:
                    continue
                self.stats.starved += 1  # this command had kept the firmware waiting
            if generation != self._generation or self.killed:
                continue
            reply = self._execute(command)
            if generation != self._generation or self.killed:
                continue
            self.executed.append(command)
            self._ok(reply, number)

    def _execute(self, command: str) -> str:
        code = command_code(command)
        self._work(self.delays.get(code, self.delay))
        handler = getattr(self, f"_do_{code}", None)
        return (handler(command) or "") if handler else ""

    def _work(self, seconds: float) -> None:
        if seconds <= 0:
            return
        end = time.monotonic() + seconds
        next_busy = time.monotonic() + (self.busy_interval or seconds + 1)
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= end:
                return
            if self.busy_interval and now >= next_busy:
                self.send("echo:busy: processing")
                next_busy = now + self.busy_interval
            time.sleep(min(end - now, 0.05) if seconds > 0.01 else end - now)

    def _temperature_text(self) -> str:
        t, b = self.temps, self.targets
        return f"T:{t['T0']:.2f} /{b['T0']:.2f} B:{t['B']:.2f} /{b['B']:.2f} @:0 B@:0"

    def _heat(self, dt: float) -> None:
        for name, target in self.targets.items():
            goal = target if target > 0 else 21.0
            step = self.heat_rate * dt
            current = self.temps[name]
            self.temps[name] = (
                goal
                if abs(goal - current) <= step
                else (current + step if goal > current else current - step)
            )

    def _wait_heater(self, name: str, command: str) -> None:
        value = param(command, "S") or param(command, "R")
        if value is not None:
            self.targets[name] = value
        self._break_wait.clear()
        while not self._stop.is_set() and not self._break_wait.is_set():
            self._heat(0.05)
            if abs(self.temps[name] - self.targets[name]) < 1.0:
                return
            self.send(self._temperature_text() + " W:?")
            time.sleep(0.05)

    def _do_M105(self, command: str) -> str:
        return self._temperature_text()

    def _do_M104(self, command: str) -> None:
        self.targets["T0"] = param(command, "S") or 0.0

    def _do_M140(self, command: str) -> None:
        self.targets["B"] = param(command, "S") or 0.0

    def _do_M109(self, command: str) -> None:
        self._wait_heater("T0", command)

    def _do_M190(self, command: str) -> None:
        self._wait_heater("B", command)

    def _do_M155(self, command: str) -> None:
        if self.autoreport:
            self._autoreport_interval = param(command, "S") or 0.0

    def _do_M84(self, command: str) -> None:
        self.steppers_on = False

    def _do_G1(self, command: str) -> None:
        self.steppers_on = True

    def _do_G28(self, command: str) -> None:
        self.steppers_on = True

    def _do_M115(self, command: str) -> None:
        self.send(
            f"FIRMWARE_NAME:{self.firmware_name} SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin"
            " PROTOCOL_VERSION:1.0 MACHINE_TYPE:MedPrint Sim EXTRUDER_COUNT:1"
            " UUID:cede2a2f-41a2-4748-9b12-c55c62f367ff"
        )
        caps = {
            "SERIAL_XON_XOFF": False,
            "EEPROM": True,
            "AUTOREPORT_TEMP": self.autoreport,
            "EMERGENCY_PARSER": self.emergency_parser,
            "HOST_ACTION_COMMANDS": False,
            "PROMPT_SUPPORT": False,
        }
        for name, enabled in caps.items():
            self.send(f"Cap:{name}:{int(enabled)}")

    def _report_loop(self) -> None:
        while not self._stop.is_set():
            time.sleep(0.02)
            self._heat(0.02)
            interval = self._autoreport_interval
            now = time.monotonic()
            if interval > 0 and now - self._last_report >= interval and not self.killed:
                self._last_report = now
                self.send(" " + self._temperature_text())


def frame(number: int, command: str) -> str:
    """What a host sends for line ``number`` (helper for tests that talk to the simulator)."""
    payload = f"N{number} {command}"
    return f"{payload}*{checksum(payload)}"


def execution_ceiling(commands: list[str], delay: float) -> float:
    """Commands/s of the executor alone: buffer always full, replies written to /dev/null."""
    sim = SimulatedMarlin(delay=delay, bufsize=len(commands) + 1)
    os.close(sim._master)
    sim._master = os.open(os.devnull, os.O_WRONLY)
    for command in commands:
        sim._buffer.put((command, sim._generation, None))
    done = threading.Event()
    finish = [0.0]
    reply = sim._ok

    def ok(extra: str = "", number: int | None = None) -> None:
        reply(extra, number)
        if len(sim.executed) >= len(commands):
            finish[0] = time.perf_counter()
            done.set()

    sim._ok = ok
    executor = threading.Thread(target=sim._exec_loop, daemon=True)
    start = time.perf_counter()
    executor.start()
    done.wait(3600)
    elapsed = finish[0] - start
    sim._stop.set()
    sim._close_master()
    return len(commands) / elapsed


def main(argv: list[str] | None = None) -> int:
    """Run one simulator in its own process (so its timing does not share a GIL with the host).

    Prints the port, runs until a line (or EOF) arrives on stdin, then writes what it accepted
    and executed to ``--record`` as JSON.
    """
    import argparse
    import json
    import sys
    from dataclasses import asdict

    parser = argparse.ArgumentParser(prog="marlin_sim")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bufsize", type=int, default=4)
    parser.add_argument("--record", required=True)
    parser.add_argument(
        "--ceiling",
        metavar="COMMANDS_FILE",
        help="measure how fast the firmware executes these with a never-empty "
        "buffer and no serial I/O, write {'rate': ...} and exit",
    )
    args = parser.parse_args(argv)
    if args.ceiling:
        with open(args.ceiling, encoding="ascii") as handle:
            commands = handle.read().splitlines()
        rate = execution_ceiling(commands, args.delay)
        with open(args.record, "w", encoding="utf-8") as handle:
            json.dump({"rate": rate}, handle)
        return 0
    sim = SimulatedMarlin(
        delay=args.delay, error_rate=args.error_rate, seed=args.seed, bufsize=args.bufsize
    ).start()
    print(sim.port, flush=True)
    sys.stdin.readline()
    record = {"accepted": sim.accepted, "executed": sim.executed, "stats": asdict(sim.stats)}
    sim.stop()
    with open(args.record, "w", encoding="utf-8") as handle:
        json.dump(record, handle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

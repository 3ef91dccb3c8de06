"""A USB serial link to a Marlin printer: port discovery, handshake, and a sender gated on ``ok``.

How the link keeps a printer fed without losing or repeating a line:

- Every command gets a line number and a checksum (:func:`app.printing.marlin.format_line`) and
  is kept in a bounded history. The firmware accepts line ``n`` only right after ``n - 1``, so it
  can never execute a line twice or skip one; the link's duty is to answer every ``Resend: n``
  from its history and to never stall.
- Each accepted line is acknowledged by one ``ok`` once executed, in order, so the ``k``-th plain
  ``ok`` after ``M110 N0`` means line ``k`` has run (an ``ok`` right after a ``Resend`` belongs to
  the rejected line). The sender keeps Marlin's command buffer full (``window`` lines beyond
  the last executed one; ``BUFSIZE`` = 4) and as many more as fit in its 127-byte serial RX
  buffer, so the printer never waits for the host and nothing overflows. With ``ADVANCED_OK``
  (``ok N<line>``) a lost ``ok`` is repaired as soon as the next one arrives.
- A resend request rewinds the sender. Lines already on the wire behind the rejected one will be
  rejected too, each with the same ``Resend`` request: those repeats are counted and ignored.
- Silence is a fault: if no ``ok``, ``Resend`` or ``busy:`` arrives within the timeout of the
  oldest outstanding command (long ones for G28/G29/M109/M190/M400), the link re-sends from the
  oldest unexecuted line. Thanks to line numbers that is harmless if the printer had run it (it
  answers ``Resend`` with its true position), and it recovers a lost ``ok``. After three retries
  without an answer the link reports the printer lost.
- M112, M108 and M410 jump the queue: they go out at once, whatever the window.
- ``start`` after the handshake means the printer reset: the link stops the stream, tells its
  listener, and shakes hands again so the app stays usable.

The link runs one reader thread (which also sends, so an ``ok`` is answered without a thread
switch) and one watchdog thread (timeouts and M105 polling). Listener callbacks run on those
threads and must return quickly; the GUI bridges them to its own thread.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import serial
import serial.tools.list_ports

from app.errors import PrinterConnectionError
from app.printing import marlin
from app.printing.marlin import FirmwareInfo, PrinterState, Temperature

_log = logging.getLogger(__name__)

# USB vendor ids of the serial chips and boards 3D printers use, with a short label.
_PRINTER_VIDS = {
    0x2341: "Arduino",
    0x2A03: "Arduino",
    0x1A86: "CH340",
    0x0403: "FTDI",
    0x10C4: "CP210x",
    0x2C99: "Prusa",
    0x0483: "STM32",
    0x1D50: "LPC/Smoothie",
    0x1EAF: "Maple",
    0x16D0: "MCS",
    0x27B1: "Ultimachine",
    0x2E8A: "RP2040",
}
_PRINTER_WORDS = (
    "marlin",
    "prusa",
    "printer",
    "3d",
    "creality",
    "ender",
    "arduino",
    "ch340",
    "usb serial",
    "usb-serial",
    "ramps",
    "skr",
    "btt",
    "einsy",
)
_PRINTER_NAMES = ("ttyusb", "ttyacm", "usbmodem", "usbserial", "com")


@dataclass(frozen=True)
class PortInfo:
    """A serial port and how much it looks like a 3D printer (higher ``score`` first)."""

    device: str
    description: str
    vid: int | None
    pid: int | None
    score: int

    @property
    def likely_printer(self) -> bool:
        return self.score >= 2


def _score(device: str, description: str, vid: int | None) -> int:
    score = 0
    if vid in _PRINTER_VIDS:
        score += 3
    text = f"{device} {description}".lower()
    if any(word in text for word in _PRINTER_WORDS):
        score += 2
    if any(name in device.lower().rsplit("/", 1)[-1] for name in _PRINTER_NAMES):
        score += 1
    if "bluetooth" in text or device.lower().startswith("/dev/ttys"):
        score -= 3
    return score


def list_ports() -> list[PortInfo]:
    """Serial ports on this machine, printer-like devices (USB serial chips, boards) first."""
    found = []
    for port in serial.tools.list_ports.comports():
        description = port.description if port.description not in (None, "n/a") else ""
        found.append(
            PortInfo(
                port.device,
                description,
                port.vid,
                port.pid,
                _score(port.device, description, port.vid),
            )
        )
    return sorted(found, key=lambda p: (-p.score, p.device))


def auto_port() -> str:
    """The most printer-like port, or a clear error when none looks like a printer."""
    ports = list_ports()
    candidates = [p for p in ports if p.score > 0]
    if not candidates:
        listed = ", ".join(p.device for p in ports) or "none"
        msg = f"no printer-like USB serial port found (ports: {listed}); plug the printer in "
        msg += "and switch it on, or name the port with --port"
        raise PrinterConnectionError(msg)
    return candidates[0].device


@dataclass
class LinkOptions:
    """Timing and flow-control settings of a :class:`SerialLink`."""

    baud: int = 115200
    connect_timeout: float = 8.0
    hello_interval: float = 1.0
    command_timeout: float = marlin.DEFAULT_TIMEOUT
    window: int | None = None  # None: 4 for Marlin (BUFSIZE), 1 (ping-pong) for others
    rx_buffer: int = 127  # Marlin: bytes that may wait in its serial buffer beyond the window
    history: int = 512
    temperature_interval: float = 2.0
    max_retries: int = 3
    ok_after_resend: bool = True


class LinkListener:
    """Callbacks from a :class:`SerialLink`; all optional, called on the link's threads."""

    def on_executed(self, number: int, tag: object) -> None:
        """Line ``number`` (sent with ``tag``) has been executed by the printer."""

    def on_temperatures(self, temperatures: dict[str, Temperature]) -> None:
        """A temperature report arrived."""

    def on_message(self, line: str) -> None:
        """A line from the printer that is not protocol traffic (echo:, errors, actions)."""

    def on_reset(self) -> None:
        """The printer reset (``start``) after the handshake; the stream was dropped."""

    def on_failure(self, message: str, disconnected: bool) -> None:
        """The printer failed (fatal firmware error, stopped answering, or link lost)."""


@dataclass
class _Entry:
    command: str
    tag: object
    data: bytes


class SerialLink:
    """One connection to one printer on a serial port; see the module docstring."""

    def __init__(
        self, port: str, options: LinkOptions | None = None, listener: LinkListener | None = None
    ) -> None:
        self.port = port
        self.options = options or LinkOptions()
        self.listener = listener or LinkListener()
        self.state = PrinterState.DISCONNECTED
        self.firmware = FirmwareInfo()
        self.temperatures: dict[str, Temperature] = {}
        self.failure: str | None = None
        self.counters = collections.Counter()
        self._serial: serial.Serial | None = None
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._reset_link_state()
        self._stream: Iterator[tuple[str, object]] | None = None
        self._stream_paused = False
        self._controls: collections.deque[tuple[str, object]] = collections.deque()
        self._bytes_in = 0
        self._text_bytes_in = 0
        self._text_lines = 0
        self._hello: dict[str, object] = {}

    # -- connection --------------------------------------------------------------------------

    def connect(self) -> FirmwareInfo:
        """Open the port, shake hands (M110), detect the firmware (M115), set up temperatures.

        Raises :class:`PrinterConnectionError` with a message that says what to check when the
        port is busy or missing, the baud rate is wrong, or nothing answers.
        """
        self.failure = None
        self._closing = False
        self._open()
        self.state = PrinterState.CONNECTING
        self._stop.clear()
        reader = threading.Thread(target=self._read_loop, name="printer-reader", daemon=True)
        self._threads = [reader]
        reader.start()
        try:
            self._handshake()
        except PrinterConnectionError:
            self.close()
            raise
        watchdog = threading.Thread(target=self._watch_loop, name="printer-watchdog", daemon=True)
        self._threads.append(watchdog)
        watchdog.start()
        return self.firmware

    def _open(self) -> None:
        try:
            self._serial = serial.Serial(
                self.port, self.options.baud, timeout=0.05, write_timeout=5, exclusive=True
            )
        except serial.SerialException as exc:
            raise PrinterConnectionError(_open_error(self.port, exc)) from None
        except (OSError, ValueError) as exc:
            raise PrinterConnectionError(_open_error(self.port, exc)) from None

    def close(self) -> None:
        """Stop the threads and close the port (safe to call twice)."""
        self._closing = True
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2)
        self._threads = []
        if self._serial is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                self._serial.close()
            self._serial = None
        if self.state not in (PrinterState.ERROR,):
            self.state = PrinterState.DISCONNECTED
        with self._idle:
            self._idle.notify_all()

    def __enter__(self) -> SerialLink:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _handshake(self) -> None:
        deadline = time.monotonic() + self.options.connect_timeout
        with self._lock:
            self._hello = {"phase": "hello", "oks": 0, "last_ok": 0.0, "lines": []}
        next_hello = 0.0
        while time.monotonic() < deadline:
            now = time.monotonic()
            with self._lock:
                phase = self._hello["phase"]
                if phase == "hello" and now >= next_hello:
                    self._write(marlin.format_line(0, "M110 N0"))
                    next_hello = now + self.options.hello_interval
                elif phase == "hello" and self._hello["oks"] and now - self._hello["last_ok"] > 0.3:
                    self._hello["phase"] = "m115"
                    self._write(marlin.format_line(1, "M115"))
                elif phase == "done":
                    break
                if self._hello.pop("restart", False):
                    next_hello = 0.0
            if self.failure:
                raise PrinterConnectionError(self.failure)
            time.sleep(0.01)
        else:
            raise PrinterConnectionError(self._silence_message())
        self._after_handshake()

    def _after_handshake(self) -> None:
        with self._lock:
            self.firmware = marlin.firmware_info(self._hello["lines"])
            self._reset_link_state(first_free=2)
            self._window = self.options.window or (4 if self.firmware.is_marlin else 1)
            automatic = self.options.window is None and self.firmware.is_marlin
            self._rx_budget = self.options.rx_buffer if automatic else 0
            self._autoreport = self.firmware.has("AUTOREPORT_TEMP")
            self.state = PrinterState.IDLE
            self._hello = {}
            if self._autoreport:
                interval = max(1, round(self.options.temperature_interval))
                self._controls.append((f"M155 S{interval}", None))
            self._pump()

    def _silence_message(self) -> str:
        baud = self.options.baud
        if self._bytes_in and (self._text_bytes_in / self._bytes_in < 0.9 or not self._text_lines):
            return (
                f"the printer on {self.port} answers with unreadable data at {baud} baud: "
                "the baud rate is probably wrong; set the printer profile's baud rate "
                "(Marlin boards use 115200 or 250000)"
            )
        if self._bytes_in:
            return (
                f"the device on {self.port} sends text but never acknowledged a command "
                f"within {self.options.connect_timeout:g} s; check that it is a 3D printer "
                "running Marlin-compatible firmware"
            )
        return (
            f"no answer from {self.port} within {self.options.connect_timeout:g} s at "
            f"{baud} baud; check that the printer is switched on, the USB cable is "
            "plugged in and this is the printer's port"
        )

    # -- public sending API ------------------------------------------------------------------

    @property
    def window(self) -> int:
        return self._window

    def send(self, command: str, tag: object = None) -> None:
        """Queue one command (ahead of the print stream); emergency commands go out at once."""
        command = marlin.clean_command(command)
        if not command:
            return
        if marlin.is_emergency(command):
            self.send_emergency(command)
            return
        with self._lock:
            self._require_usable()
            self._controls.append((command, tag))
            self._pump()

    def send_emergency(self, command: str) -> None:
        """Send M112/M108/M410 now, bypassing the queue and the window."""
        with self._lock:
            if self._serial is None:
                msg = "the printer is not connected; the emergency command could not be sent"
                raise PrinterConnectionError(msg)
            self.counters["emergency"] += 1
            number = self._assign(command, None)
            self._write_entry(number)
            if self._send_ptr == number:
                self._send_ptr = number + 1
            if marlin.command_code(command) == "M112":  # the printer halts: send nothing more
                self.failure = (
                    "emergency stop sent (M112): the printer has halted; reset it before "
                    "using it again"
                )
                self.state = PrinterState.ERROR
                self._stream = None
                self._controls.clear()

    def start_stream(self, lines: Iterator[tuple[str, object]]) -> None:
        """Feed ``(command, tag)`` pairs as fast as the printer takes them."""
        with self._lock:
            self._require_usable()
            self._stream = lines
            self._stream_paused = False
            self._pump()

    def pause_stream(self) -> None:
        with self._lock:
            self._stream_paused = True

    def resume_stream(self) -> None:
        with self._lock:
            self._stream_paused = False
            self._pump()

    def stop_stream(self) -> None:
        """Drop the rest of the stream and queued commands (lines on the wire still run)."""
        with self._lock:
            self._stream = None
            self._controls.clear()

    @property
    def stream_done(self) -> bool:
        with self._lock:
            return self._stream is None

    @property
    def outstanding(self) -> int:
        """Numbered lines assigned but not yet executed, plus queued commands."""
        with self._lock:
            return (self._next_new - 1 - self._executed) + len(self._controls)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every queued and sent command has executed (stream ended or paused)."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while True:
                busy = self._next_new - 1 > self._executed or self._controls
                streaming = self._stream is not None and not self._stream_paused
                if not busy and not streaming:
                    return True
                if self._serial is None or self.failure:
                    return False
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(0.1 if left is None else min(left, 0.1))

    def _require_usable(self) -> None:
        if self._serial is None or self.state in (PrinterState.DISCONNECTED, PrinterState.ERROR):
            msg = self.failure or "the printer is not connected; connect it first"
            raise PrinterConnectionError(msg)

    # -- line bookkeeping --------------------------------------------------------------------

    def _reset_link_state(self, first_free: int = 1) -> None:
        self._history: dict[int, _Entry] = {}
        self._next_new = first_free  # number for the next new command
        self._send_ptr = first_free  # next number to put on the wire
        self._executed = first_free - 1  # last line known executed
        self._pending_resend: int | None = None
        self._rewind_to: int | None = None
        self._stale = 0
        self._wire = 0  # lines on the wire not yet answered by an ok
        self._retries = 0
        self._poked = False
        self._last_progress = time.monotonic()
        self._last_poll = 0.0
        self._poll_outstanding = False
        self._highest_sent = first_free - 1
        self._window = getattr(self, "_window", 1)
        self._rx_budget = getattr(self, "_rx_budget", 0)
        self._autoreport = getattr(self, "_autoreport", False)

    def _assign(self, command: str, tag: object) -> int:
        number = self._next_new
        self._next_new += 1
        data = (marlin.format_line(number, command) + "\n").encode("ascii", errors="replace")
        self._history[number] = _Entry(command, tag, data)
        oldest = number - max(self.options.history, 2 * self._window + 8)
        if oldest in self._history and oldest <= self._executed:
            del self._history[oldest]
        return number

    def _write(self, text: str) -> None:
        self._transmit((text + "\n").encode("ascii", errors="replace"))

    def _write_entry(self, number: int) -> None:
        self.counters["sent"] += 1
        self._wire += 1
        self._transmit(self._history[number].data)

    def _transmit(self, data: bytes) -> None:
        if self._serial is None:
            return
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            self._lost(
                f"the printer connection on {self.port} was lost ({_short(exc)}); "
                "check the USB cable and the printer's power"
            )

    def _next_command(self) -> tuple[str, object] | None:
        if self._controls:
            return self._controls.popleft()
        if self._stream is None or self._stream_paused:
            return None
        for raw, tag in self._stream:
            command = marlin.clean_command(raw)
            if command:
                return command, tag
        self._stream = None
        self._idle.notify_all()
        return None

    def _pump(self) -> None:
        """Put lines on the wire while the printer has room (called with the lock held)."""
        if self._serial is None or self.state not in (PrinterState.IDLE, PrinterState.PRINTING):
            return
        while True:
            if self._send_ptr >= self._next_new:
                item = self._next_command()
                if item is None:
                    return
                self._assign(*item)
                if marlin.command_code(item[0]) == "M105":
                    self._poll_outstanding = True
            if not self._fits(self._send_ptr):
                return
            if self._send_ptr not in self._history:
                self._fatal(
                    f"the printer asked for line {self._send_ptr} again, which the "
                    "host no longer holds; the print was stopped"
                )
                return
            if self._send_ptr <= self._highest_sent:
                self.counters["resent"] += 1
            self._write_entry(self._send_ptr)
            self._highest_sent = max(self._highest_sent, self._send_ptr)
            self._send_ptr += 1

    def _fits(self, number: int) -> bool:
        """Whether line ``number`` fits: in the command buffer, or else in the RX buffer."""
        first_extra = self._executed + self._window + 1
        if number < first_extra:
            return True
        if not self._rx_budget:
            return False
        extra = 0
        for m in range(first_extra, number + 1):
            entry = self._history.get(m)
            extra += len(entry.data) if entry else 0
        return extra <= self._rx_budget

    # -- receiving ---------------------------------------------------------------------------

    def _read_loop(self) -> None:
        pending = b""
        while not self._stop.is_set():
            port = self._serial
            if port is None:
                return
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError) as exc:
                if not self._stop.is_set():
                    self._lost(
                        f"the printer connection on {self.port} was lost "
                        f"({_short(exc)}); check the USB cable and the printer's power"
                    )
                return
            if not chunk:
                continue
            if self._hello:  # telling noise from text matters only while shaking hands
                self._count_bytes(chunk)
            pending += chunk
            if b"\n" not in pending:
                if len(pending) > 4096:
                    pending = b""
                continue
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._dispatch(raw.decode("ascii", errors="replace").strip())

    def _count_bytes(self, chunk: bytes) -> None:
        self._bytes_in += len(chunk)
        self._text_bytes_in += sum(1 for b in chunk if 32 <= b < 127 or b in (9, 10, 13))

    def _dispatch(self, line: str) -> None:
        if not line:
            return
        if self._hello and "\ufffd" not in line and marlin.looks_like_text(line.encode("ascii")):
            self._text_lines += 1
        calls: list = []
        with self._lock:
            if self._hello:
                self._handshake_line(line)
            else:
                self._protocol_line(line, calls)
            self._idle.notify_all()
        for call in calls:
            try:
                call()
            except Exception:  # a listener's bug must never stop the stream to the printer
                _log.exception("printer listener failed")

    def _handshake_line(self, line: str) -> None:
        if marlin.parse_ok(line) is not None:
            if self._hello["phase"] == "hello":
                self._hello["oks"] += 1
                self._hello["last_ok"] = time.monotonic()
            elif self._hello["phase"] == "m115":
                self._hello["phase"] = "done"
            return
        if marlin.is_start(line):
            self._hello.update(phase="hello", oks=0, restart=True)
            return
        if "FIRMWARE_NAME" in line or line.startswith("Cap:"):
            self._hello["lines"].append(line)
            self._hello["name_seen"] = True
        elif marlin.is_fatal_error(line):
            self.failure = (
                f"the printer reports an error and has stopped ({line[:80]}); "
                "fix the cause, reset the printer and connect again"
            )

    def _protocol_line(self, line: str, calls: list) -> None:
        ok = marlin.parse_ok(line)
        if ok is not None:
            self._progress()
            self._on_ok(ok, calls)
            return
        resend = marlin.parse_resend(line)
        if resend is not None:
            self._progress()
            self.counters["resend_requests"] += 1
            if self.options.ok_after_resend:
                self._pending_resend = resend
            else:
                self._on_resend(resend, calls)
            return
        temps = marlin.parse_temperatures(line) if ("T:" in line or "B:" in line) else {}
        if temps:
            if " W:" in line:
                self._progress()  # a heat-and-wait in progress: the printer is working
            self.temperatures.update(temps)
            calls.append(lambda t=dict(temps): self.listener.on_temperatures(t))
            return
        if marlin.is_busy(line):
            self._progress()
            self.counters["busy"] += 1
            return
        if marlin.is_start(line):
            self._on_reset(calls)
            return
        if marlin.is_fatal_error(line):
            self._fatal(
                f"the printer stopped with an error ({line[:80]}); fix the cause and "
                "reset the printer before printing again",
                calls,
            )
            return
        if marlin.is_line_error(line):
            self.counters["line_errors"] += 1
            return
        calls.append(lambda: self.listener.on_message(line))

    def _progress(self) -> None:
        self._last_progress = time.monotonic()
        self._retries = 0

    def _on_ok(self, ok: marlin.OkReply, calls: list) -> None:
        if ok.temperatures:
            self.temperatures.update(ok.temperatures)
            calls.append(lambda t=dict(ok.temperatures): self.listener.on_temperatures(t))
        if self._pending_resend is not None:
            number, self._pending_resend = self._pending_resend, None
            self._on_resend(number, calls)
            return
        self._wire = max(0, self._wire - 1)
        if ok.line is not None and self._executed + 1 < ok.line < self._next_new:
            # ADVANCED_OK names the line: oks were lost on the wire; catch up without waiting
            self.counters["lost_oks"] += ok.line - self._executed - 1
            self._mark_executed_through(ok.line - 1, calls)
        if self._executed + 1 >= self._next_new:
            self.counters["unexpected_ok"] += 1
            return
        self._executed += 1
        if self._send_ptr <= self._executed:
            self._send_ptr = self._executed + 1
        entry = self._history.get(self._executed)
        if entry is not None:
            if marlin.command_code(entry.command) == "M105":
                self._poll_outstanding = False
            number, tag = self._executed, entry.tag
            if tag is not None:
                calls.append(lambda: self.listener.on_executed(number, tag))
        self._pump()

    def _on_resend(self, number: int, calls: list) -> None:
        self._wire = max(0, self._wire - 1)
        if number < 1 or number > self._next_new:
            self.counters["odd_resend"] += 1
            return
        if self._poked:  # our retry showed where the printer really is
            self._poked = False
            self._mark_executed_through(number - 1, calls)
        if number == self._rewind_to and self._stale > 0:
            self._stale -= 1
            self.counters["stale_resends"] += 1
            return
        # Lines still on the wire: those up to number-1 were accepted and await execution, the
        # others will be rejected with this same request; those repeats are ignored.
        self._stale = max(0, self._wire - max(0, number - 1 - self._executed))
        self._rewind_to = number
        self._send_ptr = number
        self._pump()

    def _mark_executed_through(self, number: int, calls: list) -> None:
        while self._executed < min(number, self._next_new - 1):
            self._executed += 1
            entry = self._history.get(self._executed)
            if entry is not None and entry.tag is not None:
                n, tag = self._executed, entry.tag
                calls.append(lambda n=n, tag=tag: self.listener.on_executed(n, tag))

    def _on_reset(self, calls: list) -> None:
        self.counters["resets"] += 1
        self._stream = None
        self._controls.clear()
        self.state = PrinterState.CONNECTING
        calls.append(self.listener.on_reset)
        calls.append(self._rehandshake)

    def _rehandshake(self) -> None:
        def run() -> None:
            try:
                self._handshake()
            except PrinterConnectionError as exc:
                self._lost(str(exc))

        threading.Thread(target=run, name="printer-rehandshake", daemon=True).start()

    def _fatal(self, message: str, calls: list | None = None) -> None:
        self.failure = message
        self.state = PrinterState.ERROR
        self._stream = None
        self._controls.clear()
        call = lambda: self.listener.on_failure(message, False)  # noqa: E731
        if calls is None:
            threading.Thread(target=call, daemon=True).start()
        else:
            calls.append(call)

    def _lost(self, message: str) -> None:
        if self._closing:  # we closed the port ourselves
            return
        with self._lock:
            if self.failure is not None and self.state == PrinterState.DISCONNECTED:
                return
            self.failure = message
            self.state = PrinterState.DISCONNECTED
            self._stream = None
            self._controls.clear()
            self._stop.set()
            self._idle.notify_all()
        self.listener.on_failure(message, True)

    # -- watchdog ----------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stop.wait(0.05):
            with self._lock:
                if self.state not in (PrinterState.IDLE, PrinterState.PRINTING):
                    continue
                self._check_timeout()
                self._poll_temperature()

    def _check_timeout(self) -> None:
        oldest = self._executed + 1
        if oldest >= self._send_ptr and oldest >= self._next_new:
            self._last_progress = time.monotonic()
            return
        entry = self._history.get(oldest)
        limit = marlin.timeout_for(entry.command if entry else "", self.options.command_timeout)
        if time.monotonic() - self._last_progress < limit:
            return
        if self._retries >= self.options.max_retries:
            waited = limit * (self._retries + 1)
            message = (
                f"the printer stopped answering (no reply for {waited:.0f} s after "
                f"{self._retries} retries) at line {oldest}; check the printer and "
                "the cable, then resume or cancel the job"
            )
            self._stop.set()
            threading.Thread(target=self._lost, args=(message,), daemon=True).start()
            return
        self._retries += 1
        self.counters["timeouts"] += 1
        self._last_progress = time.monotonic()
        self._poked = True
        self._stale = 0
        self._wire = 0
        self._rewind_to = None
        self._pending_resend = None
        self._send_ptr = oldest
        self._pump()
        if self._send_ptr == oldest:  # nothing to resend: poke with the oldest line itself
            self._write_entry(oldest)

    def _poll_temperature(self) -> None:
        if self._autoreport or self._poll_outstanding:
            return
        now = time.monotonic()
        if now - self._last_poll >= self.options.temperature_interval:
            self._last_poll = now
            self._controls.append(("M105", None))
            self._pump()


def _short(exc: BaseException) -> str:
    text = str(exc).split("\n")[0]
    return text[:120] or exc.__class__.__name__


def _open_error(port: str, exc: BaseException) -> str:
    text = str(exc)
    number = getattr(exc, "errno", None)
    if "exclusively lock" in text or number in (errno.EBUSY, errno.EAGAIN) or "busy" in text:
        return (
            f"port {port} is in use by another program (OctoPrint, a slicer, another "
            "MedPrint window?); close it and connect again"
        )
    if (
        number == errno.ENOENT
        or "No such file" in text
        or ("could not open port" in text and ("FileNotFoundError" in text or "[Errno 2]" in text))
    ):
        ports = ", ".join(p.device for p in list_ports()) or "none"
        return (
            f"port {port} does not exist (is the printer plugged in and switched on?); "
            f"ports found: {ports}"
        )
    if number == errno.EACCES or "Permission denied" in text:
        return (
            f"no permission to open {port}; add your user to the 'dialout' group "
            "(Linux) and log in again"
        )
    return f"cannot open port {port} ({_short(exc)}); check the port name and the cable"

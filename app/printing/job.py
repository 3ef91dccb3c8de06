"""A print job: one G-code on one printer, the same interface over every transport.

A job is made for one backend (:mod:`app.printing.backends`): :class:`~.backends.usb.UsbJob`
streams to a Marlin printer on a serial port, :class:`~.backends.remote.RemoteJob` hands the file
to OctoPrint or Moonraker; :func:`app.printing.connection.open_job` picks the one for a
connection. Every job offers::

    job.start()            # blocks while it connects (and uploads); then runs on its threads
    job.pause(); job.resume(); job.cancel(); job.emergency_stop()
    job.status()           # a JobStatus snapshot, e.g. for a Qt timer
    job.wait()             # block until finished, cancelled or failed
    job.recover()          # USB: continue after a lost link or a printer reset, when asked

Callbacks run on the job's threads: a GUI forwards them through a signal (or polls
:meth:`PrintJob.status` from a timer). A job keeps running when no one listens.

What happens to a job by itself (it finished, failed, lost its printer, ended a cancel, or the
printer asked to pause, resume or cancel) is passed to ``on_event(event, facts)`` with the job's
facts and the caller's ``context``; the caller decides what to record. The job decides nothing
about who may print and records nothing itself.
"""

from __future__ import annotations

import bisect
import collections
import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import MedPrintError, PrintingError
from app.printing import marlin
from app.printing.marlin import GcodeState, PrinterState, Temperature
from app.printing.profiles import SERIAL_RE

StateCallback = Callable[[PrinterState, str], None]
ProgressCallback = Callable[["JobStatus"], None]
TemperatureCallback = Callable[[dict[str, Temperature]], None]
EventCallback = Callable[[str, dict[str, object]], None]

HISTORY_SAMPLES = 1800  # temperature reports kept for the plot (an hour at one per 2 s)
MAX_LINE = 95  # Marlin's MAX_CMD_SIZE is 96 including the terminator


_log = logging.getLogger(__name__)


def _safe(callback: Callable[..., None], *args: object) -> None:
    """Call a listener; its bug is logged and never stops the print."""
    try:
        callback(*args)
    except Exception:
        _log.exception("print job listener failed")


# ---------------------------------------------------------------------------------------------
# G-code source and summary


@dataclass(frozen=True)
class GcodeSummary:
    """One pass over the G-code: its hash, command count, layers and the slicer's estimate."""

    sha256: str
    size: int
    commands: int
    layer_starts: tuple[int, ...]
    estimated_time: float | None

    @property
    def layers(self) -> int:
        return len(self.layer_starts)

    def layer_at(self, index: int) -> int | None:
        """1-based layer of command ``index`` (None before the first layer)."""
        if not self.layer_starts:
            return None
        position = bisect.bisect_right(self.layer_starts, index)
        return position or None


class GcodeSource:
    """G-code from a file or from bytes (e.g. read from the vault), read as a stream."""

    def __init__(self, gcode: Path | str | bytes) -> None:
        self._data = gcode if isinstance(gcode, bytes) else None
        self.path = None if isinstance(gcode, bytes) else Path(gcode)
        if self.path is not None and not self.path.is_file():
            msg = "the G-code file was not found; slice the model again"
            raise PrintingError(msg)

    def open(self) -> io.BufferedIOBase:
        if self._data is not None:
            return io.BytesIO(self._data)
        return open(self.path, "rb")

    def read_bytes(self) -> bytes:
        with self.open() as handle:
            return handle.read()

    def commands(self, start: int = 0) -> Iterator[tuple[str, tuple[int, str]]]:
        """``(command, (index, command))`` for every command from index ``start`` on."""
        index = 0
        with self.open() as handle:
            for raw in handle:
                command = marlin.clean_command(raw.decode("ascii", errors="replace"))
                if not command:
                    continue
                if index >= start:
                    yield command, (index, command)
                index += 1

    def summarize(self) -> GcodeSummary:
        digest = hashlib.sha256()
        size = commands = 0
        layer_starts: list[int] = []
        estimate = None
        layer_z = -1.0
        pending_z = None
        with self.open() as handle:
            for number, raw in enumerate(handle, start=1):
                digest.update(raw)
                size += len(raw)
                text = raw.decode("ascii", errors="replace")
                stripped = text.strip()
                if stripped.startswith(";"):
                    if stripped.startswith((";LAYER_CHANGE", ";LAYER:")):
                        layer_starts.append(commands)
                    elif "estimated printing time" in stripped and "=" in stripped:
                        estimate = estimate or _parse_duration(stripped.split("=", 1)[1])
                    continue
                command = marlin.clean_command(text)
                if not command:
                    continue
                if len(command) > MAX_LINE:
                    msg = f"G-code line {number} is longer than the {MAX_LINE} characters "
                    msg += "a Marlin printer accepts; shorten it (e.g. an M117 message)"
                    raise PrintingError(msg)
                pending_z, layer_z = _track_layer(
                    command, commands, pending_z, layer_z, layer_starts
                )
                commands += 1
        if not commands:
            msg = "the G-code has no commands; slice the model again"
            raise PrintingError(msg)
        return GcodeSummary(digest.hexdigest(), size, commands, tuple(layer_starts), estimate)


def _track_layer(
    command: str, index: int, pending_z: float | None, layer_z: float, layer_starts: list[int]
) -> tuple[float | None, float]:
    """Fallback layer detection for G-code without layer comments: a new, higher Z that is
    followed by an extruding move starts a layer (z-hops do not, they come back down)."""
    if layer_starts and layer_z < 0:  # the file has layer comments; nothing to do
        return pending_z, layer_z
    code = marlin.command_code(command)
    if code not in ("G0", "G1"):
        return pending_z, layer_z
    z = marlin.param(command, "Z")
    if z is not None:
        pending_z = z
    e = marlin.param(command, "E")
    higher = pending_z is not None and pending_z > layer_z + 1e-6
    moves = marlin.param(command, "X") is not None or marlin.param(command, "Y") is not None
    if e is not None and e > 0 and higher and moves:
        layer_z = pending_z
        layer_starts.append(index)
    return pending_z, layer_z


def _parse_duration(text: str) -> float | None:
    total, number = 0.0, ""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    for char in text.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total += float(number) * units[char]
            number = ""
    return total or None


def machine_identity(
    serial: str | None = None, model: str | None = None, source: str = "printer"
) -> dict[str, str]:
    """A job's facts about its machine: ``serial`` (when it is a plain serial-number text),
    where it came from, and the ``model``; nothing for what the printer did not report."""
    found: dict[str, str] = {}
    if serial and SERIAL_RE.match(serial.strip()):
        found |= {"serial": serial.strip(), "serial_source": source}
    if model:
        found["machine"] = " ".join(model.split())[:64]
    return found


# ---------------------------------------------------------------------------------------------
# status


def estimate_remaining(
    elapsed: float, progress: float, slicer_estimate: float | None, m73_remaining: float | None
) -> float | None:
    """Seconds left: the slicer's own count-down (M73 R) when the G-code carries it; else its
    total estimate scaled by how the print is keeping pace so far; else a linear extrapolation.
    None until there is something to go on."""
    if m73_remaining is not None:
        return max(0.0, m73_remaining)
    progress = min(max(progress, 0.0), 1.0)
    if slicer_estimate:
        left = slicer_estimate * (1.0 - progress)
        if progress >= 0.05 and elapsed > 0:
            left *= elapsed / (slicer_estimate * progress)  # this printer's pace vs the slicer's
        return max(0.0, left)
    if progress > 0.01 and elapsed > 0:
        return elapsed * (1.0 - progress) / progress
    return None


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job, for the panel and the CLI."""

    state: PrinterState
    progress: float = 0.0
    elapsed: float = 0.0
    remaining: float | None = None
    layer: int | None = None
    layers: int | None = None
    line: int | None = None
    lines: int | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)
    message: str = ""


@dataclass(frozen=True)
class ResumePoint:
    """Where a broken job can continue: after command ``index``, in this machine state."""

    index: int
    machine: GcodeState
    reason: str


# ---------------------------------------------------------------------------------------------
# the job


class PrintJob:
    """One print of one G-code on one printer; the state machine every transport shares.

    A backend's job class implements ``_begin`` (connect and start), ``_do_pause``,
    ``_do_resume``, ``_do_cancel`` and ``_do_emergency_stop``; see the module docstring.
    """

    usb = False  # a host-streamed job that can recover from a lost link (USB)

    def __init__(
        self,
        gcode: Path | str | bytes,
        backend: Any,
        *,
        printer: str = "",
        remote_name: str | None = None,
        context: Mapping[str, object] | None = None,
        on_state: StateCallback | None = None,
        on_progress: ProgressCallback | None = None,
        on_temperature: TemperatureCallback | None = None,
        on_event: EventCallback | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.source = GcodeSource(gcode)
        self.backend = backend
        self.printer = printer
        self.context = dict(context or {})
        self.job_id = uuid.uuid4().hex[:12]
        self.remote_name = remote_name or f"job-{self.job_id}.gcode"
        self.on_state = on_state
        self.on_progress = on_progress
        self.on_temperature = on_temperature
        self.on_event = on_event
        self.poll_interval = poll_interval
        self.summary: GcodeSummary | None = None
        self.resume_point: ResumePoint | None = None
        self.event_errors: list[str] = []
        self.machine: dict[str, str] = {}  # what the connected printer says it is
        self._stopping = False
        self._state = PrinterState.IDLE
        self._message = ""
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._temperatures: dict[str, Temperature] = {}
        self._started_at: float | None = None
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._ended_at: float | None = None
        self._history: collections.deque[tuple[float, dict[str, Temperature]]] = collections.deque(
            maxlen=HISTORY_SAMPLES
        )

    # -- public API --------------------------------------------------------------------------

    @property
    def state(self) -> PrinterState:
        return self._state

    @property
    def kind(self) -> str:
        """The transport: ``usb``, ``octoprint`` or ``moonraker``."""
        return str(getattr(self.backend, "kind", ""))

    def summarize(self) -> GcodeSummary:
        """Check and hash the G-code once (a clear error for G-code a printer cannot take)."""
        if self.summary is None:
            self.summary = self.source.summarize()
        return self.summary

    def start(self) -> None:
        """Check the G-code, connect, and begin printing.

        Blocks while it connects and (for OctoPrint/Moonraker) uploads: seconds, so a GUI calls
        it from its worker. Raises the connection's error; the job is then in ``ERROR``.
        """
        if self._state != PrinterState.IDLE:
            msg = f"this job is already {self._state.value}; start a new job to print again"
            raise PrintingError(msg)
        self.summarize()
        self._set_state(PrinterState.CONNECTING, f"connecting to {self.printer or 'printer'}")
        try:
            self._begin()
        except MedPrintError as exc:
            self._fail(str(exc))
            raise

    def pause(self, *, cool_down: bool = False) -> None:
        """Pause: USB lifts and parks the head; a networked printer uses its own pause.

        ``cool_down`` (USB) also turns the hot end off for a long pause (the bed stays warm so
        the part stays attached); resuming heats it back up before the head returns.
        """
        with self._lock:
            if self._state != PrinterState.PRINTING:
                msg = f"cannot pause: the job is {self._state.value}"
                raise PrintingError(msg)
            self._set_state(PrinterState.PAUSING, "pausing: finishing the current moves")
            self._paused_at = time.monotonic()
        self._background(lambda: self._do_pause(cool_down))

    def resume(self) -> None:
        """Resume a paused job at the same position and temperatures."""
        with self._lock:
            if self._state != PrinterState.PAUSED:
                msg = f"cannot resume: the job is {self._state.value}"
                raise PrintingError(msg)
            self._set_state(PrinterState.RESUMING, "resuming: heating and returning to the part")
        self._background(self._do_resume)

    def cancel(self) -> None:
        """Cancel: stop feeding, heaters and fan off, lift and park, motors off."""
        with self._lock:
            if self._state.done or self._state == PrinterState.CANCELLING:
                return
            if self._state in (PrinterState.DISCONNECTED, PrinterState.IDLE) or self._unreachable():
                self._end(PrinterState.CANCELLED, "cancelled (the printer was not reachable)")
                return
            self._set_state(PrinterState.CANCELLING, "cancelling: heaters off, parking")
        self._background(self._do_cancel)

    def emergency_stop(self) -> None:
        """M112: the printer halts at once and must be reset. Use only in an emergency."""
        self._stopping = True
        try:
            self._do_emergency_stop()
        except MedPrintError:
            self._stopping = False
            raise
        self._end(PrinterState.ERROR, "emergency stop: reset the printer before using it again")

    def resume_after(self, index: int) -> None:
        """Start part-way, after command ``index`` (USB only; see :class:`UsbJob`)."""
        msg = "only a new USB job can be resumed part-way"
        raise PrintingError(msg)

    def recover(self, *, back: int = 0, port: str | None = None) -> None:
        """Continue after a lost link or a printer reset (USB only; see :class:`UsbJob`)."""
        msg = "nothing to resume: this job has no resume point"
        raise PrintingError(msg)

    def wait(self, timeout: float | None = None) -> PrinterState:
        """Block until the job has finished, been cancelled, failed or lost its printer."""
        self._done.wait(timeout)
        return self._state

    def status(self) -> JobStatus:
        with self._lock:
            return self._status()

    def temperature_history(self) -> list[tuple[float, dict[str, Temperature]]]:
        """(seconds of printing, readings) for the live plot; the last ~hour of reports."""
        with self._lock:
            return list(self._history)

    def facts(self) -> dict[str, object]:
        """What the job is (for a record of it): its id, transport, file, G-code hash and size,
        printer, and the caller's ``context``."""
        summary = self.summary
        return {
            "job": self.job_id,
            "transport": self.kind,
            "file": self.remote_name,
            "gcode_sha256": summary.sha256 if summary else None,
            "commands": summary.commands if summary else None,
            "printer": self.printer,
            **self.context,
            **self.machine,
        }

    def close(self) -> None:
        """Release the connection (a running USB job stops being fed: cancel it first)."""
        self._done.set()
        self.backend.close()

    def _identify(self) -> None:
        """Once connected: the serial number (and model) the printer reports, which the
        job's facts then carry over the profile's (a backend without ``identity`` has none)."""
        ask = getattr(self.backend, "identity", None)
        self.machine = machine_identity(**(ask() if callable(ask) else {}))

    # -- what a backend's job implements -----------------------------------------------------

    def _begin(self) -> None:
        raise NotImplementedError

    def _do_pause(self, cool_down: bool) -> None:
        raise NotImplementedError

    def _do_resume(self) -> None:
        raise NotImplementedError

    def _do_cancel(self) -> None:
        raise NotImplementedError

    def _do_emergency_stop(self) -> None:
        raise NotImplementedError

    def _unreachable(self) -> bool:
        """True when a cancel cannot reach the printer (it is then only marked cancelled)."""
        return False

    def _status(self) -> JobStatus:
        raise NotImplementedError

    # -- state, events -----------------------------------------------------------------------

    def _paused_state(self) -> None:
        with self._lock:
            if self._paused_at is None:
                self._paused_at = time.monotonic()
            self._set_state(PrinterState.PAUSED, "paused: the head is parked")

    def _resumed_state(self) -> None:
        with self._lock:
            if self._paused_at is not None:
                self._paused_total += time.monotonic() - self._paused_at
                self._paused_at = None
            self._set_state(PrinterState.PRINTING, "printing")

    def _set_state(self, state: PrinterState, message: str) -> None:
        with self._lock:
            self._state = state
            self._message = message
        if self.on_state is not None:
            _safe(self.on_state, state, message)

    def _end(self, state: PrinterState, message: str) -> None:
        with self._lock:
            if self._state.done and self._done.is_set():
                return
            self._ended_at = time.monotonic()
            self._set_state(state, message)
        if state == PrinterState.FINISHED:
            self._event("finish")
        elif state == PrinterState.CANCELLED:
            self._event("cancelled")
        self._done.set()
        if self.on_progress is not None:
            self._notify_progress()

    def _fail(self, message: str) -> None:
        if self._stopping:
            return  # the halt we asked for: emergency_stop ends the job itself
        self._event("error", reason=message[:120])
        self._end(PrinterState.ERROR, message)

    def _printer_asks(self, action: str) -> None:
        """The printer asked to pause, resume or cancel (e.g. its own menu)."""
        handler = {"pause": self.pause, "resume": self.resume, "cancel": self.cancel}.get(action)
        if handler is None:
            return
        try:
            handler()
        except PrintingError:
            return
        self._event(action, by="printer")

    def _background(self, fn: Callable[[], None]) -> None:
        def run() -> None:
            try:
                fn()
            except MedPrintError as exc:
                self._fail(str(exc))

        threading.Thread(target=run, name="print-control", daemon=True).start()

    def _notify_progress(self) -> None:
        status = self.status()
        if self.on_progress is not None:
            _safe(self.on_progress, status)

    def _record_temperatures(self, temperatures: dict[str, Temperature]) -> None:
        with self._lock:
            self._temperatures.update(temperatures)
            self._history.append((self._elapsed(), dict(temperatures)))
        if self.on_temperature is not None:
            _safe(self.on_temperature, dict(temperatures))

    def _elapsed(self) -> float:
        if self._started_at is None:
            return 0.0
        end = self._ended_at or time.monotonic()
        paused = self._paused_total + (end - self._paused_at if self._paused_at else 0.0)
        return max(0.0, end - self._started_at - paused)

    def _event(self, event: str, **extra: object) -> None:
        """Tell ``on_event`` what happened; a failing listener is kept in ``event_errors``
        (a print that has happened cannot be undone, so it never stops the job)."""
        if self.on_event is None:
            return
        try:
            self.on_event(event, {**self.facts(), **extra})
        except Exception as exc:
            self.event_errors.append(f"{event}: {exc}")

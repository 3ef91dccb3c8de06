"""A print job over any transport: USB (Marlin streaming), OctoPrint or Moonraker.

:class:`PrintJob` is what the Print panel and ``medprint print`` drive::

    settings = ConnectionSettings.from_profile(profile, port="/dev/ttyUSB0")
    job = PrintJob(gcode_path, open_backend(settings), case="C-7K3M-Q9", mesh_version=3,
                   printer=profile.name, profile=profile.id,
                   on_state=..., on_progress=..., on_temperature=...)
    job.start()            # returns at once; the job runs on its own threads
    job.pause(); job.resume(); job.cancel()
    job.status()           # a JobStatus snapshot, e.g. for a Qt timer
    job.wait()             # block until finished, cancelled or failed

Callbacks run on the job's threads: a GUI forwards them through a signal (or polls
:meth:`PrintJob.status` from a timer). A job keeps running when no one listens.

Every step is audited (``print.start``, ``print.pause``, ``print.resume``, ``print.cancel``,
``print.finish``, ``print.error``, ``print.disconnect``, ``print.recover``) with the G-code's
SHA-256, the mesh version, the printer and the profile; the start is refused if it cannot be
audited.

After a lost connection or a printer reset the job stops in ``DISCONNECTED``/``ERROR`` with a
:class:`ResumePoint`: the user may call :meth:`PrintJob.recover`, which re-homes X/Y only,
restores temperatures, fan and position, and continues after the last acknowledged line.
Nothing is resumed silently.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import hashlib
import io
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from app.errors import MedPrintError, PrinterConnectionError, PrintingError
from app.printing import marlin
from app.printing.marlin import GcodeState, PrinterState, Temperature
from app.printing.serial_link import LinkListener, LinkOptions, SerialLink, auto_port

try:  # the audit log may not exist in every build of the core
    from app.security import audit as _audit_module
except ImportError:  # pragma: no cover
    _audit_module = None

AuditHook = Callable[..., None]
StateCallback = Callable[[PrinterState, str], None]
ProgressCallback = Callable[["JobStatus"], None]
TemperatureCallback = Callable[[dict[str, Temperature]], None]

HISTORY_SAMPLES = 1800  # temperature reports kept for the plot (an hour at one per 2 s)
MAX_LINE = 95  # Marlin's MAX_CMD_SIZE is 96 including the terminator
CONNECTION_KINDS = ("usb", "octoprint", "moonraker")


_log = logging.getLogger(__name__)


def _safe(callback: Callable[..., None], *args: object) -> None:
    """Call a listener; its bug is logged and never stops the print."""
    try:
        callback(*args)
    except Exception:
        _log.exception("print job listener failed")


def default_audit(action: str, case: str | None = None, **facts: object) -> None:
    """``app.security.audit.record`` when the audit module is present."""
    if _audit_module is not None:
        _audit_module.record(action, case=case, **facts)


# ---------------------------------------------------------------------------------------------
# connection settings


@dataclass(frozen=True)
class ConnectionSettings:
    """How to reach one printer; a profile's connection adapted, plus the API key if any."""

    kind: str = "usb"
    port: str = "auto"
    baud: int = 115200
    url: str = ""
    api_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in CONNECTION_KINDS:
            msg = f"unknown connection kind '{self.kind}'; use one of {', '.join(CONNECTION_KINDS)}"
            raise PrintingError(msg)

    @classmethod
    def from_profile(
        cls,
        profile: Any,
        *,
        port: str | None = None,
        url: str | None = None,
        kind: str | None = None,
        api_key: str | None = None,
    ) -> ConnectionSettings:
        """Settings from a printer profile (``profile.connection``), with CLI-style overrides.

        ``port`` forces USB; ``url`` forces a networked printer (the profile's kind when it is
        one, else ``kind`` or OctoPrint). The API key of a networked printer comes from the OS
        keystore (``printer-api-key/<profile id>``) unless given.
        """
        conn = getattr(profile, "connection", None)
        chosen = kind or getattr(conn, "kind", "usb")
        if port:
            chosen = "usb"
        elif url and chosen == "usb":
            chosen = kind or "octoprint"
        settings = cls(
            kind=chosen,
            port=port or getattr(conn, "port", "auto") or "auto",
            baud=int(getattr(conn, "baud_rate", 115200)),
            url=(url or getattr(conn, "url", "") or "").rstrip("/"),
            api_key=api_key,
        )
        if settings.kind != "usb" and settings.api_key is None:
            settings = replace(settings, api_key=api_key_from_keystore(getattr(profile, "id", "")))
        return settings


def api_key_from_keystore(profile_id: str) -> str | None:
    """The API key stored for ``profile_id`` (None when there is none)."""
    from app.security.keystore import Keystore  # noqa: PLC0415 (keyring only when needed)

    try:
        from app.printing.profiles import api_key_name  # noqa: PLC0415

        name = api_key_name(profile_id)
    except ImportError:  # pragma: no cover
        name = f"printer-api-key/{profile_id}"
    value = Keystore().get(name)
    return None if value is None else value.decode("utf-8")


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
            msg = f"G-code file {self.path.name} not found; slice the model again"
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


@dataclass
class RemoteStatus:
    """What a networked printer reports in one poll."""

    state: PrinterState
    progress: float = 0.0
    elapsed: float | None = None
    remaining: float | None = None
    layer: int | None = None
    layers: int | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)
    message: str = ""


class PrinterBackend(Protocol):
    """What a :class:`PrintJob` needs from a transport."""

    kind: str

    def connect(self) -> None: ...
    def close(self) -> None: ...


class RemoteBackend(PrinterBackend, Protocol):
    """A printer that runs the job itself (OctoPrint, Moonraker)."""

    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None: ...
    def poll(self) -> RemoteStatus: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def cancel(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# USB backend


@dataclass(frozen=True)
class PauseSettings:
    """Where the head goes on pause and cancel, and how far filament is pulled back (mm)."""

    park_x: float = 0.0
    park_y: float = 200.0
    lift: float = 10.0
    retract: float = 2.0
    max_z: float = 250.0
    travel_feed: float = 6000.0
    z_feed: float = 600.0


class UsbBackend:
    """A Marlin printer on a serial port, streamed line by line by the host."""

    kind = "usb"

    def __init__(
        self,
        port: str = "auto",
        *,
        options: LinkOptions | None = None,
        pause: PauseSettings | None = None,
    ) -> None:
        self.port = port
        self.options = options or LinkOptions()
        self.pause_settings = pause or PauseSettings()
        self.link: SerialLink | None = None

    def connect(self, listener: LinkListener | None = None) -> None:
        port = auto_port() if self.port in ("", "auto") else self.port
        self.link = SerialLink(port, self.options, listener)
        self.link.connect()

    def close(self) -> None:
        if self.link is not None:
            self.link.close()


def pause_script(state: GcodeState, settings: PauseSettings) -> list[str]:
    """Retract, lift and park: the head leaves the part without a blob or a scar."""
    script = ["M83", f"G1 E-{settings.retract:g} F2400"]
    if state.z is not None:
        lift = max(0.0, min(settings.lift, settings.max_z - state.z))
        script += ["G91", f"G1 Z{lift:g} F{settings.z_feed:g}", "G90"]
    else:
        script.append("G90")
    script.append(f"G1 X{settings.park_x:g} Y{settings.park_y:g} F{settings.travel_feed:g}")
    return script


def resume_script(state: GcodeState, settings: PauseSettings) -> list[str]:
    """Heat back up if needed, return above the part, lower, prime, restore every mode."""
    script = []
    for tool, target in sorted(state.hotend.items()):
        if target > 0:
            script.append(f"M109 S{target:g}" + (f" T{tool}" if tool else ""))
    if state.bed > 0:
        script.append(f"M190 S{state.bed:g}")
    script.append("G90")
    if state.x is not None and state.y is not None:
        script.append(f"G1 X{state.x:g} Y{state.y:g} F{settings.travel_feed:g}")
    if state.z is not None:
        script.append(f"G1 Z{state.z:g} F{settings.z_feed:g}")
    script += ["M83", f"G1 E{settings.retract:g} F2400"]
    script += _restore_modes(state)
    return script


def recovery_script(state: GcodeState, settings: PauseSettings) -> list[str]:
    """After a reset or a lost link: heat, home X/Y only, trust Z, go back, restore modes."""
    script = []
    if state.bed > 0:
        script.append(f"M140 S{state.bed:g}")
    for tool, target in sorted(state.hotend.items()):
        if target > 0:
            script.append(f"M104 S{target:g}" + (f" T{tool}" if tool else ""))
    if state.bed > 0:
        script.append(f"M190 S{state.bed:g}")
    for tool, target in sorted(state.hotend.items()):
        if target > 0:
            script.append(f"M109 S{target:g}" + (f" T{tool}" if tool else ""))
    script += ["G28 X Y", "G90"]
    if state.z is not None:
        script += [f"G92 Z{state.z:g}", "G91", f"G1 Z2 F{settings.z_feed:g}", "G90"]
    if state.x is not None and state.y is not None:
        script.append(f"G1 X{state.x:g} Y{state.y:g} F{settings.travel_feed:g}")
    if state.z is not None:
        script.append(f"G1 Z{state.z:g} F{settings.z_feed:g}")
    if state.fan > 0:
        script.append(f"M106 S{state.fan:g}")
    script += ["M83", f"G1 E{settings.retract:g} F2400"]
    script += _restore_modes(state)
    return script


def cancel_script(state: GcodeState, settings: PauseSettings) -> list[str]:
    """Heaters and fan off first, lift clear of the part, present it, then motors off."""
    script = ["M104 S0", "M140 S0", "M107"]
    if state.z is not None:
        lift = max(0.0, min(settings.lift, settings.max_z - state.z))
        script += ["G91", f"G1 Z{lift:g} F{settings.z_feed:g}", "G90"]
        script.append(f"G1 X{settings.park_x:g} Y{settings.park_y:g} F{settings.travel_feed:g}")
    script += ["M400", "M84"]
    return script


def _restore_modes(state: GcodeState) -> list[str]:
    script = []
    if state.e_absolute:
        script += ["M82", f"G92 E{state.e:g}"]
    else:
        script.append("M83")
    if not state.absolute:
        script.append("G91")
    if state.feedrate:
        script.append(f"G1 F{state.feedrate:g}")
    return script


# ---------------------------------------------------------------------------------------------
# the job


class PrintJob(LinkListener):
    """One print of one G-code on one printer; see the module docstring."""

    def __init__(
        self,
        gcode: Path | str | bytes,
        backend: UsbBackend | RemoteBackend,
        *,
        case: str | None = None,
        mesh_version: str | int | None = None,
        printer: str = "",
        profile: str = "",
        remote_name: str | None = None,
        on_state: StateCallback | None = None,
        on_progress: ProgressCallback | None = None,
        on_temperature: TemperatureCallback | None = None,
        audit: AuditHook | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.source = GcodeSource(gcode)
        self.backend = backend
        self.case = case
        self.mesh_version = mesh_version
        self.printer = printer
        self.profile = profile
        self.job_id = uuid.uuid4().hex[:12]
        self.remote_name = remote_name or f"{case or 'job'}-{self.job_id}.gcode"
        self.on_state = on_state
        self.on_progress = on_progress
        self.on_temperature = on_temperature
        self.audit = audit or default_audit
        self.poll_interval = poll_interval
        self.summary: GcodeSummary | None = None
        self.resume_point: ResumePoint | None = None
        self.audit_errors: list[str] = []
        self._state = PrinterState.IDLE
        self._message = ""
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._executed_index = -1
        self._machine = GcodeState()
        self._remaining: float | None = None
        self._remote: RemoteStatus | None = None
        self._temperatures: dict[str, Temperature] = {}
        self._started_at: float | None = None
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._ended_at: float | None = None
        self._saved: GcodeState | None = None
        self._monitor: threading.Thread | None = None
        self._history: collections.deque[tuple[float, dict[str, Temperature]]] = collections.deque(
            maxlen=HISTORY_SAMPLES
        )

    # -- public API --------------------------------------------------------------------------

    @property
    def state(self) -> PrinterState:
        return self._state

    @property
    def usb(self) -> bool:
        return isinstance(self.backend, UsbBackend)

    def start(self) -> None:
        """Check and hash the G-code, audit the start, connect, and begin printing.

        Blocks while it connects and (for OctoPrint/Moonraker) uploads: seconds, so a GUI calls
        it from its worker. Raises the connection's error; the job is then in ``ERROR``.
        """
        if self._state != PrinterState.IDLE:
            msg = f"this job is already {self._state.value}; start a new job to print again"
            raise PrintingError(msg)
        self.summary = self.source.summarize()
        self._audit_or_refuse("print.start")
        self._set_state(PrinterState.CONNECTING, f"connecting to {self.printer or 'printer'}")
        try:
            if self.usb:
                self._start_usb()
            else:
                self._start_remote()
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
        self._record("print.pause", cool_down=cool_down)
        if self.usb:
            self._background(lambda: self._pause_usb(cool_down))
        else:
            self._background(self._pause_remote)

    def resume(self) -> None:
        """Resume a paused job at the same position and temperatures."""
        with self._lock:
            if self._state != PrinterState.PAUSED:
                msg = f"cannot resume: the job is {self._state.value}"
                raise PrintingError(msg)
            self._set_state(PrinterState.RESUMING, "resuming: heating and returning to the part")
        self._record("print.resume")
        self._background(self._resume_usb if self.usb else self._resume_remote)

    def cancel(self) -> None:
        """Cancel: stop feeding, heaters and fan off, lift and park, motors off."""
        with self._lock:
            if self._state.done or self._state == PrinterState.CANCELLING:
                return
            link = getattr(self.backend, "link", None) if self.usb else None
            unreachable = self.usb and (link is None or link.failure is not None)
            if self._state in (PrinterState.DISCONNECTED, PrinterState.IDLE) or unreachable:
                self._record("print.cancel")
                self._end(PrinterState.CANCELLED, "cancelled (the printer was not reachable)")
                return
            self._set_state(PrinterState.CANCELLING, "cancelling: heaters off, parking")
        self._record("print.cancel")
        self._background(self._cancel_usb if self.usb else self._cancel_remote)

    def emergency_stop(self) -> None:
        """M112: the printer halts at once and must be reset. Use only in an emergency."""
        if self.usb:
            if self.backend.link is not None:
                self.backend.link.send_emergency("M112")
        else:
            self.backend.emergency_stop()
        self._record("print.emergency_stop")
        self._end(PrinterState.ERROR, "emergency stop: reset the printer before using it again")

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

    def close(self) -> None:
        """Release the connection (a running USB job stops being fed: cancel it first)."""
        self._done.set()
        self.backend.close()

    def resume_after(self, index: int) -> None:
        """Start this job part-way, after command ``index`` (counted from 0, comments skipped).

        For a print whose host went away (the app or the computer crashed): the machine state
        at that command is rebuilt by replaying the G-code, then :meth:`recover` runs.
        """
        if self._state != PrinterState.IDLE or not self.usb:
            msg = "only a new USB job can be resumed part-way"
            raise PrintingError(msg)
        self.summary = self.source.summarize()
        if not 0 <= index < self.summary.commands - 1:
            msg = f"command {index} is not inside this G-code (0..{self.summary.commands - 2})"
            raise PrintingError(msg)
        machine = GcodeState()
        for command, (position, _) in self.source.commands():
            if position > index:
                break
            machine.apply(command)
        self._audit_or_refuse("print.start")
        self.resume_point = ResumePoint(index, machine, "resumed part-way by the user")
        self.recover()

    def recover(self, *, back: int = 0, port: str | None = None) -> None:
        """Continue a job broken by a disconnect or a printer reset, on explicit request.

        Reconnects, heats, homes X and Y only, restores Z, position, fan and modes, and sends
        the G-code after the last acknowledged command (``back`` commands earlier, if the user
        wants to overlap a few moves that the printer may not have physically finished).
        ``port`` names the port when the printer came back on another one.
        """
        point = self.resume_point
        if point is None or not self.usb:
            msg = "nothing to resume: this job has no resume point"
            raise PrintingError(msg)
        start = max(0, point.index + 1 - back)
        self._record("print.recover", resume_from=start, reason=point.reason)
        self._set_state(PrinterState.CONNECTING, "reconnecting to resume the job")
        self.backend.close()
        if port:
            self.backend.port = port
        self._done.clear()
        try:
            self.backend.connect(self)
        except MedPrintError as exc:
            self._end(PrinterState.DISCONNECTED, f"{exc} (the job can still resume)")
            raise
        link = self.backend.link
        self._ended_at = None
        self._started_at = self._started_at or time.monotonic()
        self.resume_point = None
        self._machine = replace(point.machine, hotend=dict(point.machine.hotend))
        self._executed_index = start - 1
        self._set_state(PrinterState.RESUMING, "heating, homing X/Y and returning to the part")
        for command in recovery_script(point.machine, self.backend.pause_settings):
            link.send(command)
        self._background(lambda: self._continue_after_recovery(start))

    # -- USB ---------------------------------------------------------------------------------

    def _start_usb(self) -> None:
        self.backend.connect(self)
        self._started_at = time.monotonic()
        self._set_state(PrinterState.PRINTING, f"printing {self.summary.commands} commands")
        self.backend.link.start_stream(self.source.commands())

    def _continue_after_recovery(self, start: int) -> None:
        link = self.backend.link
        if not link.wait_idle():
            return
        with self._lock:
            if self._state != PrinterState.RESUMING:
                return
            self._set_state(PrinterState.PRINTING, "printing")
        link.start_stream(self.source.commands(start))

    def _pause_usb(self, cool_down: bool = False) -> None:
        link = self.backend.link
        link.pause_stream()
        if not link.wait_idle():
            return
        with self._lock:
            if self._state != PrinterState.PAUSING:  # finished or cancelled meanwhile
                return
            self._saved = replace(self._machine, hotend=dict(self._machine.hotend))
        script = pause_script(self._saved, self.backend.pause_settings)
        if cool_down:
            script += [f"M104 S0 T{tool}" if tool else "M104 S0" for tool in self._saved.hotend]
        for command in script:
            link.send(command)
        if link.wait_idle() and self._state == PrinterState.PAUSING:
            self._paused_state()

    def _resume_usb(self) -> None:
        link = self.backend.link
        for command in resume_script(self._saved or self._machine, self.backend.pause_settings):
            link.send(command)
        if not link.wait_idle():
            return
        with self._lock:
            if self._state != PrinterState.RESUMING:
                return
            self._resumed_state()
        link.resume_stream()

    def _cancel_usb(self) -> None:
        link = self.backend.link
        link.stop_stream()
        link.send_emergency("M108")  # break a heat-and-wait so the cancel is not held up
        link.wait_idle(timeout=120)
        for command in cancel_script(self._machine, self.backend.pause_settings):
            link.send(command)
        link.wait_idle(timeout=300)
        self._end(PrinterState.CANCELLED, "cancelled: heaters off, motors off")

    # link callbacks (reader thread)

    def on_executed(self, number: int, tag: object) -> None:
        if not isinstance(tag, tuple):
            return
        index, command = tag
        finished = False
        with self._lock:
            self._executed_index = index
            self._machine.apply(command)
            if marlin.command_code(command) == "M73":
                minutes = marlin.param(command, "R")
                if minutes is not None:
                    self._remaining = minutes * 60.0
            finished = index == self.summary.commands - 1 and self._state in (
                PrinterState.PRINTING,
                PrinterState.PAUSING,
                PrinterState.RESUMING,
            )
        if finished:
            self._end(PrinterState.FINISHED, "finished")
        elif self.on_progress is not None and index % 20 == 0:
            self._notify_progress()

    def on_temperatures(self, temperatures: dict[str, Temperature]) -> None:
        with self._lock:
            self._temperatures.update(temperatures)
            self._history.append((self._elapsed(), dict(temperatures)))
        if self.on_temperature is not None:
            _safe(self.on_temperature, dict(temperatures))

    def on_message(self, line: str) -> None:
        if line.startswith("//action:"):
            action = line.split(":", 1)[1].strip().split(" ")[0]
            handler = {"pause": self.pause, "resume": self.resume, "cancel": self.cancel}.get(
                action
            )
            if handler is not None:
                with contextlib.suppress(PrintingError):
                    handler()

    def on_reset(self) -> None:
        with self._lock:
            if not self._state.active:
                return
            self._offer_resume("the printer reset during the print")
        self._record("print.error", reason="printer reset", line=self._executed_index + 1)
        self._end(
            PrinterState.ERROR,
            "the printer restarted during the print (power glitch or firmware reset); "
            f"the job stopped after command {self._executed_index + 1}; check the part, "
            "then cancel or resume from there",
        )

    def on_failure(self, message: str, disconnected: bool) -> None:
        with self._lock:
            if not self._state.active and self._state != PrinterState.CONNECTING:
                return
            self._offer_resume(message)
        if disconnected:
            self._record("print.disconnect", line=self._executed_index + 1)
            self._end(
                PrinterState.DISCONNECTED,
                message + "; the job can resume after "
                f"command {self._executed_index + 1} once the printer is back",
            )
        else:
            self._record("print.error", reason=message[:120], line=self._executed_index + 1)
            self._end(PrinterState.ERROR, message)

    def _offer_resume(self, reason: str) -> None:
        if self._executed_index >= 0 and self.summary is not None:
            machine = replace(self._machine, hotend=dict(self._machine.hotend))
            if self._saved is not None and self._state in (
                PrinterState.PAUSED,
                PrinterState.RESUMING,
            ):
                machine = self._saved
            self.resume_point = ResumePoint(self._executed_index, machine, reason)

    # -- networked ---------------------------------------------------------------------------

    def _start_remote(self) -> None:
        self.backend.connect()
        self._set_state(PrinterState.UPLOADING, f"uploading {self.remote_name}")
        self.backend.upload_and_start(
            self.remote_name, self.source.read_bytes(), self.summary.sha256
        )
        self._started_at = time.monotonic()
        self._set_state(PrinterState.PRINTING, "printing")
        self._monitor = threading.Thread(
            target=self._monitor_remote, name="print-monitor", daemon=True
        )
        self._monitor.start()

    def _monitor_remote(self) -> None:
        seen_active = False
        failures = 0
        while not self._done.is_set():
            try:
                remote = self.backend.poll()
                failures = 0
            except PrinterConnectionError as exc:
                failures += 1
                if failures >= 5:
                    self._record("print.disconnect", reason=str(exc)[:120])
                    self._end(PrinterState.DISCONNECTED, str(exc))
                    return
                self._done.wait(self.poll_interval)
                continue
            seen_active = self._apply_remote(remote, seen_active)
            self._done.wait(self.poll_interval)

    def _apply_remote(self, remote: RemoteStatus, seen_active: bool) -> bool:
        with self._lock:
            self._remote = remote
            self._temperatures.update(remote.temperatures)
            if remote.temperatures:
                self._history.append((self._elapsed(), dict(remote.temperatures)))
            state = self._state
        if remote.temperatures and self.on_temperature is not None:
            _safe(self.on_temperature, dict(remote.temperatures))
        if remote.state in (PrinterState.PRINTING, PrinterState.PAUSED):
            seen_active = True
            if remote.state == PrinterState.PAUSED and state in (
                PrinterState.PRINTING,
                PrinterState.PAUSING,
            ):
                self._paused_state()
            elif remote.state == PrinterState.PRINTING and state in (
                PrinterState.PAUSED,
                PrinterState.RESUMING,
            ):
                self._resumed_state()
        elif seen_active and remote.state == PrinterState.FINISHED and state.active:
            if state != PrinterState.CANCELLING:
                self._end(PrinterState.FINISHED, "finished")
        elif remote.state == PrinterState.CANCELLED and state.active:
            if state != PrinterState.CANCELLING:
                self._record("print.cancel", by="printer")
            self._end(PrinterState.CANCELLED, "cancelled")
        elif remote.state == PrinterState.ERROR and state.active:
            self._record("print.error", reason=remote.message[:120])
            self._end(PrinterState.ERROR, remote.message or "the printer reports an error")
        elif (
            remote.state == PrinterState.IDLE
            and state.active
            and (seen_active or remote.progress >= 0.999)
        ):
            if state == PrinterState.CANCELLING:
                self._end(PrinterState.CANCELLED, "cancelled")
            else:
                self._end(PrinterState.FINISHED, "finished")
        if self.on_progress is not None:
            self._notify_progress()
        return seen_active

    def _pause_remote(self) -> None:
        self.backend.pause()

    def _resume_remote(self) -> None:
        self.backend.resume()

    def _cancel_remote(self) -> None:
        self.backend.cancel()

    # -- state, status, audit ----------------------------------------------------------------

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
            self._record("print.finish")
        elif state == PrinterState.CANCELLED:
            self._record("print.cancelled", line=self._executed_index + 1)
        self._done.set()
        if self.on_progress is not None:
            self._notify_progress()

    def _fail(self, message: str) -> None:
        self._record("print.error", reason=message[:120])
        self._end(PrinterState.ERROR, message)

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

    def _elapsed(self) -> float:
        if self._started_at is None:
            return 0.0
        end = self._ended_at or time.monotonic()
        paused = self._paused_total + (end - self._paused_at if self._paused_at else 0.0)
        return max(0.0, end - self._started_at - paused)

    def _status(self) -> JobStatus:
        summary = self.summary
        elapsed = self._elapsed()
        if self._remote is not None and not self.usb:
            remote = self._remote
            progress = 1.0 if self._state == PrinterState.FINISHED else remote.progress
            return JobStatus(
                self._state,
                progress,
                remote.elapsed or elapsed,
                remote.remaining,
                remote.layer,
                remote.layers,
                None,
                None,
                dict(self._temperatures),
                self._message,
            )
        total = summary.commands if summary else None
        done = self._executed_index + 1
        progress = done / total if total else 0.0
        remaining = estimate_remaining(
            elapsed, progress, summary.estimated_time if summary else None, self._remaining
        )
        if self._state.done:
            remaining = 0.0 if self._state == PrinterState.FINISHED else None
        return JobStatus(
            self._state,
            progress,
            elapsed,
            remaining,
            summary.layer_at(max(0, self._executed_index)) if summary else None,
            summary.layers or None if summary else None,
            done,
            total,
            dict(self._temperatures),
            self._message,
        )

    def _facts(self) -> dict[str, object]:
        facts: dict[str, object] = {
            "job": self.job_id,
            "gcode_sha256": self.summary.sha256 if self.summary else None,
            "mesh_version": self.mesh_version,
            "printer": self.printer,
            "profile": self.profile,
            "transport": self.backend.kind,
            "file": self.remote_name,
        }
        return facts

    def _audit_or_refuse(self, action: str) -> None:
        try:
            self.audit(
                action,
                case=self.case,
                **self._facts(),
                commands=self.summary.commands if self.summary else None,
            )
        except MedPrintError as exc:
            msg = f"the print was not started because it could not be audited ({exc})"
            raise PrintingError(msg) from None

    def _record(self, action: str, **extra: object) -> None:
        try:
            self.audit(action, case=self.case, **self._facts(), **extra)
        except Exception as exc:  # a finished print cannot be undone; report, don't crash
            self.audit_errors.append(f"{action}: {exc}")


def open_backend(
    settings: ConnectionSettings,
    *,
    pause: PauseSettings | None = None,
    options: LinkOptions | None = None,
) -> UsbBackend | RemoteBackend:
    """The backend for ``settings``: USB, OctoPrint or Moonraker."""
    if settings.kind == "usb":
        opts = options or LinkOptions(baud=settings.baud)
        return UsbBackend(settings.port, options=opts, pause=pause)
    if not settings.url:
        msg = f"the {settings.kind} printer has no URL; set it in the printer profile or --url"
        raise PrintingError(msg)
    if settings.kind == "octoprint":
        from app.printing.octoprint import OctoPrintClient  # noqa: PLC0415

        return OctoPrintClient(settings.url, settings.api_key)
    from app.printing.moonraker import MoonrakerClient  # noqa: PLC0415

    return MoonrakerClient(settings.url, settings.api_key)


def check_connection(settings: ConnectionSettings, *, options: LinkOptions | None = None) -> str:
    """Reach the printer once and say what answered (for the profile dialog's Test button).

    USB: opens the port, shakes hands and reads the firmware name, then closes. OctoPrint and
    Moonraker: checks the URL, the API key and that the printer behind them is ready. Raises
    :class:`PrinterConnectionError` with the reason otherwise.
    """
    backend = open_backend(settings, options=options)
    if isinstance(backend, UsbBackend):
        try:
            backend.connect()
            link = backend.link
            firmware = link.firmware
            heaters = ", ".join(sorted(link.temperatures)) or "no temperatures yet"
            return f"{firmware.name} on {link.port} ({heaters})"
        finally:
            backend.close()
    return backend.test_connection()

"""USB: a Marlin printer on a serial port, streamed line by line by the host.

:class:`UsbBackend` owns the serial link; :class:`UsbJob` feeds it the G-code gated on ``ok``,
pauses by parking the head (and can cool the nozzle for a long pause), cancels safely, and after
a lost link or a printer reset stops with a :class:`~app.printing.job.ResumePoint`: on request,
:meth:`UsbJob.recover` re-homes X/Y only, restores temperatures, fan and position, and continues
after the last acknowledged line. Nothing is resumed silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.errors import MedPrintError, PrintingError
from app.printing import marlin
from app.printing.job import JobStatus, PrintJob, ResumePoint, estimate_remaining
from app.printing.marlin import GcodeState, PrinterState, Temperature
from app.printing.serial_link import LinkListener, LinkOptions, SerialLink, auto_port


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

    def identity(self) -> dict[str, str]:
        """What the firmware's M115 reply names: its UUID (as the serial) and MACHINE_TYPE."""
        fields = self.link.firmware.fields if self.link is not None else {}
        return {
            "serial": fields.get("UUID", ""),
            "model": fields.get("MACHINE_TYPE", ""),
            "source": "printer (M115 UUID)",
        }


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


class UsbJob(PrintJob, LinkListener):
    """A print streamed by the host to a :class:`UsbBackend`."""

    usb = True

    def __init__(self, gcode: Path | str | bytes, backend: UsbBackend, **kwargs: Any) -> None:
        super().__init__(gcode, backend, **kwargs)
        self.backend: UsbBackend = backend
        self._executed_index = -1
        self._machine = GcodeState()
        self._remaining: float | None = None
        self._saved: GcodeState | None = None

    def facts(self) -> dict[str, object]:
        return {**super().facts(), "line": self._executed_index + 1}

    # -- starting, part-way and after a break ------------------------------------------------

    def _begin(self) -> None:
        self.backend.connect(self)
        self._identify()
        self._started_at = time.monotonic()
        self._set_state(PrinterState.PRINTING, f"printing {self.summary.commands} commands")
        self.backend.link.start_stream(self.source.commands())

    def resume_after(self, index: int) -> None:
        """Start this job part-way, after command ``index`` (counted from 0, comments skipped).

        For a print whose host went away (the app or the computer crashed): the machine state
        at that command is rebuilt by replaying the G-code, then :meth:`recover` runs.
        """
        if self._state != PrinterState.IDLE:
            msg = "only a new USB job can be resumed part-way"
            raise PrintingError(msg)
        summary = self.summarize()
        if not 0 <= index < summary.commands - 1:
            msg = f"command {index} is not inside this G-code (0..{summary.commands - 2})"
            raise PrintingError(msg)
        machine = GcodeState()
        for command, (position, _) in self.source.commands():
            if position > index:
                break
            machine.apply(command)
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
        if point is None:
            msg = "nothing to resume: this job has no resume point"
            raise PrintingError(msg)
        start = max(0, point.index + 1 - back)
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

    def _continue_after_recovery(self, start: int) -> None:
        link = self.backend.link
        if not link.wait_idle():
            return
        with self._lock:
            if self._state != PrinterState.RESUMING:
                return
            self._set_state(PrinterState.PRINTING, "printing")
        link.start_stream(self.source.commands(start))

    # -- controls ----------------------------------------------------------------------------

    def _do_pause(self, cool_down: bool) -> None:
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

    def _do_resume(self) -> None:
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

    def _do_cancel(self) -> None:
        link = self.backend.link
        link.stop_stream()
        link.send_emergency("M108")  # break a heat-and-wait so the cancel is not held up
        link.wait_idle(timeout=120)
        for command in cancel_script(self._machine, self.backend.pause_settings):
            link.send(command)
        link.wait_idle(timeout=300)
        self._end(PrinterState.CANCELLED, "cancelled: heaters off, motors off")

    # link callbacks (reader thread)

    def _do_emergency_stop(self) -> None:
        if self.backend.link is not None:
            self.backend.link.send_emergency("M112")

    def _unreachable(self) -> bool:
        link = self.backend.link
        return link is None or link.failure is not None

    # -- link callbacks (reader thread) ------------------------------------------------------

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
        self._record_temperatures(temperatures)

    def on_message(self, line: str) -> None:
        if line.startswith("//action:"):
            self._printer_asks(line.split(":", 1)[1].strip().split(" ")[0])

    def on_reset(self) -> None:
        with self._lock:
            if not self._state.active:
                return
            self._offer_resume("the printer reset during the print")
        self._event("error", reason="printer reset")
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
            self._event("disconnect")
            self._end(
                PrinterState.DISCONNECTED,
                message + "; the job can resume after "
                f"command {self._executed_index + 1} once the printer is back",
            )
        else:
            self._fail(message)

    def _offer_resume(self, reason: str) -> None:
        if self._executed_index >= 0 and self.summary is not None:
            machine = replace(self._machine, hotend=dict(self._machine.hotend))
            if self._saved is not None and self._state in (
                PrinterState.PAUSED,
                PrinterState.RESUMING,
            ):
                machine = self._saved
            self.resume_point = ResumePoint(self._executed_index, machine, reason)

    # -- status ------------------------------------------------------------------------------

    def _status(self) -> JobStatus:
        summary = self.summary
        elapsed = self._elapsed()
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

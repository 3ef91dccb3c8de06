"""OctoPrint and Moonraker: a printer that runs the job itself, handed the whole file.

:class:`RemoteJob` uploads the G-code (Moonraker checks its SHA-256), starts it, and follows the
server's state by polling; pause, resume and cancel are the server's own. The clients live in
:mod:`.octoprint` and :mod:`.moonraker`; both satisfy :class:`RemoteBackend`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from app.errors import PrinterConnectionError
from app.printing.job import JobStatus, PrintJob
from app.printing.marlin import PrinterState, Temperature


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


class RemoteBackend(Protocol):
    """What a :class:`RemoteJob` needs from a server."""

    kind: str

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None: ...
    def poll(self) -> RemoteStatus: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def cancel(self) -> None: ...
    def emergency_stop(self) -> None: ...
    def test_connection(self) -> str: ...


class RemoteJob(PrintJob):
    """A print run by OctoPrint or Moonraker."""

    def __init__(self, gcode: Path | str | bytes, backend: RemoteBackend, **kwargs: Any) -> None:
        super().__init__(gcode, backend, **kwargs)
        self.backend: RemoteBackend = backend
        self._remote: RemoteStatus | None = None
        self._monitor: threading.Thread | None = None

    def _begin(self) -> None:
        self.backend.connect()
        self._identify()
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
                    self._event("disconnect", reason=str(exc)[:120])
                    self._end(PrinterState.DISCONNECTED, str(exc))
                    return
                self._done.wait(self.poll_interval)
                continue
            seen_active = self._apply_remote(remote, seen_active)
            self._done.wait(self.poll_interval)

    def _apply_remote(self, remote: RemoteStatus, seen_active: bool) -> bool:
        with self._lock:
            self._remote = remote
            state = self._state
        if remote.temperatures:
            self._record_temperatures(remote.temperatures)
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
                self._event("cancel", by="printer")
            self._end(PrinterState.CANCELLED, "cancelled")
        elif remote.state == PrinterState.ERROR and state.active:
            self._fail(remote.message or "the printer reports an error")
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

    def _do_pause(self, cool_down: bool) -> None:
        self.backend.pause()

    def _do_resume(self) -> None:
        self.backend.resume()

    def _do_cancel(self) -> None:
        self.backend.cancel()

    def _do_emergency_stop(self) -> None:
        self.backend.emergency_stop()

    def _status(self) -> JobStatus:
        remote = self._remote
        if remote is None:
            return JobStatus(
                self._state,
                elapsed=self._elapsed(),
                temperatures=dict(self._temperatures),
                message=self._message,
            )
        progress = 1.0 if self._state == PrinterState.FINISHED else remote.progress
        return JobStatus(
            self._state,
            progress,
            remote.elapsed or self._elapsed(),
            remote.remaining,
            remote.layer,
            remote.layers,
            None,
            None,
            dict(self._temperatures),
            self._message,
        )

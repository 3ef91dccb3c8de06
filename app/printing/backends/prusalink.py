"""PrusaLink (Prusa MK4, XL, MINI, SL1S) REST client: upload, start, status, pause/resume/cancel.

Follows PrusaLink's published v1 API (Prusa-Link-Web ``spec/openapi.yaml``), authenticated
with HTTP digest (user ``maker`` and the password shown on the printer) or an ``X-Api-Key``:

- ``GET /api/version`` (``text``), ``GET /api/v1/info`` (``serial``, ``name``),
  ``GET /api/v1/storage`` (where files go), ``GET /api/v1/status`` (``printer.state``,
  temperatures; ``job.progress`` in percent, ``time_remaining``, ``time_printing``).
- ``PUT /api/v1/files/{storage}/{name}`` with the raw bytes and ``Overwrite: ?1``; then
  ``POST`` to the same path starts it (409 when the printer is busy).
- ``GET /api/v1/job`` for the job id; ``PUT /api/v1/job/{id}/pause|resume``;
  ``DELETE /api/v1/job/{id}`` stops it.

PrusaLink has no checksum on upload: the stored size is read back and compared. Errors
(``{"title", "text"}`` as JSON, or plain text) become one :class:`PrinterConnectionError` line.
:class:`PrusaLinkJob` is the job for it; it also prints ``.sl1`` archives (SL1S).
"""

from __future__ import annotations

import hashlib
import urllib.parse
from typing import TYPE_CHECKING, Any

from app.errors import PrinterConnectionError
from app.printing.backends.remote import RemoteJob, RemoteStatus
from app.printing.job import GcodeSummary
from app.printing.marlin import PrinterState, Temperature

if TYPE_CHECKING:
    import requests

SERVER = "PrusaLink"
SOURCE = "printer (PrusaLink /api/v1/info)"
PRINT_SUFFIXES = (".gcode", ".bgcode", ".sl1", ".sl1s")
ARCHIVE_SUFFIXES = (".sl1", ".sl1s")
_STATES = {
    "IDLE": PrinterState.IDLE,
    "READY": PrinterState.IDLE,
    "PRINTING": PrinterState.PRINTING,
    "PAUSED": PrinterState.PAUSED,
    "ATTENTION": PrinterState.PAUSED,
    "FINISHED": PrinterState.FINISHED,
    "STOPPED": PrinterState.CANCELLED,
    "ERROR": PrinterState.ERROR,
}
_BUSY = ("BUSY", "PRINTING", "PAUSED", "ATTENTION", "ERROR")


def state_from_status(state: str, has_job: bool) -> PrinterState:
    """Our state for PrusaLink's printer state; BUSY (homing, heating) counts as printing
    while a job exists."""
    state = (state or "").upper()
    if state == "BUSY":
        return PrinterState.PRINTING if has_job else PrinterState.CONNECTING
    return _STATES.get(state, PrinterState.ERROR)


class PrusaLinkClient:
    """One PrusaLink printer; also a :class:`app.printing.backends.remote.RemoteBackend`.

    With ``user``, ``secret`` is the digest password; without, it is an API key.
    """

    kind = "prusalink"

    def __init__(
        self, url: str, secret: str | None = None, *, user: str = "", timeout: float = 10.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            msg = f"{SERVER} URL '{url}' must start with http:// or https://"
            raise PrinterConnectionError(msg)
        self.base_url = url.rstrip("/")
        self.timeout = timeout
        import requests  # noqa: PLC0415 (on first use: not while the window starts)
        from requests.auth import HTTPDigestAuth  # noqa: PLC0415

        self.session = requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": "MedPrint"})
        if user:
            self.session.auth = HTTPDigestAuth(user, secret or "")
        elif secret:
            self.session.headers["X-Api-Key"] = secret
        self.uses_password = bool(user)
        self.storage: str | None = None
        self.serial: str | None = None

    # -- HTTP --------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        import requests  # noqa: PLC0415 (imported by __init__)

        kwargs.setdefault("timeout", self.timeout)
        try:
            answer = self.session.request(method, self.base_url + path, **kwargs)
        except requests.Timeout:
            raise PrinterConnectionError(self._down("timed out")) from None
        except requests.RequestException as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise PrinterConnectionError(self._down(reason)) from None
        if answer.status_code >= 400:
            raise PrinterConnectionError(self._describe(answer))
        return answer

    def _json(self, method: str, path: str, **kwargs: Any) -> dict:
        answer = self._send(method, path, **kwargs)
        if answer.status_code == 204 or not answer.content:
            return {}
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            msg = f"{SERVER} at {self.base_url} sent an answer that is not a JSON object; is the "
            msg += f"URL that of {SERVER}?"
            raise PrinterConnectionError(msg)
        return data

    def _down(self, reason: str) -> str:
        return (
            f"{SERVER} at {self.base_url} does not answer ({reason}); check that the printer is "
            "on, on the network, and the URL is right"
        )

    def _describe(self, answer: requests.Response) -> str:
        status = answer.status_code
        detail = _error_detail(answer)
        said = f" ({detail})" if detail else ""
        if status in (401, 403):
            what = "user name or password" if self.uses_password else "API key"
            return (
                f"{SERVER} refused the {what} (HTTP {status}){said}; use the credentials shown "
                "on the printer (Settings > Network) and store them with the printer profile"
            )
        if status == 409:
            return (
                f"{SERVER} refused: the printer is busy (HTTP 409){said}; wait for the current "
                "job to end, or clear the printer's screen, and try again"
            )
        if status == 404:
            return f"{SERVER} has no such file or job (HTTP 404){said}; check the URL"
        if status in (413, 507):
            return f"{SERVER} has no room for the file (HTTP {status}){said}; free its storage"
        if status == 415:
            return f"{SERVER} refused the file type (HTTP 415){said}; this printer cannot print it"
        return f"{SERVER} answered HTTP {status}{said}; check the printer"

    # -- connection --------------------------------------------------------------------------

    def test_connection(self) -> str:
        """Check the URL and credentials; e.g. "PrusaLink 2.1.2, printer MK4 idle"."""
        version = self._json("GET", "/api/version")
        info = self._json("GET", "/api/v1/info")
        state = self.status()["printer"].get("state", "?")
        self.serial = info.get("serial") or None
        name = info.get("name") or info.get("hostname") or "?"
        return f"{version.get('text', SERVER)}, printer {name} {str(state).lower()}"

    def connect(self) -> None:
        self.test_connection()

    def close(self) -> None:
        self.session.close()

    def identity(self) -> dict[str, str]:
        """The serial number and model ``/api/v1/info`` reports (for the print record);
        nothing when the printer does not say."""
        try:
            info = self._json("GET", "/api/v1/info")
        except PrinterConnectionError:
            return {}
        self.serial = str(info.get("serial") or "") or None
        model = str(info.get("name") or "")
        return {"serial": self.serial or "", "model": model, "source": SOURCE}

    # -- files and jobs ----------------------------------------------------------------------

    def _storage(self) -> str:
        if self.storage is None:
            found = self._json("GET", "/api/v1/storage").get("storage_list")
            usable = [s for s in found if _writable(s)] if isinstance(found, list) else []
            if not usable:
                msg = f"{SERVER} has no writable storage; insert a USB stick in the printer"
                raise PrinterConnectionError(msg)
            self.storage = str(usable[0]["path"]).strip("/")
        return self.storage

    def _file_path(self, name: str) -> str:
        return f"/api/v1/files/{self._storage()}/{urllib.parse.quote(name)}"

    def upload(self, name: str, data: bytes) -> None:
        """Store ``data`` as ``name``; the size PrusaLink then reports must be the size sent."""
        if not name.lower().endswith(PRINT_SUFFIXES):
            msg = f"'{name}' is not a print file name; PrusaLink prints .gcode, .bgcode or .sl1"
            raise PrinterConnectionError(msg)
        headers = {
            "Content-Type": "application/octet-stream",
            "Overwrite": "?1",
            "Print-After-Upload": "?0",
        }
        path = self._file_path(name)
        self._send("PUT", path, data=data, headers=headers, timeout=max(self.timeout, 300.0))
        stored = _number(self._json("GET", path).get("size"))
        if stored is not None and int(stored) != len(data):
            msg = f"{SERVER} stored {stored} of {len(data)} bytes; the upload broke, send it again"
            raise PrinterConnectionError(msg)

    def start(self, name: str) -> None:
        self._send("POST", self._file_path(name))

    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None:
        """Refuse early when the printer is busy, then upload and start."""
        state = self.status()["printer"].get("state", "")
        if str(state).upper() in _BUSY:
            msg = (
                f"{SERVER} refused: the printer is busy ({str(state).lower()}); wait for the "
                "current job to end, or clear the printer's screen, and try again"
            )
            raise PrinterConnectionError(msg)
        self.upload(name, data)
        self.start(name)

    def status(self) -> dict:
        status = self._json("GET", "/api/v1/status")
        if not isinstance(status.get("printer"), dict):
            msg = f"{SERVER} returned no printer status; is the URL that of {SERVER}?"
            raise PrinterConnectionError(msg)
        return status

    def poll(self) -> RemoteStatus:
        status = self.status()
        printer, job = status["printer"], status.get("job")
        job = job if isinstance(job, dict) else {}
        state = state_from_status(str(printer.get("state", "")), bool(job))
        progress = (_number(job.get("progress")) or 0.0) / 100.0
        message = ""
        if str(printer.get("state", "")).upper() == "ATTENTION":
            message = "the printer needs attention: see its screen"
        elif state == PrinterState.ERROR:
            said = printer.get("status_printer")
            message = str(said.get("message", "")) if isinstance(said, dict) else ""
            message = message or "the printer reports an error; see its screen"
        return RemoteStatus(
            state=state,
            progress=min(max(progress, 0.0), 1.0),
            elapsed=_number(job.get("time_printing")),
            remaining=_number(job.get("time_remaining")),
            temperatures=_temperatures(printer),
            message=message,
        )

    def job_id(self) -> int:
        number = _number(self._json("GET", "/api/v1/job").get("id"))
        if number is None:
            msg = f"{SERVER} has no current job; it may have ended already"
            raise PrinterConnectionError(msg)
        return int(number)

    def pause(self) -> None:
        self._send("PUT", f"/api/v1/job/{self.job_id()}/pause")

    def resume(self) -> None:
        self._send("PUT", f"/api/v1/job/{self.job_id()}/resume")

    def cancel(self) -> None:
        self._send("DELETE", f"/api/v1/job/{self.job_id()}")

    def emergency_stop(self) -> None:
        """PrusaLink has no halt command: stop the job at once (the printer's own stop)."""
        self.cancel()


class PrusaLinkJob(RemoteJob):
    """A print run by PrusaLink: G-code (MK4, XL, MINI) or an ``.sl1`` archive (SL1S).

    Its facts carry the printer's serial number, read when the job starts.
    """

    backend: PrusaLinkClient

    @property
    def archive(self) -> bool:
        return self.remote_name.lower().endswith(ARCHIVE_SUFFIXES)

    def summarize(self) -> GcodeSummary:
        """An archive is hashed, not parsed as G-code."""
        if not self.archive:
            return super().summarize()
        if self.summary is None:
            data = self.source.read_bytes()
            self.summary = GcodeSummary(hashlib.sha256(data).hexdigest(), len(data), 0, (), None)
        return self.summary

    def facts(self) -> dict[str, object]:
        facts = super().facts()
        if self.backend.serial:  # unless the job's own machine facts already say
            facts.setdefault("serial", self.backend.serial)
            facts.setdefault("serial_source", SOURCE)
        if self.archive:
            facts["sl1_sha256"] = facts.pop("gcode_sha256")
            facts.pop("commands", None)
        return facts


def _error_detail(answer: requests.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        text = answer.text.strip()
        return "" if "<" in text else text[:160]
    if isinstance(data, dict):
        parts = [str(data.get(k)) for k in ("title", "text", "message") if data.get(k)]
        return ": ".join(parts)[:160]
    return ""


def _writable(storage: object) -> bool:
    if not isinstance(storage, dict):
        return False
    return bool(storage.get("available") and not storage.get("read_only") and storage.get("path"))


def _number(value: object) -> float | None:
    try:
        return None if value is None else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _temperatures(printer: dict) -> dict[str, Temperature]:
    found = {}
    for key, actual, target in (
        ("T0", "temp_nozzle", "target_nozzle"),
        ("B", "temp_bed", "target_bed"),
    ):
        value = _number(printer.get(actual))
        if value is not None:
            found[key] = Temperature(value, _number(printer.get(target)))
    return found

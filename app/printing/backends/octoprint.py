"""OctoPrint REST client: upload, select and start, progress, pause/resume/cancel, temperatures.

Talks to OctoPrint's documented API with ``X-Api-Key`` (an application key kept in the OS
keystore, never in a profile file). Every failure becomes one :class:`PrinterConnectionError`
line that says what to do: wrong key (401/403), server down or unreachable, printer not connected
or busy (409), file type refused (415).

:class:`JsonHttp` is the small urllib-based JSON/multipart helper the Moonraker client shares.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from app.errors import PrinterConnectionError
from app.printing.backends.remote import RemoteStatus
from app.printing.marlin import PrinterState, Temperature

_STATES = (  # OctoPrint's state text (prefix, lower case) -> our state
    ("printing", PrinterState.PRINTING),
    ("sending file", PrinterState.PRINTING),
    ("finishing", PrinterState.PRINTING),
    ("starting", PrinterState.PRINTING),
    ("pausing", PrinterState.PAUSING),
    ("paused", PrinterState.PAUSED),
    ("resuming", PrinterState.RESUMING),
    ("cancelling", PrinterState.CANCELLING),
    ("operational", PrinterState.IDLE),
    ("connecting", PrinterState.CONNECTING),
    ("detecting", PrinterState.CONNECTING),
    ("opening", PrinterState.CONNECTING),
    ("offline after error", PrinterState.ERROR),
    ("error", PrinterState.ERROR),
    ("offline", PrinterState.DISCONNECTED),
    ("closed", PrinterState.DISCONNECTED),
)


class HttpError(PrinterConnectionError):
    """An HTTP error answer; ``status`` and the server's own message are kept."""

    def __init__(self, message: str, status: int, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class JsonHttp:
    """JSON and multipart requests to one server, with its API key and clear errors."""

    def __init__(
        self, base_url: str, api_key: str | None, *, server: str, timeout: float = 10.0
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            msg = f"{server} URL '{base_url}' must start with http:// or https://"
            raise PrinterConnectionError(msg)
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.server = server
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json", "User-Agent": "MedPrint"}
        if self.api_key:
            headers["X-Api-Key"] = self.api_key
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as answer:
                payload = answer.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc.read())
            raise HttpError(self.describe(exc.code, detail), exc.code, detail) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            msg = (
                f"{self.server} at {self.base_url} does not answer ({_reason(reason)}); "
                f"check that {self.server} is running and the URL is right"
            )
            raise PrinterConnectionError(msg) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            msg = f"{self.server} at {self.base_url} sent an answer that is not JSON; is the URL "
            msg += f"that of {self.server}?"
            raise PrinterConnectionError(msg) from None

    def upload(
        self, path: str, name: str, data: bytes, fields: dict[str, str], timeout: float = 300.0
    ) -> Any:
        boundary = uuid.uuid4().hex
        parts = []
        for key, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        safe = name.replace('"', "")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{safe}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        )
        parts.append(data)
        parts.append(f"\r\n--{boundary}--\r\n".encode())
        return self.request(
            "POST",
            path,
            raw=b"".join(parts),
            timeout=timeout,
            content_type=f"multipart/form-data; boundary={boundary}",
        )

    def describe(self, status: int, detail: str) -> str:
        said = f" ({detail})" if detail else ""
        if status in (401, 403):
            return (
                f"{self.server} refused the API key (HTTP {status}){said}; create an "
                f"application key in {self.server} and store it with the printer profile"
            )
        if status == 404:
            return f"{self.server} has no such resource (HTTP 404){said}; check the URL"
        if status == 409:
            return (
                f"{self.server} refused: the printer is busy or not ready (HTTP 409){said}; "
                "wait for the current job to end or connect the printer"
            )
        if status == 415:
            return f"{self.server} refused the file type (HTTP 415){said}; upload a .gcode file"
        if status == 413:
            return f"{self.server} refused the upload as too large (HTTP 413){said}"
        return f"{self.server} answered HTTP {status}{said}; check its log"


def _error_detail(payload: bytes) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        text = payload.decode("utf-8", errors="replace").strip()
        if "<" in text:  # an HTML error page: keep the title-ish text only
            text = text.split("<p>")[-1].split("</p>")[0] if "<p>" in text else ""
        return text[:160]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return str(error.get("message", ""))[:160]
        if error:
            return str(error)[:160]
    return ""


def _reason(reason: object) -> str:
    text = str(reason)
    if "refused" in text.lower():
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    return text[:100]


def state_from_text(text: str) -> PrinterState:
    """Our state for OctoPrint's state text ("Printing", "Operational", "Offline after error")."""
    lowered = (text or "").strip().lower()
    for prefix, state in _STATES:
        if lowered.startswith(prefix):
            return state
    return PrinterState.ERROR if "error" in lowered else PrinterState.DISCONNECTED


def temperatures_from(data: dict) -> dict[str, Temperature]:
    """``tool0``/``bed``/``chamber`` entries of /api/printer as ``T0``/``B``/``C``."""
    found = {}
    for name, value in (data or {}).items():
        if not isinstance(value, dict) or value.get("actual") is None:
            continue
        if name.startswith("tool"):
            key = "T" + name[4:]
        elif name == "bed":
            key = "B"
        elif name == "chamber":
            key = "C"
        else:
            continue
        target = value.get("target")
        found[key] = Temperature(float(value["actual"]), None if target is None else float(target))
    return found


class OctoPrintClient:
    """One OctoPrint server; also a :class:`app.printing.backends.remote.RemoteBackend`."""

    kind = "octoprint"

    def __init__(
        self, url: str, api_key: str | None, *, timeout: float = 10.0, connect_printer: bool = True
    ) -> None:
        self.http = JsonHttp(url, api_key, server="OctoPrint", timeout=timeout)
        self.connect_printer = connect_printer
        self.version: dict | None = None
        self._name: str | None = None

    # -- connection --------------------------------------------------------------------------

    def test_connection(self) -> str:
        """Check the URL and the key; returns e.g. "OctoPrint 1.11.8, printer Operational"."""
        self.version = self.http.request("GET", "/api/version")
        # /api/version answers some keys that lack permissions; /api/job needs STATUS
        self.http.request("GET", "/api/job")
        current = self.http.request("GET", "/api/connection").get("current", {})
        return f"{self.version.get('text', 'OctoPrint')}, printer {current.get('state', '?')}"

    def connect(self, timeout: float = 30.0) -> None:
        """Check the server; ask it to connect to its printer when it is not connected."""
        self.test_connection()
        state = self._connection_state()
        if state in (PrinterState.DISCONNECTED, PrinterState.ERROR) and self.connect_printer:
            self.http.request("POST", "/api/connection", body={"command": "connect"})
        end = time.monotonic() + timeout
        while True:
            state = self._connection_state()
            if state not in (
                PrinterState.DISCONNECTED,
                PrinterState.CONNECTING,
                PrinterState.ERROR,
            ):
                return
            if time.monotonic() > end:
                msg = (
                    "OctoPrint is running but not connected to the printer; connect it in "
                    "OctoPrint (Connection panel) and try again"
                )
                raise PrinterConnectionError(msg)
            time.sleep(0.5)

    def _connection_state(self) -> PrinterState:
        current = self.http.request("GET", "/api/connection").get("current", {})
        return state_from_text(current.get("state", "Closed"))

    def close(self) -> None:
        """Nothing to release: every call is one HTTP request."""

    # -- files and jobs ----------------------------------------------------------------------

    def upload(self, name: str, data: bytes) -> dict:
        """Store ``data`` as ``name`` in OctoPrint's local storage (under the pseudonymous name)."""
        if not name.lower().endswith((".gcode", ".gco", ".g")):
            msg = f"'{name}' is not a G-code file name; OctoPrint prints .gcode files"
            raise PrinterConnectionError(msg)
        answer = self.http.upload(
            "/api/files/local", name, data, {"select": "false", "print": "false"}
        )
        if not answer or not answer.get("done", True):
            msg = "OctoPrint did not confirm the upload; check its log and free disk space"
            raise PrinterConnectionError(msg)
        return answer

    def select_and_start(self, name: str) -> None:
        path = "/api/files/local/" + urllib.parse.quote(name)
        self.http.request("POST", path, body={"command": "select", "print": True})
        self._name = name

    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None:
        self.upload(name, data)
        self.select_and_start(name)

    def job(self) -> dict:
        return self.http.request("GET", "/api/job") or {}

    def printer(self) -> dict:
        """/api/printer, or {} while OctoPrint has no printer connected (its 409)."""
        try:
            return self.http.request("GET", "/api/printer") or {}
        except HttpError as exc:
            if exc.status == 409:
                return {}
            raise

    def poll(self) -> RemoteStatus:
        job = self.job()
        state = state_from_text(job.get("state", ""))
        progress = job.get("progress") or {}
        completion = progress.get("completion")
        printer = self.printer()
        message = job.get("error") or ""
        return RemoteStatus(
            state=state,
            progress=(completion or 0.0) / 100.0,
            elapsed=progress.get("printTime"),
            remaining=progress.get("printTimeLeft"),
            temperatures=temperatures_from(printer.get("temperature", {})),
            message=str(message),
        )

    def pause(self) -> None:
        self.http.request("POST", "/api/job", body={"command": "pause", "action": "pause"})

    def resume(self) -> None:
        self.http.request("POST", "/api/job", body={"command": "pause", "action": "resume"})

    def cancel(self) -> None:
        self.http.request("POST", "/api/job", body={"command": "cancel"})

    def emergency_stop(self) -> None:
        """M112 through OctoPrint (it sends emergency commands without waiting for an ok)."""
        self.http.request("POST", "/api/printer/command", body={"commands": ["M112"]})

    def delete(self, name: str) -> None:
        self.http.request("DELETE", "/api/files/local/" + urllib.parse.quote(name))

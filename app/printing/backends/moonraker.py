"""Moonraker (Klipper) REST client: upload with checksum, start, ``print_stats``, pause/resume/cancel.

Follows Moonraker's documented HTTP API: successful answers are ``{"result": ...}``, failures
``{"error": {"code": <http status>, "message": "..."}}``. Uploads go to ``/server/files/upload``
(multipart, ``root=gcodes``) with the SHA-256 of the file in the ``checksum`` field, so Moonraker
itself refuses a corrupted transfer (HTTP 422). Status comes from ``/printer/objects/query``
(``webhooks``, ``print_stats``, ``virtual_sdcard``, ``extruder``, ``heater_bed``).
"""

from __future__ import annotations

import urllib.parse

from app.errors import PrinterConnectionError
from app.printing.backends.octoprint import HttpError, JsonHttp
from app.printing.backends.remote import RemoteStatus
from app.printing.marlin import PrinterState, Temperature

_PRINT_STATES = {
    "standby": PrinterState.IDLE,
    "printing": PrinterState.PRINTING,
    "paused": PrinterState.PAUSED,
    "complete": PrinterState.FINISHED,
    "cancelled": PrinterState.CANCELLED,
    "error": PrinterState.ERROR,
}
_QUERY = ("webhooks", "print_stats", "virtual_sdcard", "extruder", "heater_bed", "display_status")


def state_from_print_stats(state: str) -> PrinterState:
    return _PRINT_STATES.get((state or "").lower(), PrinterState.ERROR)


class MoonrakerClient:
    """One Moonraker server; also a :class:`app.printing.backends.remote.RemoteBackend`."""

    kind = "moonraker"

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 10.0) -> None:
        self.http = JsonHttp(url, api_key, server="Moonraker", timeout=timeout)
        self._estimate: float | None = None

    def _call(self, method: str, path: str, **kwargs: object) -> object:
        try:
            answer = self.http.request(method, path, **kwargs)
        except HttpError as exc:
            if exc.status == 422 and "checksum" in exc.detail.lower():
                msg = (
                    "Moonraker refused the upload: the file arrived damaged (checksum "
                    f"mismatch: {exc.detail}); send it again"
                )
                raise PrinterConnectionError(msg) from None
            if exc.status == 503 or "klippy" in exc.detail.lower():
                msg = (
                    f"Moonraker is up but Klipper is not ready ({exc.detail or exc.status}); "
                    "check the printer and restart its firmware from the Moonraker UI"
                )
                raise PrinterConnectionError(msg) from None
            raise
        if not isinstance(answer, dict) or "result" not in answer:
            msg = "Moonraker sent an answer without a result; is the URL that of Moonraker?"
            raise PrinterConnectionError(msg)
        return answer["result"]

    # -- connection --------------------------------------------------------------------------

    def test_connection(self) -> str:
        """Check URL, key and Klipper; returns e.g. "Moonraker v0.9.3, Klipper ready"."""
        info = self._call("GET", "/server/info")
        state = info.get("klippy_state", "?")
        if state != "ready":
            msg = (
                f"Moonraker answers but Klipper is '{state}'; fix the printer (see "
                "klippy.log) and restart its firmware"
            )
            raise PrinterConnectionError(msg)
        return f"Moonraker {info.get('moonraker_version', '')}".strip() + f", Klipper {state}"

    def connect(self) -> None:
        self.test_connection()

    def close(self) -> None:
        """Nothing to release: every call is one HTTP request."""

    def identity(self) -> dict[str, str]:
        """The serial number ``/machine/system_info`` reports: the printer's product serial
        when the machine is set up with one, else the serial of the host's CPU; nothing when
        the server does not say (older Moonraker, no permission)."""
        try:
            info = self._call("GET", "/machine/system_info").get("system_info", {})
        except (PrinterConnectionError, HttpError, AttributeError):
            return {}
        product, cpu = info.get("product_info") or {}, info.get("cpu_info") or {}
        if product.get("serial_number"):
            return {
                "serial": str(product["serial_number"]),
                "model": str(product.get("machine_name") or ""),
                "source": "printer (Moonraker product_info)",
            }
        return {
            "serial": str(cpu.get("serial_number") or ""),
            "model": str(cpu.get("model") or ""),
            "source": "printer host (Moonraker cpu_info)",
        }

    # -- files and jobs ----------------------------------------------------------------------

    def upload(self, name: str, data: bytes, sha256: str) -> dict:
        """Upload to the ``gcodes`` root; Moonraker checks ``sha256`` and answers 201."""
        if not name.lower().endswith((".gcode", ".gco", ".g")):
            msg = f"'{name}' is not a G-code file name; Moonraker prints .gcode files"
            raise PrinterConnectionError(msg)
        fields = {"root": "gcodes", "checksum": sha256} if sha256 else {"root": "gcodes"}
        try:
            answer = self.http.upload("/server/files/upload", name, data, fields)
        except HttpError as exc:
            if exc.status == 422:
                msg = (
                    "Moonraker refused the upload: the file arrived damaged (checksum "
                    f"mismatch: {exc.detail}); send it again"
                )
                raise PrinterConnectionError(msg) from None
            raise
        result = (answer or {}).get("result", answer) or {}
        item = result.get("item", {})
        if item.get("path") != name:
            msg = f"Moonraker stored the file under an unexpected name ({item.get('path')})"
            raise PrinterConnectionError(msg)
        return result

    def start(self, name: str) -> None:
        self._call("POST", "/printer/print/start", query={"filename": name})
        self._estimate = None
        try:
            meta = self._call("GET", "/server/files/metadata", query={"filename": name})
            self._estimate = meta.get("estimated_time") if isinstance(meta, dict) else None
        except PrinterConnectionError:
            self._estimate = None

    def upload_and_start(self, name: str, data: bytes, sha256: str) -> None:
        self.upload(name, data, sha256)
        self.start(name)

    def query(self) -> dict:
        query = "&".join(urllib.parse.quote(name) for name in _QUERY)
        result = self._call("GET", "/printer/objects/query?" + query)
        status = result.get("status") if isinstance(result, dict) else None
        if not status:
            msg = "Moonraker returned no printer status; Klipper may not be configured"
            raise PrinterConnectionError(msg)
        return status

    def poll(self) -> RemoteStatus:
        status = self.query()
        hooks = status.get("webhooks", {})
        stats = status.get("print_stats", {})
        if hooks.get("state", "ready") != "ready":
            message = hooks.get("state_message") or f"Klipper is {hooks.get('state')}"
            return RemoteStatus(PrinterState.ERROR, message=message)
        state = state_from_print_stats(stats.get("state", ""))
        progress = status.get("virtual_sdcard", {}).get("progress")
        if progress is None:
            progress = status.get("display_status", {}).get("progress", 0.0)
        duration = stats.get("print_duration")
        remaining = None
        if self._estimate and duration is not None:
            remaining = max(0.0, self._estimate - duration)
        elif progress and duration:
            remaining = duration / progress - duration
        info = stats.get("info") or {}
        return RemoteStatus(
            state=state,
            progress=float(progress or 0.0),
            elapsed=duration,
            remaining=remaining,
            layer=info.get("current_layer"),
            layers=info.get("total_layer"),
            temperatures=_temperatures(status),
            message=stats.get("message", "") or "",
        )

    def pause(self) -> None:
        self._call("POST", "/printer/print/pause")

    def resume(self) -> None:
        self._call("POST", "/printer/print/resume")

    def cancel(self) -> None:
        self._call("POST", "/printer/print/cancel")

    def emergency_stop(self) -> None:
        """Moonraker's emergency stop: Klipper halts at once (M112 via G-code would queue)."""
        self._call("POST", "/printer/emergency_stop")


def _temperatures(status: dict) -> dict[str, Temperature]:
    found = {}
    for name, key in (("extruder", "T0"), ("extruder1", "T1"), ("heater_bed", "B")):
        heater = status.get(name)
        if isinstance(heater, dict) and heater.get("temperature") is not None:
            target = heater.get("target")
            found[key] = Temperature(
                float(heater["temperature"]), None if target is None else float(target)
            )
    return found

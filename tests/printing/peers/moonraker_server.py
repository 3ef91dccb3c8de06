"""A recorded-contract Moonraker server: the documented HTTP API, run on 127.0.0.1.

No Moonraker package can be installed here, so this server plays Moonraker by its published
contract (docs/external_api: introduction, file_manager, printer):

- Answers are ``{"result": ...}``; errors are ``{"error": {"code": <status>, "message": ...}}``
  with the same HTTP status. With an API key configured, requests without the right
  ``X-Api-Key`` get 401.
- ``GET /server/info``; ``GET /machine/system_info`` (``cpu_info``, and ``product_info`` on a
  machine set up with one; 404 until a test sets ``system_info``); ``POST
  /server/files/upload`` (multipart ``file``, optional ``root``,
  ``path``, ``checksum`` (SHA-256; mismatch -> 422), ``print``) answering 201 with ``item``,
  ``print_started``, ``print_queued``, ``action: create_file`` and a ``Location`` header;
  ``GET /server/files/metadata``; ``POST /printer/print/start?filename=`` / ``pause`` /
  ``resume`` / ``cancel`` answering ``"ok"`` (Klipper's errors as 400); ``GET|POST
  /printer/objects/query`` with ``webhooks``, ``print_stats`` (state standby / printing /
  paused / complete / cancelled / error, ``print_duration``, ``info.current_layer``),
  ``virtual_sdcard`` (``progress``), ``extruder`` and ``heater_bed``.

A print advances at ``lines_per_second`` through the uploaded G-code. Faults: ``klippy_state``
(e.g. "shutdown"), ``damage_uploads`` (the stored bytes differ, so the checksum fails).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MoonrakerContract:
    """The server's state; ``url`` once started."""

    def __init__(self, *, api_key: str | None = None, lines_per_second: float = 2000.0) -> None:
        self.api_key = api_key
        self.lines_per_second = lines_per_second
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.klippy_state = "ready"
        self.damage_uploads = False
        self.system_info: dict | None = None  # /machine/system_info; None: 404 (older servers)
        self.state = "standby"
        self.filename = ""
        self.message = ""
        self.progress = 0.0
        self.duration = 0.0
        self.layer = 0
        self.total_layers = 0
        self.targets = {"extruder": 0.0, "heater_bed": 0.0}
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._position = 0
        self._last_tick = time.monotonic()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._run, daemon=True),
        ]
        self._stop = threading.Event()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MoonrakerContract:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    # -- the simulated print -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                now = time.monotonic()
                dt, self._last_tick = now - self._last_tick, now
                if self.state != "printing" or not self._lines:
                    continue
                self.duration += dt
                step = max(1, int(dt * self.lines_per_second))
                for line in self._lines[self._position : self._position + step]:
                    self._execute(line)
                self._position = min(len(self._lines), self._position + step)
                self.progress = self._position / len(self._lines)
                if self._position >= len(self._lines):
                    self.state = "complete"

    def _execute(self, line: str) -> None:
        text = line.split(";", 1)[0].strip().upper()
        if line.startswith(";LAYER_CHANGE"):
            self.layer += 1
        for code, heater in (
            ("M104", "extruder"),
            ("M109", "extruder"),
            ("M140", "heater_bed"),
            ("M190", "heater_bed"),
        ):
            if text.startswith(code + " ") and " S" in text:
                self.targets[heater] = float(text.split(" S", 1)[1].split()[0])

    def start_print(self, filename: str) -> tuple[int, object]:
        with self._lock:
            if filename not in self.files:
                return 400, f"File not found: {filename}"  # Klipper's SDCARD_PRINT_FILE error
            if self.state in ("printing", "paused"):
                return 400, "SD busy"
            self._lines = self.files[filename].decode("ascii", errors="replace").splitlines()
            self._position = 0
            self.filename, self.state, self.progress, self.duration = filename, "printing", 0.0, 0
            self.layer = 0
            self.total_layers = sum(1 for x in self._lines if x.startswith(";LAYER_CHANGE"))
            self.message = ""
            return 200, "ok"

    def command(self, action: str) -> tuple[int, object]:
        with self._lock:
            if action == "pause":
                if self.state != "printing":
                    return 400, "Print is not in progress, pause aborted"
                self.state = "paused"
            elif action == "resume":
                if self.state != "paused":
                    return 400, "Print is not paused, resume aborted"
                self.state = "printing"
            elif action == "cancel":
                if self.state not in ("printing", "paused"):
                    return 400, "No print in progress to cancel"
                self.state = "cancelled"
                self.targets = {"extruder": 0.0, "heater_bed": 0.0}
            return 200, "ok"

    def status(self, objects: list[str]) -> dict:
        with self._lock:
            known = {
                "webhooks": {
                    "state": self.klippy_state,
                    "state_message": "Printer is ready"
                    if self.klippy_state == "ready"
                    else "MCU 'mcu' shutdown: Timer too close",
                },
                "print_stats": {
                    "filename": self.filename if self.state != "standby" else "",
                    "total_duration": round(self.duration, 3),
                    "print_duration": round(self.duration, 3),
                    "filament_used": 0.0,
                    "state": self.state,
                    "message": self.message,
                    "info": {
                        "total_layer": self.total_layers or None,
                        "current_layer": self.layer or None,
                    },
                },
                "virtual_sdcard": {
                    "file_path": self.filename,
                    "progress": self.progress,
                    "is_active": self.state == "printing",
                    "file_position": self._position,
                    "file_size": 0,
                },
                "extruder": {
                    "temperature": self.targets["extruder"] or 22.5,
                    "target": self.targets["extruder"],
                    "power": 0.0,
                },
                "heater_bed": {
                    "temperature": self.targets["heater_bed"] or 22.0,
                    "target": self.targets["heater_bed"],
                    "power": 0.0,
                },
                "display_status": {"progress": self.progress, "message": None},
            }
        return {name: known[name] for name in objects if name in known}


def _multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in body.split(b"--" + boundary):
        if not chunk.strip() or chunk.strip() == b"--":
            continue
        head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        data = data[:-2] if data.endswith(b"\r\n") else data
        disposition = head.decode(errors="replace")
        name = disposition.split('name="', 1)[1].split('"', 1)[0]
        filename = (
            disposition.split('filename="', 1)[1].split('"', 1)[0]
            if ('filename="' in disposition)
            else None
        )
        parts[name] = (filename, data)
    return parts


def _handler(contract: MoonrakerContract) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _reply(self, status: int, payload: object, headers: dict | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._reply(status, {"error": {"code": status, "message": message, "traceback": ""}})

        def _authorised(self) -> bool:
            if contract.api_key and self.headers.get("X-Api-Key") != contract.api_key:
                self._error(401, "Unauthorized")
                return False
            return True

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def _route(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            contract.requests.append((method, url.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not self._authorised():
                return
            query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
            routes = {
                ("GET", "/server/info"): self._info,
                ("GET", "/machine/system_info"): self._system_info,
                ("POST", "/server/files/upload"): lambda: self._upload(body),
                ("GET", "/server/files/metadata"): lambda: self._metadata(query),
                ("GET", "/printer/objects/query"): lambda: self._query(list(query)),
                ("POST", "/printer/objects/query"): lambda: self._query(
                    list(json.loads(body or b"{}").get("objects", {}))
                ),
                ("POST", "/printer/print/start"): lambda: self._start(query, body),
                ("POST", "/printer/print/pause"): lambda: self._command("pause"),
                ("POST", "/printer/print/resume"): lambda: self._command("resume"),
                ("POST", "/printer/print/cancel"): lambda: self._command("cancel"),
                ("POST", "/printer/emergency_stop"): self._emergency_stop,
            }
            handler = routes.get((method, url.path))
            if handler is None:
                self._error(404, "Not Found")
                return
            if (
                url.path.startswith("/printer/")
                and contract.klippy_state != "ready"
                and (url.path != "/printer/objects/query")
            ):
                self._error(503, "Klippy Host not connected")
                return
            handler()

        def _info(self) -> None:
            self._reply(
                200,
                {
                    "result": {
                        "klippy_connected": True,
                        "klippy_state": contract.klippy_state,
                        "components": ["file_manager", "klippy_apis", "history"],
                        "failed_components": [],
                        "registered_directories": ["config", "gcodes"],
                        "warnings": [],
                        "websocket_count": 0,
                        "moonraker_version": "v0.9.3-contract",
                        "api_version": [1, 5, 0],
                        "api_version_string": "1.5.0",
                    }
                },
            )

        def _system_info(self) -> None:
            if contract.system_info is None:
                self._error(404, "Not Found")
                return
            self._reply(200, {"result": {"system_info": contract.system_info}})

        def _upload(self, body: bytes) -> None:
            ctype = self.headers.get("Content-Type", "")
            if "multipart/form-data" not in ctype:
                self._error(400, "Request does not contain multipart/form-data")
                return
            parts = _multipart(body, ctype)
            if "file" not in parts or not parts["file"][0]:
                self._error(400, "No file name specifed in upload form")
                return
            name, data = parts["file"]
            root = parts.get("root", (None, b"gcodes"))[1].decode()
            if root not in ("gcodes", "config"):
                self._error(400, f"Invalid root request: {root}")
                return
            if root == "gcodes" and not name.lower().endswith((".gcode", ".g", ".gco")):
                self._error(400, f"Invalid file extension for gcode file: {name}")
                return
            if contract.damage_uploads:
                data = data[:-1] + bytes([data[-1] ^ 1])
            if "checksum" in parts:
                expected = parts["checksum"][1].decode().strip().lower()
                actual = hashlib.sha256(data).hexdigest()
                if expected != actual:
                    self._error(
                        422, f"File checksum mismatch: expected {expected}, calculated {actual}"
                    )
                    return
            contract.files[name] = data
            printing = parts.get("print", (None, b"false"))[1].decode().lower() == "true"
            started = printing and contract.start_print(name)[0] == 200
            self._reply(
                201,
                {
                    "result": {
                        "item": {
                            "path": name,
                            "root": root,
                            "modified": time.time(),
                            "size": len(data),
                            "permissions": "rw",
                        },
                        "print_started": started,
                        "print_queued": False,
                        "action": "create_file",
                    }
                },
                {"Location": f"{contract.url}/server/files/{root}/{name}"},
            )

        def _metadata(self, query: dict) -> None:
            name = (query.get("filename") or [""])[0]
            if name not in contract.files:
                self._error(404, f"Metadata not available for <{name}>")
                return
            self._reply(
                200,
                {
                    "result": {
                        "size": len(contract.files[name]),
                        "modified": time.time(),
                        "filename": name,
                        "slicer": "MedPrint",
                    }
                },
            )

        def _query(self, objects: list[str]) -> None:
            self._reply(
                200, {"result": {"eventtime": time.monotonic(), "status": contract.status(objects)}}
            )

        def _start(self, query: dict, body: bytes) -> None:
            name = (query.get("filename") or [""])[0]
            if not name and body:
                name = json.loads(body).get("filename", "")
            if not name:
                self._error(400, "No data for argument: filename")
                return
            status, message = contract.start_print(name)
            if status != 200:
                self._error(status, str(message))
                return
            self._reply(200, {"result": "ok"})

        def _emergency_stop(self) -> None:
            contract.klippy_state = "shutdown"
            contract.state = "error"
            contract.message = "Shutdown due to M112 command"
            self._reply(200, {"result": "ok"})

        def _command(self, action: str) -> None:
            status, message = contract.command(action)
            if status != 200:
                self._error(status, str(message))
                return
            self._reply(200, {"result": "ok"})

    return Handler

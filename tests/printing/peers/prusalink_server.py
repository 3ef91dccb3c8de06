"""A contract PrusaLink server: the published v1 API (Prusa-Link-Web ``spec/openapi.yaml``).

- Security ``digestAuth`` (HTTP digest, RFC 7616, MD5, ``qop=auth``): a request without valid
  credentials gets 401 with a ``WWW-Authenticate: Digest`` challenge; the printer's user is
  ``maker``. With ``api_key`` set, ``X-Api-Key`` is accepted instead.
- ``GET /api/version``, ``GET /api/v1/info`` (``serial``), ``GET /api/v1/storage``,
  ``GET /api/v1/status`` (``printer``: state IDLE / BUSY / PRINTING / PAUSED / FINISHED /
  STOPPED / ERROR / ATTENTION, temperatures; ``job``: id, progress in percent,
  time_remaining, time_printing), ``GET /api/v1/job`` (204 without a job).
- ``PUT /api/v1/files/{storage}/{path}`` (raw body, ``Overwrite``, ``Print-After-Upload`` as
  ``?0``/``?1``; 201; 409 when the file exists and may not be overwritten or is printing);
  ``GET`` of the same path (file info with ``size``); ``POST`` starts it (204; 409 busy).
- ``PUT /api/v1/job/{id}/pause|resume``, ``DELETE /api/v1/job/{id}`` (204; 404 other id;
  409 wrong state).

Errors are JSON ``{"title", "text"}`` when the client accepts JSON, else plain text. A print
advances ``percent_per_second``; a G-code's M104/M140 set the targets. Faults: ``busy``
(state BUSY with another job), ``garbage`` (answers that are not JSON), ``odd_json`` (JSON of
another shape), ``html_errors``, ``delay`` (seconds before every answer).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER = "maker"
REALM = "Printer API"
SERIAL = "CZPX4720X004XC34242"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # the digest scheme's own hash


def _digest_fields(header: str) -> dict[str, str]:
    fields = {}
    for part in urllib.request.parse_http_list(header):
        key, _, value = part.partition("=")
        fields[key.strip().lower()] = value.strip().strip('"')
    return fields


class PrusaLinkContract:
    """The server's state; ``url`` once started."""

    def __init__(
        self,
        *,
        password: str = "pl-secret",
        api_key: str | None = None,
        model: str = "MK4",
        percent_per_second: float = 50.0,
    ) -> None:
        self.password = password
        self.api_key = api_key
        self.model = model
        self.percent_per_second = percent_per_second
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.state = "IDLE"
        self.job: dict | None = None
        self.busy = False
        self.garbage = False
        self.html_errors = False
        self.odd_json = False
        self.delay = 0.0
        self.targets = {"nozzle": 0.0, "bed": 0.0}
        self.nonces: set[str] = set()
        self._lock = threading.Lock()
        self._next_job = 40
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, daemon=True),
            threading.Thread(target=self._run, daemon=True),
        ]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> PrusaLinkContract:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    # -- authentication ----------------------------------------------------------------------

    def challenge(self) -> str:
        nonce = uuid.uuid4().hex
        self.nonces.add(nonce)
        return f'Digest realm="{REALM}", nonce="{nonce}", qop="auth", algorithm=MD5'

    def authorised(self, method: str, headers: dict) -> bool:
        if self.api_key and headers.get("X-Api-Key") == self.api_key:
            return True
        header = headers.get("Authorization") or ""
        if not header.startswith("Digest "):
            return False
        got = _digest_fields(header[len("Digest ") :])
        if got.get("username") != USER or got.get("nonce") not in self.nonces:
            return False
        ha1 = _md5(f"{USER}:{REALM}:{self.password}")
        ha2 = _md5(f"{method}:{got.get('uri', '')}")
        parts = [ha1, got["nonce"], got.get("nc", ""), got.get("cnonce", ""), "auth", ha2]
        return got.get("response") == _md5(":".join(parts))

    # -- the simulated printer ---------------------------------------------------------------

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.02):
            now = time.monotonic()
            dt, last = now - last, now
            with self._lock:
                if self.state != "PRINTING" or self.job is None:
                    continue
                job = self.job
                job["time_printing"] += dt
                job["progress"] = min(100.0, job["progress"] + dt * self.percent_per_second)
                left = (100.0 - job["progress"]) / self.percent_per_second
                job["time_remaining"] = round(left)
                if job["progress"] >= 100.0:
                    self.state = "FINISHED"
                    self.targets = {"nozzle": 0.0, "bed": 0.0}

    def start_print(self, path: str) -> tuple[int, str]:
        with self._lock:
            if self.busy or self.state in ("PRINTING", "PAUSED", "BUSY", "ATTENTION"):
                return 409, "Printer is busy"
            if path not in self.files:
                return 404, "File not found"
            self._next_job += 1
            self.job = {
                "id": self._next_job,
                "path": path,
                "progress": 0.0,
                "time_printing": 0.0,
                "time_remaining": round(100.0 / self.percent_per_second),
            }
            self.state = "PRINTING"
            self._read_targets(self.files[path])
            return 204, ""

    def _read_targets(self, data: bytes) -> None:
        if not path_is_gcode(self.job["path"]):
            return
        for line in data.decode("ascii", errors="replace").splitlines()[:200]:
            word = line.split(";", 1)[0].strip().upper()
            for code, heater in (("M104", "nozzle"), ("M109", "nozzle"), ("M140", "bed")):
                if word.startswith(code + " ") and " S" in word:
                    self.targets[heater] = float(word.split(" S", 1)[1].split()[0])

    def command(self, job_id: int, action: str) -> tuple[int, str]:
        with self._lock:
            if self.job is None or self.job["id"] != job_id:
                return 404, "Job not found"
            allowed = {
                "pause": ("PRINTING",),
                "resume": ("PAUSED",),
                "stop": ("PRINTING", "PAUSED"),
            }
            if self.state not in allowed[action]:
                return 409, f"Cannot {action}: printer is {self.state.lower()}"
            self.state = {"pause": "PAUSED", "resume": "PRINTING", "stop": "STOPPED"}[action]
            if action == "stop":
                self.targets = {"nozzle": 0.0, "bed": 0.0}
            return 204, ""

    def status(self) -> dict:
        with self._lock:
            state = "BUSY" if self.busy else self.state
            printer = {
                "state": state,
                "temp_nozzle": self.targets["nozzle"] or 23.5,
                "target_nozzle": self.targets["nozzle"],
                "temp_bed": self.targets["bed"] or 22.9,
                "target_bed": self.targets["bed"],
                "status_printer": {"ok": state != "ERROR", "message": "Thermal runaway"},
            }
            answer: dict = {"printer": printer, "storage": {"path": "/usb", "name": "usb"}}
            if self.job is not None and state in ("PRINTING", "PAUSED", "ATTENTION", "BUSY"):
                answer["job"] = {
                    k: round(v) if k == "time_printing" else v
                    for k, v in self.job.items()
                    if k != "path"
                }
            return answer


def path_is_gcode(path: str) -> bool:
    return path.lower().endswith((".gcode", ".bgcode"))


def _handler(contract: PrusaLinkContract) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = 65536  # headers and body leave in one write (no 40 ms delayed-ACK stall)

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
            self.send_response(status)
            if body or status not in (204,):
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def _reply(self, status: int, payload: object) -> None:
            if contract.garbage:
                self._send(status, b"<html><body>Loading...</body></html>", "text/html")
                return
            if contract.odd_json:
                payload = ["unexpected", {"printer": None}]
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _error(self, status: int, text: str, extra: dict | None = None) -> None:
            if contract.html_errors:
                page = f"<html><h1>{status}</h1><p>{text}</p></html>".encode()
                self._send(status, page, "text/html", extra)
            elif "application/json" in (self.headers.get("Accept") or ""):
                body = json.dumps({"code": str(status), "title": text, "text": text}).encode()
                self._send(status, body, "application/json", extra)
            else:
                self._send(status, text.encode(), "text/plain", extra)

        def do_GET(self) -> None:
            self._route("GET")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def _route(self, method: str) -> None:
            path = urllib.parse.urlsplit(self.path).path
            contract.requests.append((method, path))
            time.sleep(contract.delay)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not contract.authorised(method, dict(self.headers)):
                self._error(401, "Unauthorized", {"WWW-Authenticate": contract.challenge()})
                return
            if path.startswith("/api/v1/files/"):
                self._files(method, urllib.parse.unquote(path[len("/api/v1/files/") :]), body)
            elif path.startswith("/api/v1/job/"):
                self._job_command(method, path[len("/api/v1/job/") :])
            else:
                self._fixed(method, path)

        def _fixed(self, method: str, path: str) -> None:
            answers = {
                "/api/version": lambda: {
                    "api": "1.0.0",
                    "version": "2.1.2",
                    "printer": "6.1.3",
                    "text": "PrusaLink 2.1.2",
                    "firmware": "6.1.3+8089",
                    "capabilities": {"upload-by-put": True},
                },
                "/api/v1/info": lambda: {
                    "name": contract.model,
                    "serial": SERIAL,
                    "hostname": "prusa-mk4.local",
                    "nozzle_diameter": 0.4,
                },
                "/api/v1/storage": lambda: {
                    "storage_list": [
                        {
                            "name": "usb",
                            "type": "USB",
                            "path": "/usb",
                            "available": True,
                            "read_only": False,
                        }
                    ]
                },
                "/api/v1/status": contract.status,
            }
            if method == "GET" and path == "/api/v1/job":
                job = contract.status().get("job")
                if job is None:
                    self._send(204, b"", "application/json")
                else:
                    self._reply(200, {**job, "state": contract.state})
                return
            if method != "GET" or path not in answers:
                self._error(404, "Not Found")
                return
            self._reply(200, answers[path]())

        def _files(self, method: str, target: str, body: bytes) -> None:
            storage, _, name = target.partition("/")
            if storage != "usb" or not name:
                self._error(404, "Storage not found")
                return
            if method == "PUT":
                self._upload(name, body)
            elif method == "GET":
                if name not in contract.files:
                    self._error(404, "File not found")
                    return
                info = {
                    "name": name,
                    "display_name": name,
                    "type": "PRINT_FILE",
                    "read_only": False,
                }
                self._reply(200, {**info, "size": len(contract.files[name]), "m_timestamp": 0})
            elif method == "POST":
                status, text = contract.start_print(name)
                if status >= 400:
                    self._error(status, text)
                else:
                    self._send(204, b"", "application/json")
            else:
                self._error(405, "Method not allowed")

        def _upload(self, name: str, body: bytes) -> None:
            printing = contract.job is not None and contract.job["path"] == name
            if name in contract.files and (self.headers.get("Overwrite") != "?1" or printing):
                self._error(409, "File already exists")
                return
            if not name.lower().endswith((".gcode", ".bgcode", ".sl1", ".sl1s")):
                self._error(415, "Unsupported file type")
                return
            contract.files[name] = body
            if self.headers.get("Print-After-Upload") == "?1":
                contract.start_print(name)
            self._send(201, b"", "application/json")

        def _job_command(self, method: str, rest: str) -> None:
            number, _, action = rest.partition("/")
            actions = {
                ("PUT", "pause"): "pause",
                ("PUT", "resume"): "resume",
                ("DELETE", ""): "stop",
            }
            if not number.isdigit() or (method, action) not in actions:
                self._error(404, "Not Found")
                return
            status, text = contract.command(int(number), actions[(method, action)])
            if status >= 400:
                self._error(status, text)
            else:
                self._send(204, b"", "application/json")

    return Handler

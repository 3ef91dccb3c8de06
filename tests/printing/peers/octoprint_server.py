"""A real OctoPrint server on 127.0.0.1 with its virtual printer, for tests and the benchmark.

OctoPrint is installed with pip into its own venv (``~/.cache/medprint-tests/octoprint-venv``,
or ``$MEDPRINT_OCTOPRINT_VENV``), reused when present. The server gets a private base folder
with a ``config.yaml`` that enables the virtual printer (fast: no simulated errors), turns off
every plugin that phones home (tracking, announcements, software update, plugin repository,
backup, error tracking, discovery, firmware/file checks, Pi support, achievements) and the online
check, and a ``users.yaml`` with one admin whose API key the tests use. It is started with
``octoprint serve --iknowwhatimdoing`` on a free port and is ready once ``/api/version`` answers.

:func:`start_octoprint` returns a :class:`OctoPrintServer` or raises :class:`Unavailable` with
the reason (no network to install, install failed, server did not start) so callers can skip.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

VENV_ENV = "MEDPRINT_OCTOPRINT_VENV"
DEFAULT_VENV = Path.home() / ".cache" / "medprint-tests" / "octoprint-venv"
PHONE_HOME_PLUGINS = [
    "tracking",
    "announcements",
    "softwareupdate",
    "pluginmanager",
    "backup",
    "errortracking",
    "discovery",
    "firmware_check",
    "file_check",
    "pi_support",
    "achievements",
    "health_check",
    "gcodeviewer",
]


class Unavailable(RuntimeError):
    """OctoPrint cannot be installed or started here; the message says why."""


@dataclass
class OctoPrintServer:
    url: str
    api_key: str
    basedir: Path
    process: subprocess.Popen

    def request(self, method: str, path: str, body: dict | None = None) -> dict | None:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"X-Api-Key": self.api_key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as answer:
            payload = answer.read()
        return json.loads(payload) if payload else None

    def connect_printer(self, timeout: float = 60.0) -> None:
        """Connect OctoPrint to its virtual printer and wait until it is operational."""
        self.request(
            "POST", "/api/connection", {"command": "connect", "port": "VIRTUAL", "baudrate": 115200}
        )
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            state = self.request("GET", "/api/connection")["current"]["state"]
            if state == "Operational" and self._has_temperatures():
                return
            time.sleep(0.3)
        msg = f"OctoPrint's virtual printer did not become operational (state {state})"
        raise Unavailable(msg)

    def _has_temperatures(self) -> bool:
        """OctoPrint knows the heaters once the printer's first temperature report came in."""
        try:
            printer = self.request("GET", "/api/printer") or {}
        except urllib.error.HTTPError:
            return False
        return "tool0" in printer.get("temperature", {})

    @contextlib.contextmanager
    def fast_moves(self, percent: int = 1000) -> Iterator[None]:
        """Meanwhile the virtual printer moves at ``percent`` of the G-code's feed rates (M220):
        it sleeps a tenth of each move's real duration, 13 s for a 400-line test print."""
        self.command(f"M220 S{percent}")
        try:
            yield
        finally:
            self.command("M220 S100")

    def command(self, line: str) -> None:
        """Send one G-code line to the printer through OctoPrint (queued before any job)."""
        self.request("POST", "/api/printer/command", {"commands": [line]})

    def wait_operational(self, timeout: float = 60.0) -> None:
        """Wait until no job is running (after a test that printed or cancelled)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            state = self.request("GET", "/api/job")["state"]
            if state.startswith("Operational"):
                return
            time.sleep(0.3)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def venv_dir() -> Path:
    return Path(os.environ.get(VENV_ENV, DEFAULT_VENV))


def ensure_octoprint(timeout: float = 900.0) -> Path:
    """The ``octoprint`` executable, installing it into its venv the first time."""
    venv = venv_dir()
    exe = venv / "bin" / "octoprint"
    marker = venv / ".medprint-ready"
    if exe.exists() and (marker.exists() or _works(exe)):
        marker.touch()
        return exe
    if venv.exists():
        shutil.rmtree(venv)  # a half-made venv from an interrupted install
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300
        )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "octoprint"],
            check=True,
            capture_output=True,
            timeout=timeout,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        tail = getattr(exc, "stderr", b"") or b""
        lines = [
            line
            for line in tail.decode(errors="replace").splitlines()
            if line.strip() and not line.startswith("WARNING: Location")
        ]
        shutil.rmtree(venv, ignore_errors=True)
        reason = lines[-1] if lines else exc.__class__.__name__
        msg = f"pip could not install octoprint: {reason[:200]}"
        raise Unavailable(msg) from None
    if not _works(exe):
        msg = "octoprint was installed but does not run"
        raise Unavailable(msg)
    marker.touch()
    return exe


def _works(exe: Path) -> bool:
    try:
        out = subprocess.run(
            [str(exe), "--version"], capture_output=True, timeout=120, text=True, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "octoprint" in out.stdout.lower()


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(basedir: Path, api_key: str) -> None:
    """config.yaml and users.yaml: virtual printer on, phone-home plugins off, one API key."""
    basedir.mkdir(parents=True, exist_ok=True)
    config = {
        "accessControl": {"salt": secrets.token_hex(16)},
        "server": {
            "firstRun": False,
            "onlineCheck": {"enabled": False},
            "pluginBlacklist": {"enabled": False},
            "seenWizards": {"corewizard": 4, "tracking": None, "backup": None},
        },
        "plugins": {
            "_disabled": PHONE_HOME_PLUGINS,
            "virtual_printer": {
                "enabled": True,
                "okAfterResend": True,
                "simulated_errors": [],
                "waitInterval": 0.5,
                "sendWait": False,
                "capabilities": {"AUTOREPORT_TEMP": True, "EMERGENCY_PARSER": True},
            },
        },
        "serial": {
            "port": "VIRTUAL",
            "baudrate": 115200,
            "autoconnect": True,
            "log": False,
            "additionalPorts": ["/dev/pts/*"],
        },
        "webcam": {"webcamEnabled": False},
        "temperature": {"cutoff": 30},
    }
    users = {
        "medprint": {
            "active": True,
            "apikey": api_key,
            "groups": ["admins", "users"],
            "password": secrets.token_hex(32),
            "permissions": [],
            "settings": {},
        }
    }
    # JSON is valid YAML: no YAML writer needed on our side
    (basedir / "config.yaml").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (basedir / "users.yaml").write_text(json.dumps(users, indent=2), encoding="utf-8")


def start_octoprint(basedir: Path, *, startup_timeout: float = 120.0) -> OctoPrintServer:
    """Install if needed, configure ``basedir`` and start OctoPrint; ready when this returns."""
    exe = ensure_octoprint()
    api_key = secrets.token_hex(16).upper()
    write_config(basedir, api_key)
    port = free_port()
    log = open(basedir / "serve.log", "wb")  # noqa: SIM115 (lives as long as the server)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    process = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--iknowwhatimdoing",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--basedir",
            str(basedir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = OctoPrintServer(f"http://127.0.0.1:{port}", api_key, basedir, process)
    end = time.monotonic() + startup_timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            tail = (basedir / "serve.log").read_text(errors="replace")[-400:]
            msg = f"octoprint serve exited with {process.returncode}: {tail}"
            raise Unavailable(msg)
        try:
            if server.request("GET", "/api/version"):
                server.connect_printer()
                return server
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
            pass  # not listening yet, or OctoPrint's start-up placeholder server
        time.sleep(0.5)
    server.stop()
    msg = f"octoprint serve did not answer within {startup_timeout:g} s"
    raise Unavailable(msg)

"""Audit heads forwarded to syslog (RFC 5424), so a log collector holds an anchor no
workstation user can reach.

Each new head of the audit log goes out as one RFC 5424 message (facility 13 "log audit",
severity 5 "notice", MSGID ``audit-head``) whose structured data holds the sequence number, the
line hash, the vault id, the account and the action: no patient data. Targets are a UDP
collector (``udp://HOST:PORT``, the ``syslog`` setting) and/or the local syslog socket
(``/dev/log``, the ``syslog_local`` setting). A failure to send never stops the action; it is
kept in ``config/syslog-status.json`` until a later head goes out, and ``medprint audit verify``
reports it.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from app.atomic import atomic_write_bytes
from app.errors import MedPrintError
from app.settings import Paths

FACILITY_LOG_AUDIT = 13
SEVERITY_NOTICE = 5
APP_NAME = "medprint"
MSGID = "audit-head"
SD_ID = "head@32473"  # 32473: the private enterprise number RFC 5612 sets aside for examples
LOCAL_SOCKET = "/dev/log"
_MAX_MESSAGE = 2048


def parse_target(url: str) -> tuple[str, int]:
    """(host, port) of ``udp://HOST:PORT``; a clear error for anything else."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "udp" or not parts.hostname or port is None or parts.path not in ("", "/"):
        msg = f"syslog target {url!r} is not udp://HOST:PORT (e.g. udp://127.0.0.1:514)"
        raise MedPrintError(msg)
    return parts.hostname, port


def _sd_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_field(value: str, limit: int) -> str:
    """A PRINTUSASCII header field without spaces, or the NILVALUE ``-``."""
    text = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def format_head(*, seq: int, digest: str, vault_id: str, user: str, action: str) -> bytes:
    """One RFC 5424 message announcing audit head ``seq`` (``digest``)."""
    pri = FACILITY_LOG_AUDIT * 8 + SEVERITY_NOTICE
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = _header_field(socket.gethostname(), 255)
    params = {"seq": seq, "hash": digest, "vault": vault_id or "-", "user": user, "action": action}
    sd = " ".join(f'{k}="{_sd_value(v)}"' for k, v in params.items())
    header = f"<{pri}>1 {stamp} {host} {APP_NAME} {os.getpid()} {MSGID}"
    return f"{header} [{SD_ID} {sd}] audit head {seq}".encode()[:_MAX_MESSAGE]


def send(message: bytes, *, target: str = "", local: bool = False) -> list[str]:
    """Send ``message`` to the UDP ``target`` and/or the local socket; the errors (types only)."""
    errors = []
    if target:
        try:
            host, port = parse_target(target)
            with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
                sock.sendto(message, (host, port))
        except (OSError, MedPrintError) as exc:
            errors.append(f"{target}: {exc.__class__.__name__}")
    if local:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, LOCAL_SOCKET)
        except OSError as exc:
            errors.append(f"{LOCAL_SOCKET}: {exc.__class__.__name__}")
    return errors


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _status_path(paths: Paths) -> Path:
    return paths.config / "syslog-status.json"


def note(paths: Paths, seq: int, errors: list[str]) -> None:
    """Keep the failures to send since the last head that went out (cleared by a success)."""
    path = _status_path(paths)
    if not errors:
        path.unlink(missing_ok=True)
        return
    status = unsent(paths) or {"first": seq, "count": 0}
    status |= {"last": seq, "count": int(status["count"]) + 1, "errors": errors}
    paths.config.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(status, sort_keys=True).encode())


def unsent(paths: Paths) -> dict | None:
    """The heads not sent since the last success (first, last, count, errors), or None."""
    path = _status_path(paths)
    try:
        return json.loads(path.read_bytes()) if path.exists() else None
    except ValueError:
        return {"first": 0, "last": 0, "count": 0, "errors": ["status file unreadable"]}


def describe_unsent(paths: Paths) -> str | None:
    """One line for ``audit verify`` about heads that did not reach syslog, or None."""
    status = unsent(paths)
    if not status:
        return None
    errors = ", ".join(status.get("errors", []))
    return (
        f"syslog: {status['count']} audit head(s) not sent (records {status['first']} to "
        f"{status['last']}; {errors}); check the 'syslog' setting and the collector"
    )

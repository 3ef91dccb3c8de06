"""The audit log: append-only, hash-chained, keyed, fsynced JSON lines with no PHI.

One call records an action::

    audit.record("mesh.export", case="C-7K3M-Q9", sha256=digest, smooth=0.5)

Each line holds ``seq``, ``time`` (UTC), ``user`` (OS account), ``action``, ``case``
(pseudonym or null), ``facts``, ``prev`` (SHA-256 of the previous line) and ``mac`` (HMAC-SHA256
of the rest under a key held in the OS keystore). A sealed head (last ``seq`` and line hash, with
its own MAC) is kept apart from the log, in the config folder, so cutting records off the end is
detected too. :func:`verify` names the first bad record.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import hmac
import io
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.atomic import atomic_write_bytes
from app.errors import AuditError
from app.security.identity import os_user
from app.security.keystore import Keystore
from app.settings import Paths, resolve_paths

_FIELDS = ("seq", "time", "user", "action", "case", "facts", "prev")
_GENESIS = "0" * 64
_MAX_TEXT = 256
_lock = threading.Lock()


@dataclass
class VerifyResult:
    ok: bool
    records: int
    message: str
    first_bad: int | None = None


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _log_path(paths: Paths) -> Path:
    return paths.audit / "audit.jsonl"


def _head_path(paths: Paths) -> Path:
    return paths.config / "audit-head.json"


def _install_id(paths: Paths) -> str:
    path = paths.config / "install.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))["install_id"]
    install_id = secrets.token_hex(8)
    paths.config.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps({"install_id": install_id}).encode())
    return install_id


def _mac_key(paths: Paths, create: bool) -> bytes:
    store, name = Keystore(), f"audit-hmac-{_install_id(paths)}"
    key = store.get(name)
    if key is None:
        if not create:
            msg = "the audit key is missing from the OS keystore; the log cannot be verified"
            raise AuditError(msg)
        key = secrets.token_bytes(32)
        store.set(name, key)
    return key


def _mac(key: bytes, payload: dict) -> str:
    return hmac.new(key, _canonical(payload), hashlib.sha256).hexdigest()


def _clean_facts(facts: dict) -> dict:
    """Facts must be plain, short values: hashes, numbers, parameters (never free patient text)."""
    return {name: _clean_value(value) for name, value in facts.items()}


def _clean_value(value: object) -> object:
    if isinstance(value, Path):
        return value.name
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT] + "…"
    if isinstance(value, int | float | bool | list | dict | type(None)):
        return value
    return str(value)[:_MAX_TEXT]


def _read_head(paths: Paths, key: bytes) -> tuple[int, str] | None:
    path = _head_path(paths)
    if not path.exists():
        return None
    head = json.loads(path.read_text(encoding="utf-8"))
    body = {"seq": head["seq"], "hash": head["hash"]}
    if not hmac.compare_digest(_mac(key, body), head.get("mac", "")):
        msg = "the sealed audit head failed its MAC check (tampered)"
        raise AuditError(msg)
    return int(head["seq"]), str(head["hash"])


def _write_head(paths: Paths, key: bytes, seq: int, line_hash: str) -> None:
    body = {"seq": seq, "hash": line_hash}
    atomic_write_bytes(_head_path(paths), _canonical({**body, "mac": _mac(key, body)}))


@contextlib.contextmanager
def _locked_log(paths: Paths) -> Iterator[io.BufferedRandom]:
    paths.audit.mkdir(parents=True, exist_ok=True)
    with _lock, open(_log_path(paths), "ab+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield handle
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def record(
    action: str,
    case: str | None = None,
    *,
    user: str | None = None,
    paths: Paths | None = None,
    **facts: object,
) -> None:
    """Append one record for ``action`` (and the case pseudonym), fsynced before returning.

    Only :mod:`app.workflow` calls this (with the acting user and the data folder).
    """
    paths = paths or resolve_paths()
    paths.config.mkdir(parents=True, exist_ok=True)
    key = _mac_key(paths, create=True)
    with _locked_log(paths) as handle:
        head = _read_head(paths, key) or (0, _GENESIS)
        payload = {
            "seq": head[0] + 1,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "user": user or os_user(),
            "action": action,
            "case": case,
            "facts": _clean_facts(facts),
            "prev": head[1],
        }
        line = _canonical({**payload, "mac": _mac(key, payload)}) + b"\n"
        handle.seek(0, os.SEEK_END)
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
        _write_head(paths, key, payload["seq"], hashlib.sha256(line.rstrip(b"\n")).hexdigest())


def read_records(paths: Paths | None = None) -> list[dict]:
    """Every parseable record, in file order (for show/export; use :func:`verify` to trust them)."""
    path = _log_path(paths or resolve_paths())
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def _check_line(key: bytes, number: int, raw: bytes, prev_hash: str) -> str | None:
    """Why line ``number`` (1-based) is bad, or None."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return f"record {number} is not valid JSON (edited or corrupted)"
    if not isinstance(rec, dict) or set(rec) != {*_FIELDS, "mac"}:
        return f"record {number} has missing or extra fields (edited)"
    payload = {k: rec[k] for k in _FIELDS}
    if not hmac.compare_digest(_mac(key, payload), str(rec["mac"])):
        return f"record {number} fails its MAC (edited)"
    if rec["seq"] != number:
        return f"record {number} carries sequence {rec['seq']} (records deleted, inserted or reordered)"
    if rec["prev"] != prev_hash:
        return f"record {number} does not chain to the record before it (deleted, inserted or reordered)"
    return None


def verify(paths: Paths | None = None) -> VerifyResult:
    """Check every record and the sealed head; the message names the first bad record."""
    paths = paths or resolve_paths()
    log = _log_path(paths)
    if not log.exists() and not _head_path(paths).exists():
        return VerifyResult(True, 0, "audit log is empty")
    key = _mac_key(paths, create=False)
    head = _read_head(paths, key)
    raw = log.read_bytes() if log.exists() else b""
    if raw and not raw.endswith(b"\n"):
        lines = raw.split(b"\n")
        return VerifyResult(
            False, len(lines) - 1, f"record {len(lines)} is cut off (truncated)", len(lines)
        )
    prev = _GENESIS
    lines = raw.splitlines()
    for number, line in enumerate(lines, start=1):
        problem = _check_line(key, number, line, prev)
        if problem:
            return VerifyResult(False, number - 1, problem, number)
        prev = hashlib.sha256(line).hexdigest()
    if head is None:
        return VerifyResult(False, len(lines), "the sealed audit head is missing (deleted)", None)
    if head != (len(lines), prev):
        msg = f"the log ends at record {len(lines)} but the sealed head says {head[0]} (truncated or replaced)"
        return VerifyResult(False, len(lines), msg, len(lines) + 1)
    return VerifyResult(True, len(lines), f"audit log intact: {len(lines)} records")


def export(records: list[dict], fmt: str) -> str:
    """Records as JSON (a list) or CSV (facts as a JSON column)."""
    if fmt == "json":
        return json.dumps(records, indent=1, sort_keys=True)
    if fmt != "csv":
        msg = f"unknown export format {fmt!r}; use csv or json"
        raise AuditError(msg)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*_FIELDS, "mac"])
    for rec in records:
        writer.writerow(
            [json.dumps(rec.get(f)) if f == "facts" else rec.get(f) for f in (*_FIELDS, "mac")]
        )
    return buffer.getvalue()

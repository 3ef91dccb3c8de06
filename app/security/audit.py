"""The audit log: append-only, hash-chained JSON lines, each signed by the person who acted.

One call records an action::

    audit.record("mesh.export", "C-7K3M-Q9", user=user, paths=paths, keys=keys, sha256=digest)

Each line holds ``seq``, ``time`` (UTC), ``user`` (OS account), ``action``, ``case`` (pseudonym
or null), ``facts`` (no PHI), ``prev`` (SHA-256 of the previous line), ``signer`` (the
fingerprint of the acting person's signing key) and ``signature`` (Ed25519 over the rest). There
is no shared key: an enrolled user can sign only as themselves, so rewriting another person's
record fails its signature. A signed head (last ``seq`` and line hash) kept in the config folder
catches records cut off the end; anchors in each person's keystore (:mod:`app.security.anchors`)
catch a log rolled back or deleted together with its head.

A crash between the append and the head write is repaired on the next append (or
:func:`repair`): a partial last line is cut off, the head is moved to the last record that
chains, and the repair is recorded once as ``audit.repaired``. Anything else that does not match
the head is tampering: appending is refused and :func:`verify` names the first bad record.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from app.atomic import atomic_write_bytes
from app.errors import AuditError
from app.security.identity import PersonalKeys, PublicIdentity
from app.settings import Paths, resolve_paths

FIELDS = ("seq", "time", "user", "action", "case", "facts", "prev", "signer", "signature")
GENESIS = "0" * 64
REPAIRED = "audit.repaired"
MIGRATED = "audit.migrated"
_SIGNED = FIELDS[:-1]
_RECORD_CONTEXT = b"medprint-audit-record-1\n"
_HEAD_CONTEXT = b"medprint-audit-head-1\n"
_MAX_TEXT = 256
_TAIL = 256 * 1024
_TAMPERED = "; run 'medprint audit verify' and restore the audit folder from a backup"
_lock = threading.Lock()


@dataclass(frozen=True)
class Head:
    """The last record of the log: its sequence number and the SHA-256 of its line."""

    seq: int = 0
    hash: str = GENESIS


@dataclass
class VerifyResult:
    ok: bool
    records: int
    message: str
    first_bad: int | None = None
    notes: list[str] = field(default_factory=list)


Identities = Mapping[str, PublicIdentity]  # signing-key fingerprint -> the person


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def log_path(paths: Paths) -> Path:
    return paths.audit / "audit.jsonl"


def head_path(paths: Paths) -> Path:
    return paths.config / "audit-head.json"


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


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signature_ok(identity: PublicIdentity, signature: object, data: bytes) -> bool:
    try:
        raw = base64.b64decode(str(signature), validate=True)
    except ValueError:
        return False
    return identity.signing_key.verify(raw, data)


# ----- the head ---------------------------------------------------------------------------------


def _head_body(seq: int, digest: str, signer: str) -> dict:
    return {"seq": seq, "hash": digest, "signer": signer}


def read_head(paths: Paths) -> dict | None:
    """The stored head as written (``seq``, ``hash``, ``signer``, ``signature``), or None."""
    path = head_path(paths)
    if not path.exists():
        return None
    try:
        head = json.loads(path.read_text(encoding="utf-8"))
        int(head["seq"]), str(head["hash"]), str(head["signer"]), str(head["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        msg = "the audit head is unreadable (edited)" + _TAMPERED
        raise AuditError(msg) from None
    return head


def _write_head(paths: Paths, keys: PersonalKeys, head: Head) -> None:
    body = _head_body(head.seq, head.hash, keys.public.fingerprint)
    signature = _b64(keys.sign(_HEAD_CONTEXT + canonical(body)))
    atomic_write_bytes(head_path(paths), canonical(body | {"signature": signature}))


# ----- appending --------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked_log(paths: Paths) -> Iterator[BinaryIO]:
    """The log opened for appending, under a lock shared with every other process."""
    paths.audit.mkdir(parents=True, exist_ok=True)
    paths.config.mkdir(parents=True, exist_ok=True)
    with _lock, open(paths.audit / "audit.lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            _archive_legacy(paths)
            with open(log_path(paths), "ab+") as handle:
                yield handle
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _archive_legacy(paths: Paths) -> None:
    """Set aside a log of the old format (records sealed with a shared MAC key, which any
    enrolled user could forge); the new log starts with a signed ``audit.migrated`` record
    naming the archived file and its SHA-256, so it cannot change unseen afterwards."""
    path = head_path(paths)
    if not path.exists() or b'"mac"' not in path.read_bytes():
        return
    log = log_path(paths)
    data = log.read_bytes() if log.exists() else b""
    digest = hashlib.sha256(data).hexdigest()
    archived = paths.audit / f"audit-legacy-{digest[:16]}.jsonl"
    atomic_write_bytes(archived, data)
    atomic_write_bytes(
        paths.audit / "legacy.json",
        canonical({"file": archived.name, "sha256": digest, "records": data.count(b"\n")}),
    )
    log.unlink(missing_ok=True)
    path.unlink()


@dataclass
class _Tail:
    """The end of the log: complete lines after the head's line, and a partial last line."""

    head: Head
    after: list[bytes]
    partial_at: int | None  # offset of a cut-off last line


def _read_tail(handle: BinaryIO) -> tuple[int, bytes]:
    """The offset and bytes of the last ``_TAIL`` bytes of the log (whole lines only at the
    start unless the log is shorter)."""
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - _TAIL)
    handle.seek(start)
    data = handle.read()
    if start:
        cut = data.find(b"\n") + 1
        start, data = start + cut, data[cut:]
    return start, data


def _locate(paths: Paths, handle: BinaryIO) -> _Tail:
    """Find the stored head in the log's tail; raise :class:`AuditError` when they disagree."""
    stored = read_head(paths)
    offset, data = _read_tail(handle)
    partial_at = None
    if data and not data.endswith(b"\n"):
        partial_at = offset + data.rfind(b"\n") + 1
        data = data[: data.rfind(b"\n") + 1]
    lines = data.splitlines()
    if stored is None:
        if offset or lines:
            msg = "the audit head is missing (deleted)" + _TAMPERED
            raise AuditError(msg)
        return _Tail(Head(), [], partial_at)
    head = Head(int(stored["seq"]), str(stored["hash"]))
    for index in range(len(lines) - 1, -1, -1):
        if line_hash(lines[index]) == head.hash:
            return _Tail(head, lines[index + 1 :], partial_at)
    msg = f"the audit log does not hold record {head.seq} named by its head (cut or replaced)"
    raise AuditError(msg + _TAMPERED)


def _settle(
    paths: Paths, handle: BinaryIO, people: Callable[[], Identities] | None = None
) -> tuple[Head, dict | None]:
    """The head after repairing an interrupted append, and the facts of the repair (or None).

    A record after the head is taken in only when it follows the head and, given ``people``
    (called only then), verifies: signed by the enrolled person it names."""
    tail = _locate(paths, handle)
    head = tail.head
    identities = people() if people is not None and tail.after else None
    for line in tail.after:
        rec = _parse(line)
        if rec is None or rec.get("seq") != head.seq + 1 or rec.get("prev") != head.hash:
            msg = f"the audit log has records after its head ({head.seq}) that do not follow it"
            raise AuditError(msg + _TAMPERED)
        number = head.seq + 1
        problem = None if identities is None else _check_line(identities, number, line, head.hash)
        if problem:
            msg = f"the audit log has a record after its head that does not verify: {problem}"
            raise AuditError(msg + _TAMPERED)
        head = Head(head.seq + 1, line_hash(line))
    cut = 0
    if tail.partial_at is not None:
        cut = handle.seek(0, os.SEEK_END) - tail.partial_at
        handle.truncate(tail.partial_at)
        handle.flush()
        os.fsync(handle.fileno())
    if head == tail.head and not cut:
        return head, None
    return head, {"head_was": tail.head.seq, "head_now": head.seq, "cut_bytes": cut}


def _parse(line: bytes) -> dict | None:
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _append(
    handle: BinaryIO,
    head: Head,
    keys: PersonalKeys,
    *,
    user: str,
    action: str,
    case: str | None = None,
    facts: dict,
) -> Head:
    payload = {
        "seq": head.seq + 1,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "user": user,
        "action": action,
        "case": case,
        "facts": _clean_facts(facts),
        "prev": head.hash,
        "signer": keys.public.fingerprint,
    }
    signature = _b64(keys.sign(_RECORD_CONTEXT + canonical(payload)))
    line = canonical(payload | {"signature": signature})
    handle.seek(0, os.SEEK_END)
    handle.write(line + b"\n")
    handle.flush()
    os.fsync(handle.fileno())
    return Head(head.seq + 1, line_hash(line))


def record(
    action: str,
    case: str | None = None,
    *,
    user: str,
    paths: Paths,
    keys: PersonalKeys,
    **facts: object,
) -> Head:
    """Append one record of ``action`` by ``user``, signed with ``keys``; fsynced, then the head
    is moved to it. Returns the new head. Only :mod:`app.workflow` calls this.

    Raises :class:`AuditError` (and appends nothing) when the log does not match its head.
    """
    with _locked_log(paths) as handle:
        head, repaired = _settle(paths, handle)
        if repaired:
            head = _append(handle, head, keys, user=user, action=REPAIRED, facts=repaired)
        legacy = _legacy(paths)
        if head.seq == 0 and legacy:
            head = _append(handle, head, keys, user=user, action=MIGRATED, facts=legacy)
        head = _append(handle, head, keys, user=user, action=action, case=case, facts=facts)
        _write_head(paths, keys, head)
    return head


def _legacy(paths: Paths) -> dict | None:
    """What :func:`_archive_legacy` set aside (file, sha256, records), or None."""
    path = paths.audit / "legacy.json"
    return json.loads(path.read_bytes()) if path.exists() else None


def _legacy_problem(paths: Paths, first: dict) -> str | None:
    facts = first.get("facts", {})
    archived = paths.audit / str(facts.get("file", ""))
    if first.get("action") != MIGRATED:
        return None
    if not archived.is_file() or hashlib.sha256(archived.read_bytes()).hexdigest() != facts.get(
        "sha256"
    ):
        return f"the archived old-format log {archived.name} was changed or deleted"
    return None


def repair(
    paths: Paths, user: str, keys: PersonalKeys, people: Callable[[], Identities] | None = None
) -> Head:
    """Repair an interrupted append (recorded as ``audit.repaired``); the head of the log.
    A record after the head (the head write was interrupted) is taken in only when it verifies
    against the enrolled ``people()`` (when given); one that does not is tampering.

    Raises :class:`AuditError` when the log does not match its head (tampering).
    """
    if not log_path(paths).exists() and not head_path(paths).exists():
        return Head()
    with _locked_log(paths) as handle:
        head, repaired = _settle(paths, handle, people)
        if repaired:
            head = _append(handle, head, keys, user=user, action=REPAIRED, facts=repaired)
            _write_head(paths, keys, head)
    return head


def current_head(paths: Paths) -> Head:
    """The head as stored (no check against the log); the empty head when there is none."""
    stored = read_head(paths)
    return Head(int(stored["seq"]), str(stored["hash"])) if stored else Head()


def record_hash(paths: Paths, seq: int) -> str | None:
    """The line hash of record ``seq``, or None when the log has no such record."""
    path = log_path(paths)
    if seq < 1 or not path.exists():
        return None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number == seq:
                return line_hash(line) if line.endswith(b"\n") else None
    return None


# ----- reading and verifying --------------------------------------------------------------------


def read_records(paths: Paths | None = None) -> list[dict]:
    """Every parseable record, in file order (for show/export; use :func:`verify` to trust them)."""
    path = log_path(paths or resolve_paths())
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        rec = _parse(line)
        if rec is not None:
            out.append(rec)
    return out


def read_case_records(paths: Paths, case: str) -> list[dict]:
    """The parseable records of ``case``, in file order (lines not naming it are not parsed)."""
    path, needle = log_path(paths), json.dumps(case).encode()
    if not path.exists():
        return []
    lines = (line for line in path.read_bytes().splitlines() if needle in line)
    return [rec for rec in map(_parse, lines) if rec is not None and rec.get("case") == case]


def _check_line(identities: Identities, number: int, raw: bytes, prev_hash: str) -> str | None:
    """Why line ``number`` (1-based) is bad, or None."""
    rec = _parse(raw)
    if rec is None:
        return f"record {number} is not valid JSON (edited or corrupted)"
    if set(rec) != set(FIELDS):
        return f"record {number} has missing or extra fields (edited, or an old unsigned record)"
    if rec["seq"] != number:
        return f"record {number} carries sequence {rec['seq']} (records deleted, inserted or reordered)"
    if rec["prev"] != prev_hash:
        return f"record {number} does not chain to the record before it (deleted, inserted or reordered)"
    signer = identities.get(str(rec["signer"]))
    if signer is None:
        return f"record {number} is signed by an unknown key (not an enrolled person's)"
    if signer.user != rec["user"]:
        return (
            f"record {number} names user '{rec['user']}' but is signed by '{signer.user}' (forged)"
        )
    payload = {k: rec[k] for k in _SIGNED}
    if not _signature_ok(signer, rec["signature"], _RECORD_CONTEXT + canonical(payload)):
        return f"record {number} fails its signature (edited)"
    return None


def _head_problem(identities: Identities, records: int, last: str, paths: Paths) -> str | None:
    try:
        stored = read_head(paths)
    except AuditError as exc:
        return str(exc)
    if stored is None:
        return "the audit head is missing (deleted)" if records else None
    signer = identities.get(stored["signer"])
    body = _head_body(int(stored["seq"]), str(stored["hash"]), str(stored["signer"]))
    if signer is None or not _signature_ok(
        signer, stored["signature"], _HEAD_CONTEXT + canonical(body)
    ):
        return "the audit head fails its signature (edited, or signed by an unknown key)"
    if (body["seq"], body["hash"]) != (records, last):
        return f"the log ends at record {records} but its head says {body['seq']} (cut or replaced)"
    return None


def verify(paths: Paths, identities: Identities) -> VerifyResult:
    """Check every record's chain and signature (against ``identities``: fingerprint -> the
    enrolled person) and the signed head; the message names the first bad record."""
    log = log_path(paths)
    if not log.exists():
        if head_path(paths).exists():
            return VerifyResult(False, 0, "the audit log is missing (deleted)", 1)
        return VerifyResult(True, 0, "audit log is empty")
    raw = log.read_bytes()
    lines = raw.splitlines()
    if raw and not raw.endswith(b"\n"):
        msg = f"record {len(lines)} is cut off (an interrupted write; the next action repairs it)"
        return VerifyResult(False, len(lines) - 1, msg, len(lines))
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        problem = _check_line(identities, number, line, prev)
        if problem:
            return VerifyResult(False, number - 1, problem, number)
        prev = line_hash(line)
    problem = _head_problem(identities, len(lines), prev, paths)
    if problem is None and lines:
        problem = _legacy_problem(paths, json.loads(lines[0]))
    if problem:
        return VerifyResult(False, len(lines), problem, len(lines) + 1)
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
    writer.writerow(FIELDS)
    for rec in records:
        writer.writerow([json.dumps(rec.get(f)) if f == "facts" else rec.get(f) for f in FIELDS])
    return buffer.getvalue()

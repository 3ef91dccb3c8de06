"""The vault's records of who holds which role and what was decided about each mesh version.

This module only stores and reads; it decides nothing. Who may do what, the approval gate and
the audit records of every act live in :mod:`app.workflow.policy` and :mod:`app.workflow.review`.

**Roles** (technician, reviewer, administrator) are kept in the vault as the encrypted record
``roles``; a user may hold several. **Decisions** (approvals, rejections) and **overrides** are
an append-only history per case (``approvals.json``), each signed by the person who made it
(:mod:`app.security.esign`). A decision binds the SHA-256 of one mesh version (the manifest hash
over its parts) and of its QA report (canonical JSON), so any later edit makes
:func:`approval_status` answer ``void``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.errors import MedPrintError, VaultError
from app.security.signing import utc_now

TECHNICIAN = "technician"
REVIEWER = "reviewer"
ADMINISTRATOR = "administrator"
ROLES = (TECHNICIAN, REVIEWER, ADMINISTRATOR)

ROLES_RECORD = "roles"

# Override kinds: the only ways around a rule, each recorded with its reason by an administrator.
QA_FAILURE = "qa-failure"  # approve a mesh version whose QA failed
SELF_APPROVAL = "self-approval"  # approve one's own mesh in a vault with one enrolled person
FOREIGN_GCODE = "foreign-gcode"  # print or package a G-code that was not sliced here
OVERRIDE_KINDS = (QA_FAILURE, SELF_APPROVAL, FOREIGN_GCODE)

APPROVED = "approved"
REJECTED = "rejected"
VOID = "void"
NONE = "none"
INVALID = "invalid"  # the latest decision on the mesh does not verify (forged or changed)

# What a decision means (its ``meaning``); the last two of the approvals rest on an override.
APPROVED_FOR_PRINTING = "approved for printing"
APPROVED_WITH_QA_OVERRIDE = "approved with QA override"
SELF_APPROVED = "self-approved"
CHANGES_REQUESTED = "changes requested"
REJECTED_FOR_PRINTING = "rejected"
APPROVAL_MEANINGS = (APPROVED_FOR_PRINTING, APPROVED_WITH_QA_OVERRIDE, SELF_APPROVED)
REJECTION_MEANINGS = (CHANGES_REQUESTED, REJECTED_FOR_PRINTING)
MEANINGS = APPROVAL_MEANINGS + REJECTION_MEANINGS
# What an override means, signed with it (its kind says what it allows).
OVERRIDE_MEANINGS = {
    QA_FAILURE: APPROVED_WITH_QA_OVERRIDE,
    SELF_APPROVAL: SELF_APPROVED,
    FOREIGN_GCODE: APPROVED_FOR_PRINTING,
}
FREE_TEXT_FIELDS = frozenset({"comment", "reason"})  # stays in the vault, never signed or sent

USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_COMMENT = 2000


class RecordStore(Protocol):
    """Where the roles record lives: the vault (``put_record``/``get_record``)."""

    def put_record(self, name: str, data: bytes) -> None: ...

    def get_record(self, name: str) -> bytes | None: ...


class DecisionStore(Protocol):
    """What decisions need of a case: :class:`app.case.Case` provides it."""

    pseudonym: str

    def load_decisions(self) -> list[dict]: ...

    def save_decisions(self, records: list[dict]) -> None: ...


# --- roles --------------------------------------------------------------------------------------


def check_user(user: str) -> str:
    if not isinstance(user, str) or not USER_RE.match(user):
        msg = f"'{user}' is not a valid account name; use the OS login name"
        raise MedPrintError(msg)
    return user


def check_role(role: str) -> str:
    if role not in ROLES:
        msg = f"unknown role '{role}'; choose one of {', '.join(ROLES)}"
        raise MedPrintError(msg)
    return role


def load_roles(store: RecordStore) -> dict[str, set[str]]:
    """User -> roles; empty before any role was stored."""
    raw = store.get_record(ROLES_RECORD)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
        return {user: set(roles) for user, roles in data["users"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = "the roles record in the vault is unreadable; restore the vault from a backup"
        raise VaultError(msg) from None


def save_roles(store: RecordStore, roles: Mapping[str, set[str]]) -> None:
    data = {"version": 1, "users": {u: sorted(r) for u, r in sorted(roles.items()) if r}}
    store.put_record(ROLES_RECORD, json.dumps(data, sort_keys=True).encode("utf-8"))


def roles_exist(store: RecordStore) -> bool:
    return store.get_record(ROLES_RECORD) is not None


# --- hashes ------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mesh_manifest_sha256(parts: list[Mapping[str, Any]]) -> str:
    """The hash of a mesh version (what a decision binds): its parts' names, hashes, colours and
    materials, in name order. The case and the package verifier both use this one definition."""
    body = [
        {k: p.get(k) for k in ("name", "sha256", "colour", "material")}
        for p in sorted(parts, key=lambda p: str(p["name"]))
    ]
    return sha256_hex(json.dumps(body, sort_keys=True).encode("utf-8"))


def qa_report_bytes(report: Mapping[str, Any]) -> bytes:
    """The QA report as canonical JSON (what is hashed, and what a package carries)."""
    return json.dumps(_plain(report), sort_keys=True, separators=(",", ":")).encode("utf-8")


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def qa_report_sha256(report: Mapping[str, Any]) -> str:
    return sha256_hex(qa_report_bytes(report))


def qa_passed(report: Mapping[str, Any]) -> bool:
    """Whether a QA report (as stored) passed: ``passed`` true and no failed check."""
    if not isinstance(report, Mapping):
        return False
    if "passed" in report:
        return bool(report["passed"])
    checks = report.get("checks")
    if isinstance(checks, list):
        return all(c.get("status") != "fail" for c in checks if isinstance(c, Mapping))
    return False


def check_sha(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        msg = f"{what} must be a SHA-256 in hex (64 characters)"
        raise MedPrintError(msg)
    return value


def check_text(text: str, what: str, *, required: bool) -> str:
    if required and not text.strip():
        msg = f"{what} is required; say why"
        raise MedPrintError(msg)
    if len(text) > MAX_COMMENT:
        msg = f"{what} is longer than {MAX_COMMENT} characters; shorten it"
        raise MedPrintError(msg)
    return text


# --- decisions and overrides -------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalStatus:
    """The review state of one mesh version: approved, void (mesh changed), rejected or none."""

    state: str
    record: dict | None
    message: str

    @property
    def approved(self) -> bool:
        return self.state == APPROVED


def new_decision(
    case: str, decision: str, mesh_sha256: str, qa_report: Mapping[str, Any], **fields: object
) -> dict:
    return {
        "type": "decision",
        "id": str(uuid.uuid4()),
        "decision": decision,
        "case": case,
        "mesh_sha256": check_sha(mesh_sha256, "the mesh hash"),
        "qa_sha256": qa_report_sha256(qa_report),
        "qa_passed": qa_passed(qa_report),
        "time_utc": utc_now(),
        **fields,
    }


def new_override(case: str, kind: str, subject_sha256: str, **fields: object) -> dict:
    if kind not in OVERRIDE_KINDS:
        msg = f"unknown override '{kind}'; choose one of {', '.join(OVERRIDE_KINDS)}"
        raise MedPrintError(msg)
    return {
        "type": "override",
        "id": str(uuid.uuid4()),
        "kind": kind,
        "case": case,
        "subject_sha256": check_sha(subject_sha256, "the hash the override is for"),
        "time_utc": utc_now(),
        **fields,
    }


def history(case: DecisionStore) -> list[dict]:
    """Every decision and override recorded for ``case``, oldest first."""
    return list(case.load_decisions())


def append(case: DecisionStore, record: dict) -> dict:
    records = history(case)
    records.append(record)
    case.save_decisions(records)
    return record


def find_override(
    case: DecisionStore, kind: str, subject_sha256: str, accept: Callable[[dict], bool]
) -> dict | None:
    """The latest override of ``kind`` for that mesh (or G-code) hash that ``accept`` accepts
    (its signature verifies)."""
    for rec in reversed(history(case)):
        same = rec.get("kind") == kind and rec.get("subject_sha256") == subject_sha256
        if rec.get("type") == "override" and same and accept(rec):
            return rec
    return None


def find_record(case: DecisionStore, record_id: str | None) -> dict | None:
    return next((r for r in history(case) if record_id and r.get("id") == record_id), None)


def approval_status(
    case: DecisionStore,
    mesh_sha256: str,
    qa_sha256: str | None = None,
    *,
    problem: Callable[[dict], str | None],
) -> ApprovalStatus:
    """The review state of one mesh version (and its QA report, when given).

    ``approved``: the latest decision on this exact mesh approves it. ``rejected``: the latest
    decision on it rejects it. ``invalid``: that decision does not count (``problem(record)``
    says why: forged, changed, signer without the role); an unsigned one from an older version
    counts as ``none``. ``void``: an approval exists, but for another mesh version or QA report
    (the mesh was edited after review). ``none``: never reviewed.
    """
    decisions = [r for r in history(case) if r.get("type") == "decision"]
    for rec in reversed(decisions):
        same = rec.get("mesh_sha256") == mesh_sha256 and qa_sha256 in (None, rec.get("qa_sha256"))
        if not same:
            continue
        trouble = problem(rec)
        if trouble is not None:
            return ApprovalStatus(NONE if "signature" not in rec else INVALID, rec, trouble)
        who = f"{rec.get('printed_name')} ({rec.get('signer')})"
        if rec["decision"] == APPROVED:
            return ApprovalStatus(APPROVED, rec, f"approved by {who} at {rec['time_utc']}")
        return ApprovalStatus(REJECTED, rec, f"rejected by {who} at {rec['time_utc']}")
    approvals = [r for r in decisions if r.get("decision") == APPROVED and problem(r) is None]
    if approvals:
        msg = "the approval is void: the mesh or its QA report changed after review; "
        msg += "ask a reviewer to approve the current version"
        return ApprovalStatus(VOID, approvals[-1], msg)
    return ApprovalStatus(NONE, None, "not reviewed yet; ask a reviewer to approve this version")

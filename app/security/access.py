"""Roles and review: who may do what, and approvals bound to one exact mesh version.

**Users** are the OS accounts. Callers pass the user explicitly (the CLI and the GUI pass
:func:`current_user`, i.e. ``getpass.getuser()``); nothing here reads an environment variable to
decide who someone is.

**Roles** (technician, reviewer, administrator) are assigned locally by an administrator and kept
in the vault as the encrypted record ``roles``. A user may hold several roles. The first
administrator is the OS user who ran ``vault init``: :func:`bootstrap` makes that explicit, and
when no roles record exists yet the ``vault.init`` entry of the (verified) audit log names that
user. :func:`require` checks an action against :data:`ACTIONS`; a refusal raises
:class:`AccessDenied` with a clear message and is audited.

**Approvals** are stored per case (``approvals.json`` in the case, append-only history). An
approval binds the SHA-256 of the mesh version and of the QA report (canonical JSON), so any later
edit of the mesh makes :func:`approval_status` answer ``void``. A mesh whose QA failed can be
approved only after an administrator's ``qa-failure`` override; packaging or printing without an
approval needs a ``release-without-approval`` override. Overrides are audited and travel in the
package (see :func:`release`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from app.errors import AccessDenied, AuditError, MedPrintError, VaultError
from app.security import audit
from app.security.signing import utc_now

TECHNICIAN = "technician"
REVIEWER = "reviewer"
ADMINISTRATOR = "administrator"
ROLES = (TECHNICIAN, REVIEWER, ADMINISTRATOR)

# Action -> roles allowed to do it. Technicians design and prepare, reviewers approve or
# reject, administrators manage users, keys and overrides.
ACTIONS: dict[str, frozenset[str]] = {
    "case.import": frozenset({TECHNICIAN}),
    "case.delete": frozenset({ADMINISTRATOR}),
    "segment": frozenset({TECHNICIAN}),
    "mesh.edit": frozenset({TECHNICIAN}),
    "slice": frozenset({TECHNICIAN}),
    "print": frozenset({TECHNICIAN}),
    "package": frozenset({TECHNICIAN}),
    "review.approve": frozenset({REVIEWER}),
    "review.reject": frozenset({REVIEWER}),
    "users.manage": frozenset({ADMINISTRATOR}),
    "keys.manage": frozenset({ADMINISTRATOR}),
    "override": frozenset({ADMINISTRATOR}),
}

ROLES_RECORD = "roles"
APPROVALS_FILE = "approvals.json"
QA_FAILURE = "qa-failure"
RELEASE_WITHOUT_APPROVAL = "release-without-approval"
OVERRIDE_KINDS = (QA_FAILURE, RELEASE_WITHOUT_APPROVAL)

APPROVED = "approved"
REJECTED = "rejected"
VOID = "void"
NONE = "none"

_USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@$-]{0,63}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_MAX_COMMENT = 2000


class RecordStore(Protocol):
    """Where the roles record lives: the vault (``put_record``/``get_record``)."""

    def put_record(self, name: str, data: bytes) -> None: ...

    def get_record(self, name: str) -> bytes | None: ...


class CaseStore(Protocol):
    """What approvals need of a case: :class:`app.case.Case` provides it."""

    pseudonym: str
    vault: RecordStore

    def has(self, name: str) -> bool: ...

    def load_bytes(self, name: str) -> bytes: ...

    def save_json(self, name: str, obj: Any) -> None: ...

    def load_json(self, name: str) -> Any: ...


def current_user() -> str:
    """The OS account running MedPrint."""
    return getpass.getuser()


# --- roles --------------------------------------------------------------------------------------


def _check_user(user: str) -> str:
    if not isinstance(user, str) or not _USER_RE.match(user):
        msg = f"'{user}' is not a valid account name; use the OS login name"
        raise MedPrintError(msg)
    return user


def _check_role(role: str) -> str:
    if role not in ROLES:
        msg = f"unknown role '{role}'; choose one of {', '.join(ROLES)}"
        raise MedPrintError(msg)
    return role


def load_roles(store: RecordStore) -> dict[str, set[str]]:
    """User -> roles. Before any role is stored, the user who ran ``vault init`` is the
    administrator (read from the verified audit log), and that is stored at once."""
    raw = store.get_record(ROLES_RECORD)
    if raw is None:
        founder = _vault_init_user(store)
        if founder is None:
            return {}
        bootstrap(store, founder)
        raw = store.get_record(ROLES_RECORD)
    try:
        data = json.loads(raw or b"")
        return {user: set(roles) for user, roles in data["users"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        msg = "the roles record in the vault is unreadable; restore the vault from a backup"
        raise VaultError(msg) from None


def _save_roles(store: RecordStore, roles: dict[str, set[str]]) -> None:
    data = {"version": 1, "users": {u: sorted(r) for u, r in sorted(roles.items()) if r}}
    store.put_record(ROLES_RECORD, json.dumps(data, sort_keys=True).encode("utf-8"))


def _vault_init_user(store: RecordStore) -> str | None:
    """The OS user recorded by the audit log's ``vault.init`` of this vault, if trustworthy."""
    vault_id = getattr(store, "vault_id", None)
    if vault_id is None:
        return None
    try:
        if not audit.verify().ok:
            return None
    except AuditError:
        return None
    for rec in audit.read_records():
        if rec.get("action") == "vault.init" and rec.get("facts", {}).get("vault_id") == vault_id:
            user = rec.get("user")
            return user if isinstance(user, str) and _USER_RE.match(user) else None
    return None


def bootstrap(store: RecordStore, user: str) -> None:
    """Make ``user`` the first administrator; refused once any role has been stored."""
    _check_user(user)
    if store.get_record(ROLES_RECORD) is not None:
        msg = "roles are already set up; an administrator assigns roles with 'medprint users add'"
        raise AccessDenied(msg)
    _save_roles(store, {user: {ADMINISTRATOR}})
    audit.record("users.bootstrap", subject=user, role=ADMINISTRATOR)


def _store(vault: RecordStore | None) -> RecordStore:
    if vault is not None:
        return vault
    from app.security.vault import Vault  # noqa: PLC0415 (opening the vault is the caller's default)

    return Vault.open()


def roles_of(user: str, vault: RecordStore | None = None) -> set[str]:
    return set(load_roles(_store(vault)).get(user, set()))


def require(user: str, action: str, vault: RecordStore | None = None) -> None:
    """Allow ``user`` to do ``action`` or raise :class:`AccessDenied` (and audit the refusal).

    ``vault`` holds the roles record; by default the vault is opened.
    """
    store = _store(vault)
    if action not in ACTIONS:
        msg = f"unknown action '{action}' (a programming error); nothing was done"
        raise MedPrintError(msg)
    allowed = ACTIONS[action]
    held = roles_of(user, store)
    if held & allowed:
        return
    audit.record("access.denied", subject=user, attempted=action, roles=sorted(held))
    needed = " or ".join(sorted(allowed))
    have = ", ".join(sorted(held)) if held else "no role"
    msg = f"user '{user}' ({have}) may not {action.replace('.', ' ')}: it needs the {needed} "
    msg += "role; ask an administrator ('medprint users add USER ROLE')"
    if not load_roles(store):
        msg += (
            "; no roles exist yet: the user who created the vault runs 'medprint users bootstrap'"
        )
    raise AccessDenied(msg)


def assign_role(admin: str, user: str, role: str, vault: RecordStore | None = None) -> None:
    """Give ``user`` the ``role`` (administrators only)."""
    store = _store(vault)
    require(admin, "users.manage", store)
    _check_user(user)
    _check_role(role)
    roles = load_roles(store)
    roles.setdefault(user, set()).add(role)
    _save_roles(store, roles)
    audit.record("users.role_added", subject=user, role=role)


def remove_role(
    admin: str, user: str, role: str | None = None, vault: RecordStore | None = None
) -> None:
    """Take ``role`` (or every role) from ``user``; the last administrator cannot be removed."""
    store = _store(vault)
    require(admin, "users.manage", store)
    roles = load_roles(store)
    if user not in roles:
        msg = f"user '{user}' has no roles; nothing to remove"
        raise MedPrintError(msg)
    removed = set(roles[user]) if role is None else {_check_role(role)} & roles[user]
    if not removed:
        msg = f"user '{user}' does not have the {role} role; nothing to remove"
        raise MedPrintError(msg)
    roles[user] -= removed
    if not any(ADMINISTRATOR in r for r in roles.values()):
        msg = "this would remove the last administrator; add another administrator first"
        raise AccessDenied(msg)
    _save_roles(store, roles)
    audit.record("users.role_removed", subject=user, roles=sorted(removed))


# --- hashes ------------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def qa_report_bytes(report: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a QA report: what its hash (and the package copy) is made of."""
    text = json.dumps(report, indent=2, sort_keys=True, ensure_ascii=True, default=_plain)
    return (text + "\n").encode("ascii")


def _plain(value: object) -> object:
    """NumPy scalars and arrays as plain numbers and lists (the same bytes as after a JSON
    round trip, so a report hashes the same in memory and when loaded back from the case)."""
    if hasattr(value, "tolist"):
        return value.tolist()  # type: ignore[union-attr]
    msg = f"a QA report holds a {type(value).__name__}, which is not JSON; fix the QA step"
    raise MedPrintError(msg)


def qa_report_sha256(report: Mapping[str, Any]) -> str:
    return sha256_hex(qa_report_bytes(report))


def qa_passed(report: Mapping[str, Any]) -> bool:
    """Whether a QA report says the mesh passed. A report that does not say so has not passed.

    Accepts ``passed``/``ok`` booleans or a ``status``/``verdict``/``result`` of pass/ok.
    """
    for key in ("passed", "ok"):
        value = report.get(key)
        if isinstance(value, bool):
            return value
    for key in ("status", "verdict", "result"):
        value = report.get(key)
        if isinstance(value, str):
            return value.strip().lower() in ("pass", "passed", "ok")
    return False


def _check_sha(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SHA256_RE.match(value):
        msg = f"{what} must be a SHA-256 as 64 lowercase hex digits"
        raise MedPrintError(msg)
    return value


# --- approvals ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApprovalStatus:
    """The review state of one mesh version: approved, void (mesh changed), rejected or none."""

    state: str
    record: dict | None
    message: str

    @property
    def approved(self) -> bool:
        return self.state == APPROVED


@dataclass(frozen=True)
class Release:
    """What allows a mesh version to be packaged or printed: an approval and/or an override."""

    approval: dict | None
    override: dict | None

    @property
    def overridden(self) -> bool:
        return self.override is not None


def history(case: CaseStore) -> list[dict]:
    """Every decision and override recorded for ``case``, oldest first."""
    if not case.has(APPROVALS_FILE):
        return []
    data = case.load_json(APPROVALS_FILE)
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        msg = f"{APPROVALS_FILE} of case {case.pseudonym} is malformed; restore it from a backup"
        raise VaultError(msg)
    return list(data["records"])


def _append(case: CaseStore, record: dict) -> dict:
    records = history(case)
    records.append(record)
    case.save_json(APPROVALS_FILE, {"version": 1, "records": records})
    return record


def _decision(
    case: CaseStore,
    decision: str,
    mesh_sha256: str,
    qa_report: Mapping[str, Any],
    *,
    reviewer: str,
    comment: str,
) -> dict:
    action = "review.approve" if decision == APPROVED else "review.reject"
    require(reviewer, action, case.vault)
    _check_sha(mesh_sha256, "the mesh hash")
    if len(comment) > _MAX_COMMENT:
        msg = f"the comment is longer than {_MAX_COMMENT} characters; shorten it"
        raise MedPrintError(msg)
    qa_sha = qa_report_sha256(qa_report)
    passed = qa_passed(qa_report)
    qa_override = None
    if decision == APPROVED and not passed:
        qa_override = _find_override(case, QA_FAILURE, mesh_sha256, qa_sha)
        if qa_override is None:
            audit.record(
                "review.refused",
                case=case.pseudonym,
                mesh_sha256=mesh_sha256,
                qa_sha256=qa_sha,
                reason="qa-failed",
            )
            msg = "this mesh version failed QA and cannot be approved; fix the mesh, or an "
            msg += "administrator must record a QA override first ('qa-failure')"
            raise AccessDenied(msg)
    record = {
        "type": "decision",
        "id": str(uuid.uuid4()),
        "decision": decision,
        "case": case.pseudonym,
        "mesh_sha256": mesh_sha256,
        "qa_sha256": qa_sha,
        "qa_passed": passed,
        "reviewer": reviewer,
        "comment": comment,
        "time_utc": utc_now(),
        "qa_override_id": qa_override["id"] if qa_override else None,
    }
    _append(case, record)
    audit.record(
        f"review.{decision}",
        case=case.pseudonym,
        mesh_sha256=mesh_sha256,
        qa_sha256=qa_sha,
        qa_passed=passed,
        record_id=record["id"],
        qa_override_id=record["qa_override_id"],
    )
    return record


def approve(
    case: CaseStore,
    mesh_sha256: str,
    qa_report: Mapping[str, Any],
    reviewer: str,
    comment: str = "",
) -> dict:
    """Approve one mesh version (its SHA-256) with its QA report; returns the approval record.

    Raises :class:`AccessDenied` when ``reviewer`` lacks the reviewer role, or when the QA report
    did not pass and no administrator override covers this mesh and report.
    """
    return _decision(case, APPROVED, mesh_sha256, qa_report, reviewer=reviewer, comment=comment)


def reject(
    case: CaseStore,
    mesh_sha256: str,
    qa_report: Mapping[str, Any],
    reviewer: str,
    comment: str,
) -> dict:
    """Reject one mesh version; the comment says why (shown to the technician)."""
    if not comment.strip():
        msg = "a rejection needs a comment saying what to change"
        raise MedPrintError(msg)
    return _decision(case, REJECTED, mesh_sha256, qa_report, reviewer=reviewer, comment=comment)


def record_override(
    case: CaseStore,
    kind: str,
    mesh_sha256: str,
    qa_report: Mapping[str, Any],
    *,
    administrator: str,
    reason: str,
) -> dict:
    """An administrator's audited override for one mesh version and QA report.

    ``qa-failure`` lets a reviewer approve a mesh whose QA failed; ``release-without-approval``
    lets it be packaged or printed unapproved. Either is shown in the package.
    """
    require(administrator, "override", case.vault)
    if kind not in OVERRIDE_KINDS:
        msg = f"unknown override '{kind}'; choose {' or '.join(OVERRIDE_KINDS)}"
        raise MedPrintError(msg)
    _check_sha(mesh_sha256, "the mesh hash")
    if not reason.strip() or len(reason) > _MAX_COMMENT:
        msg = "an override needs a reason (at most 2000 characters)"
        raise MedPrintError(msg)
    record = {
        "type": "override",
        "id": str(uuid.uuid4()),
        "kind": kind,
        "case": case.pseudonym,
        "mesh_sha256": mesh_sha256,
        "qa_sha256": qa_report_sha256(qa_report),
        "qa_passed": qa_passed(qa_report),
        "administrator": administrator,
        "reason": reason,
        "time_utc": utc_now(),
    }
    _append(case, record)
    audit.record(
        "review.override",
        case=case.pseudonym,
        kind=kind,
        mesh_sha256=mesh_sha256,
        qa_sha256=record["qa_sha256"],
        record_id=record["id"],
    )
    return record


def _find_override(case: CaseStore, kind: str, mesh_sha256: str, qa_sha: str | None) -> dict | None:
    for rec in reversed(history(case)):
        if rec.get("type") != "override" or rec.get("kind") != kind:
            continue
        if rec.get("mesh_sha256") == mesh_sha256 and qa_sha in (None, rec.get("qa_sha256")):
            return rec
    return None


def approval_status(
    case: CaseStore, current_mesh_sha256: str, current_qa_sha256: str | None = None
) -> ApprovalStatus:
    """The review state of the current mesh version.

    ``approved``: the latest decision on this exact mesh (and QA report, when given) approves it.
    ``rejected``: the latest decision on it rejects it. ``void``: an approval exists, but for
    another mesh version or QA report (the mesh was edited after review). ``none``: never reviewed.
    """
    decisions = [r for r in history(case) if r.get("type") == "decision"]
    for rec in reversed(decisions):
        same_mesh = rec.get("mesh_sha256") == current_mesh_sha256
        same_qa = current_qa_sha256 in (None, rec.get("qa_sha256"))
        if same_mesh and same_qa:
            if rec["decision"] == APPROVED:
                msg = f"approved by {rec['reviewer']} at {rec['time_utc']}"
                return ApprovalStatus(APPROVED, rec, msg)
            msg = f"rejected by {rec['reviewer']} at {rec['time_utc']}: {rec.get('comment', '')}"
            return ApprovalStatus(REJECTED, rec, msg)
    approvals = [r for r in decisions if r["decision"] == APPROVED]
    if approvals:
        rec = approvals[-1]
        msg = "the approval is void: the mesh or its QA report changed after review; "
        msg += "ask a reviewer to approve the current version"
        return ApprovalStatus(VOID, rec, msg)
    return ApprovalStatus(NONE, None, "not reviewed yet; ask a reviewer to approve this version")


def release(
    case: CaseStore,
    mesh_sha256: str,
    user: str,
    action: str = "package",
    current_qa_sha256: str | None = None,
) -> Release:
    """Check that ``user`` may ``action`` (package or print) this mesh version, and why.

    Returns the approval (with the QA override it relied on, if any) or the administrator's
    ``release-without-approval`` override. Raises :class:`AccessDenied` otherwise (audited).
    """
    require(user, action, case.vault)
    status = approval_status(case, mesh_sha256, current_qa_sha256)
    if status.approved:
        assert status.record is not None
        qa_id = status.record.get("qa_override_id")
        qa_override = next((r for r in history(case) if r.get("id") == qa_id), None)
        return Release(status.record, qa_override)
    override = _find_override(case, RELEASE_WITHOUT_APPROVAL, mesh_sha256, current_qa_sha256)
    if override is not None:
        audit.record(
            f"{action}.override_used",
            case=case.pseudonym,
            mesh_sha256=mesh_sha256,
            record_id=override["id"],
        )
        return Release(None, override)
    audit.record(
        f"{action}.refused", case=case.pseudonym, mesh_sha256=mesh_sha256, state=status.state
    )
    msg = f"this mesh version cannot be {'printed' if action == 'print' else 'packaged'}: "
    msg += f"{status.message}, or an administrator must record an override"
    raise AccessDenied(msg)

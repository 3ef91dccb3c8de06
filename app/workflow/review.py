"""Review: approve, reject, override, and the release gate that printing and packaging pass.

A decision binds one mesh version (the manifest hash over its parts) and its QA report. Four
eyes: an author of a version (who built or edited it, or any version it derives from) cannot
approve it. Overrides are of three fixed kinds, each an administrator's act with a reason:

``qa-failure``
    lets a reviewer approve a version whose QA failed;
``self-approval``
    in a vault with a single enrolled person, lets that administrator approve their own mesh
    (the decision is marked self-approved, and the package says so);
``foreign-gcode``
    lets a G-code that was not sliced here from an approved version be printed or packaged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.case import Case, StoredGcode
from app.errors import MedPrintError
from app.security import access
from app.workflow import policy
from app.workflow.actor import Actor

APPROVED_FOR_PRINTING = access.APPROVED_FOR_PRINTING
APPROVED_WITH_QA_OVERRIDE = access.APPROVED_WITH_QA_OVERRIDE
SELF_APPROVED = access.SELF_APPROVED
CHANGES_REQUESTED = access.CHANGES_REQUESTED
REJECTED = access.REJECTED_FOR_PRINTING
APPROVAL_MEANINGS = access.APPROVAL_MEANINGS
REJECTION_MEANINGS = access.REJECTION_MEANINGS
MEANINGS = APPROVAL_MEANINGS + REJECTION_MEANINGS


@dataclass(frozen=True)
class Release:
    """What allows a mesh version or G-code to leave: the approval and the overrides used."""

    approval: dict | None
    overrides: list[dict] = field(default_factory=list)
    mesh_version: int | None = None
    mesh_sha256: str | None = None

    @property
    def self_approved(self) -> bool:
        return bool(self.approval and self.approval.get("meaning") == SELF_APPROVED)


def status(actor: Actor, case: Case, version: int) -> access.ApprovalStatus:
    """The review state of mesh ``version``: approved, rejected, void or none."""
    policy.allow(actor, "review.view", case.pseudonym)
    return _status(case, version)


def _status(case: Case, version: int) -> access.ApprovalStatus:
    qa_sha = access.qa_report_sha256(case.mesh_qa(version))
    return access.approval_status(case, case.mesh_sha256(version), qa_sha)


def latest_approved(case: Case) -> int | None:
    """The newest mesh version whose approval stands (not void, not rejected), if any."""
    return next((n for n in reversed(case.mesh_versions()) if _status(case, n).approved), None)


def authors(case: Case, version: int) -> set[str]:
    """Every account that built or edited ``version`` or a version it derives from."""
    found: set[str] = set()
    seen: set[int] = set()
    number: int | None = version
    while number is not None and number not in seen and number in case.mesh_versions():
        seen.add(number)
        info = case.mesh_info(number)
        found.update(u for u in [info.get("author"), *info.get("authors", [])] if u)
        parent = info.get("parent_version")
        number = int(parent) if parent is not None else None
    return found


def enrolled(actor: Actor) -> set[str]:
    """The people holding any role in the actor's vault."""
    return {u for u, roles in access.load_roles(actor.vault).items() if roles}


def approve(actor: Actor, case: Case, version: int, *, comment: str = "") -> dict:
    """Approve mesh ``version`` for printing; returns the signed-off decision record."""
    policy.allow(actor, "review.approve", case.pseudonym)
    access.check_text(comment, "the comment", required=False)
    mesh_sha, qa = case.mesh_sha256(version), case.mesh_qa(version)
    if actor.user in authors(case, version):
        msg = f"you made mesh v{version} and cannot approve it yourself (four eyes): ask "
        msg += "another reviewer"
        if enrolled(actor) == {actor.user}:
            msg += "; alone in this vault, an administrator records a self-approval override "
            msg += f"('medprint review override {case.pseudonym} --version {version} "
            msg += "--kind self-approval --reason TEXT')"
        policy.refuse(actor, "review.approve", case.pseudonym, reason="author", message=msg)
    qa_override = _qa_override(actor, case, mesh_sha, qa, "review.approve")
    meaning = APPROVED_WITH_QA_OVERRIDE if qa_override else APPROVED_FOR_PRINTING
    used = [qa_override] if qa_override else []
    return _decide(
        actor, case, version, access.APPROVED, meaning=meaning, comment=comment, overrides=used
    )


def _qa_override(actor: Actor, case: Case, mesh_sha: str, qa: dict, action: str) -> dict | None:
    """None when QA passed; the administrator's QA override when it failed; else ``action``
    is refused."""
    if access.qa_passed(qa):
        return None
    found = access.find_override(case, access.QA_FAILURE, mesh_sha)
    if found is None:
        msg = "this mesh version failed QA and cannot be approved; fix the mesh, or an "
        msg += "administrator records a QA override first (kind qa-failure)"
        policy.refuse(actor, action, case.pseudonym, reason="qa-failed", message=msg)
    return found


def reject(
    actor: Actor, case: Case, version: int, *, comment: str, meaning: str = CHANGES_REQUESTED
) -> dict:
    """Reject mesh ``version``; the comment says what to change (it stays in the vault)."""
    policy.allow(actor, "review.reject", case.pseudonym)
    access.check_text(comment, "a comment saying what to change", required=True)
    if meaning not in REJECTION_MEANINGS:
        msg = f"a rejection means one of: {', '.join(REJECTION_MEANINGS)}"
        raise MedPrintError(msg)
    return _decide(
        actor, case, version, access.REJECTED, meaning=meaning, comment=comment, overrides=[]
    )


def _decide(
    actor: Actor,
    case: Case,
    version: int,
    decision: str,
    *,
    meaning: str,
    comment: str,
    overrides: list[dict],
) -> dict:
    roles = sorted(policy.roles_of(actor))
    rec = access.new_decision(
        case.pseudonym,
        decision,
        case.mesh_sha256(version),
        case.mesh_qa(version),
        mesh_version=version,
        meaning=meaning,
        reviewer=actor.user,
        reviewer_roles=roles,
        comment=comment,
        override_ids=[o["id"] for o in overrides],
    )
    access.append(case, rec)
    policy.record(
        actor,
        f"review.{decision}",
        case.pseudonym,
        version=version,
        meaning=meaning,
        mesh_sha256=rec["mesh_sha256"],
        qa_sha256=rec["qa_sha256"],
        record_id=rec["id"],
        override_ids=rec["override_ids"],
    )
    return rec


def override(
    actor: Actor,
    case: Case,
    kind: str,
    *,
    reason: str,
    version: int | None = None,
    gcode_sha256: str | None = None,
) -> dict:
    """Record an administrator's override of ``kind`` (see the module doc) with its reason.

    ``self-approval`` also records the approval itself; returns the override record.
    """
    policy.allow(actor, "review.override", case.pseudonym)
    access.check_text(reason, "the reason", required=True)
    if kind == access.FOREIGN_GCODE:
        subject = access.check_sha(gcode_sha256 or "", "the G-code hash")
    elif version is None:
        msg = f"a {kind} override is for one mesh version; give --version N"
        raise MedPrintError(msg)
    else:
        subject = case.mesh_sha256(version)
    qa_override = None
    if kind == access.SELF_APPROVAL:
        _check_self_approval(actor, case, version)
        qa_override = _qa_override(actor, case, subject, case.mesh_qa(version), "review.override")
    rec = access.new_override(
        case.pseudonym, kind, subject, administrator=actor.user, reason=reason, mesh_version=version
    )
    access.append(case, rec)
    policy.record(
        actor,
        "review.override",
        case.pseudonym,
        kind=kind,
        subject_sha256=subject,
        record_id=rec["id"],
    )
    if kind == access.SELF_APPROVAL:
        assert version is not None
        used = [rec, qa_override] if qa_override else [rec]
        _decide(
            actor,
            case,
            version,
            access.APPROVED,
            meaning=SELF_APPROVED,
            comment=reason,
            overrides=used,
        )
    return rec


def _check_self_approval(actor: Actor, case: Case, version: int | None) -> None:
    people = enrolled(actor)
    if people != {actor.user}:
        msg = "self-approval is only for a vault with one enrolled person; this one has "
        msg += f"{len(people)}: ask a reviewer to approve mesh v{version}"
        policy.refuse(actor, "review.override", case.pseudonym, reason="not-alone", message=msg)


def release_mesh(actor: Actor, case: Case, version: int, action: str) -> Release:
    """Allow ``action`` (``print`` or ``package.build``) of mesh ``version``, or refuse it.

    Returns the approval it rests on and the overrides that approval used.
    """
    policy.allow(actor, action, case.pseudonym)
    state = _status(case, version)
    if not state.approved:
        verb = "printed" if action == "print" else "packaged"
        msg = f"mesh v{version} of {case.pseudonym} cannot be {verb}: {state.message}"
        policy.refuse(
            actor, action, case.pseudonym, reason=state.state, message=msg, version=version
        )
    assert state.record is not None
    used = [access.find_record(case, i) for i in state.record.get("override_ids", [])]
    return Release(state.record, [r for r in used if r], version, case.mesh_sha256(version))


def release_gcode(actor: Actor, case: Case, gcode: StoredGcode, action: str) -> Release:
    """Allow ``action`` of a stored G-code: it must come from an approved mesh version of the
    case (its provenance names the mesh hash), or carry an administrator's foreign-gcode
    override."""
    policy.allow(actor, action, case.pseudonym)
    if gcode.sha256 != gcode.provenance.get("gcode_sha256"):
        msg = f"G-code g{gcode.number} does not match its provenance record; slice it again"
        policy.refuse(actor, action, case.pseudonym, reason="gcode-changed", message=msg)
    foreign = access.find_override(case, access.FOREIGN_GCODE, gcode.sha256)
    if foreign is not None:
        return Release(None, [foreign])
    mesh_sha = gcode.provenance.get("mesh_sha256")
    version = case.find_mesh_version(mesh_sha) if isinstance(mesh_sha, str) else None
    if version is None:
        msg = f"G-code g{gcode.number} was not sliced from a mesh version of {case.pseudonym}; "
        msg += "an administrator may allow it with a foreign-gcode override"
        policy.refuse(actor, action, case.pseudonym, reason="foreign-gcode", message=msg)
    return release_mesh(actor, case, version, action)


def release_foreign_gcode(actor: Actor, case: Case, gcode_sha256: str, action: str) -> Release:
    """A G-code file not stored in the case: only with an administrator's override for it."""
    policy.allow(actor, action, case.pseudonym)
    found = access.find_override(case, access.FOREIGN_GCODE, gcode_sha256)
    if found is None:
        msg = "this G-code was not sliced here from an approved mesh version; slice the case "
        msg += "('medprint slice CASE'), or an administrator prints it with --override"
        policy.refuse(actor, action, case.pseudonym, reason="foreign-gcode", message=msg)
    return Release(None, [found])

"""Review: approve, reject, override, and the release gate that printing and packaging pass.

A decision binds one mesh version (the manifest hash over its parts) and its QA report, and is
signed by the person who makes it with their personal key (:mod:`app.security.esign`): their
account, printed name and role, the meaning (one of a fixed list), the time and the overrides it
rests on. The gates count a decision only when its signature verifies with the signer's key from
the vault's verified roles chain and the signer holds the role it needs (reviewer; an
administrator for overrides and self-approvals): a record anyone writes into the case files
does not count, and an unsigned one from an older version counts as not reviewed.

Four eyes: an author of a version (who saved the segmentation it was built from, built or
edited it, or any version it derives from) cannot approve it. Overrides are of three fixed
kinds, each an administrator's signed act with a reason:

``qa-failure``
    lets a reviewer approve a version whose QA failed (meaning "approved with QA override");
``self-approval``
    in a vault with a single enrolled person, lets that administrator approve their own mesh
    (the decision is marked "self-approved", and the package says so);
``foreign-gcode``
    lets a G-code that was not sliced here from an approved version be printed or packaged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from app.case import Case, StoredGcode
from app.errors import MedPrintError
from app.security import access, audit, esign
from app.security.roles import load_chain, verify_chain
from app.workflow import policy
from app.workflow.actor import Actor

APPROVED_FOR_PRINTING = access.APPROVED_FOR_PRINTING
APPROVED_WITH_QA_OVERRIDE = access.APPROVED_WITH_QA_OVERRIDE
SELF_APPROVED = access.SELF_APPROVED
CHANGES_REQUESTED = access.CHANGES_REQUESTED
REJECTED = access.REJECTED_FOR_PRINTING
APPROVAL_MEANINGS = access.APPROVAL_MEANINGS
REJECTION_MEANINGS = access.REJECTION_MEANINGS
MEANINGS = access.MEANINGS
# An override is asked for by what it means (``review override --meaning``).
OVERRIDE_FOR_MEANING = {
    APPROVED_WITH_QA_OVERRIDE: access.QA_FAILURE,
    SELF_APPROVED: access.SELF_APPROVAL,
}


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

    @property
    def signers(self) -> set[str]:
        """Everyone whose signature the release rests on."""
        return {str(r.get("signer")) for r in [self.approval, *self.overrides] if r}


def lab(actor: Actor) -> esign.Lab:
    """The actor's vault's verified roles, with the statements that prove them."""
    vault = actor.vault
    chain = load_chain(vault)
    state = verify_chain(chain, vault_id=vault.vault_id, founder_fingerprint=vault.founder)
    return esign.Lab(state, chain, vault.vault_id, vault.founder)


def status(actor: Actor, case: Case, version: int) -> access.ApprovalStatus:
    """The review state of mesh ``version``: approved, rejected, invalid, void or none."""
    policy.allow(actor, "review.view", case.pseudonym)
    return _status(lab(actor), case, version)


def _status(roles: esign.Lab, case: Case, version: int) -> access.ApprovalStatus:
    qa_sha = access.qa_report_sha256(case.mesh_qa(version))

    @functools.cache
    def made_by() -> frozenset[str]:  # read (the audit log too) only when an approval needs it
        return frozenset(authors(case, version))

    def problem(record: dict) -> str | None:
        found = esign.check(record, roles.state)
        if found is not None:
            return found.message
        own = record.get("decision") == access.APPROVED and record.get("signer") in made_by()
        if own and record.get("meaning") != SELF_APPROVED:
            msg = f"the approval is signed by {record.get('signer')}, an author of mesh "
            msg += f"v{version} (four eyes): it does not count; ask another reviewer"
            return msg
        return None

    return access.approval_status(case, case.mesh_sha256(version), qa_sha, problem=problem)


def _accept(roles: esign.Lab) -> Callable[[dict], bool]:
    """Whether a record's signature counts (signer enrolled with the role it needs)."""
    return lambda record: esign.check(record, roles.state) is None


def latest_approved(actor: Actor, case: Case) -> int | None:
    """The newest mesh version whose approval stands (not void, not rejected), if any."""
    roles = lab(actor)
    versions = reversed(case.mesh_versions())
    return next((n for n in versions if _status(roles, case, n).approved), None)


def authors(case: Case, version: int) -> set[str]:
    """Every account that built or edited ``version`` or a version it derives from (its parents
    and the other versions of boolean edits), or saved the segmentation it was built from: as
    the versions' files say, and as the signed audit log says (a member rewriting an author in
    the vault does not change the log)."""
    logged = audit.read_case_records(case.vault.paths, case.pseudonym)
    found: set[str] = set()
    lineage: set[int] = set()
    todo = [version]
    while todo:
        number = todo.pop()
        if number in lineage or number not in case.mesh_versions():
            continue
        lineage.add(number)
        info = case.mesh_info(number)
        found.update(u for u in [info.get("author"), *info.get("authors", [])] if u)
        todo += [int(info["parent_version"])] if info.get("parent_version") is not None else []
        todo += _logged_sources(logged, number)
    return found | _logged_authors(logged, lineage)


_MADE = frozenset({"mesh.build", "mesh.edit", "mesh.import"})


def _logged_sources(logged: list[dict], number: int) -> list[int]:
    """The versions the audit log shows version ``number`` was edited from."""
    sources = []
    for record in logged:
        facts = record.get("facts") or {}
        if record.get("action") == "mesh.edit" and facts.get("version") == number:
            params = facts.get("params") if isinstance(facts.get("params"), dict) else {}
            sources += [facts.get("parent_version"), params.get("with_version")]
    return [int(v) for v in sources if isinstance(v, int | str) and str(v).isdigit()]


def _logged_authors(logged: list[dict], lineage: set[int]) -> set[str]:
    """Who the audit log shows making a version of ``lineage``, or saving the case's
    segmentation before the last build of one."""
    found: set[str] = set()
    builds: list[int] = []
    saves: list[tuple[int, str]] = []
    for record in logged:
        action, user = record.get("action"), str(record.get("user"))
        if action in _MADE and (record.get("facts") or {}).get("version") in lineage:
            found.add(user)
            if action == "mesh.build":
                builds.append(int(record["seq"]))
        elif action == "segmentation.save":
            saves.append((int(record["seq"]), user))
    last_build = max(builds, default=0)
    return found | {user for seq, user in saves if seq < last_build}


def enrolled(roles: esign.Lab) -> set[str]:
    """The people holding any role in the vault."""
    return {u for u, held in roles.state.roles.items() if held}


def approve(
    actor: Actor, case: Case, version: int, *, comment: str = "", meaning: str | None = None
) -> dict:
    """Approve mesh ``version`` for printing; returns the signed decision record.

    ``meaning``, when given, is what the reviewer means to sign; it must be what the approval
    is (``approved with QA override`` when QA failed, else ``approved for printing``).
    """
    policy.allow(actor, "review.approve", case.pseudonym)
    access.check_text(comment, "the reason", required=False)
    roles = lab(actor)
    if actor.user in authors(case, version):
        msg = f"you made mesh v{version} and cannot approve it yourself (four eyes): ask "
        msg += "another reviewer"
        if enrolled(roles) == {actor.user}:
            msg += "; alone in this vault, an administrator records a self-approval override "
            msg += f"('medprint review override {case.pseudonym} --version {version} "
            msg += "--meaning self-approved --reason TEXT')"
        policy.refuse(actor, "review.approve", case.pseudonym, reason="author", message=msg)
    qa_override = _qa_override(actor, roles, case, version, "review.approve")
    actual = APPROVED_WITH_QA_OVERRIDE if qa_override else APPROVED_FOR_PRINTING
    if meaning not in (None, actual):
        msg = f"this approval of mesh v{version} means '{actual}', not '{meaning}'; sign it "
        msg += f"with --meaning '{actual}'"
        raise MedPrintError(msg)
    used = [qa_override] if qa_override else []
    return _decide(
        actor,
        roles,
        case,
        version,
        access.APPROVED,
        meaning=actual,
        comment=comment,
        overrides=used,
    )


def _qa_override(
    actor: Actor, roles: esign.Lab, case: Case, version: int, action: str
) -> dict | None:
    """None when QA passed; the administrator's signed QA override when it failed; else
    ``action`` is refused."""
    if access.qa_passed(case.mesh_qa(version)):
        return None
    mesh_sha = case.mesh_sha256(version)
    found = access.find_override(case, access.QA_FAILURE, mesh_sha, _accept(roles))
    if found is None:
        msg = "this mesh version failed QA and cannot be approved; fix the mesh, or an "
        msg += "administrator records a QA override first (meaning 'approved with QA override')"
        policy.refuse(actor, action, case.pseudonym, reason="qa-failed", message=msg)
    return found


def reject(
    actor: Actor, case: Case, version: int, *, comment: str, meaning: str = CHANGES_REQUESTED
) -> dict:
    """Reject mesh ``version``; the comment says what to change (it stays in the vault)."""
    policy.allow(actor, "review.reject", case.pseudonym)
    access.check_text(comment, "a reason saying what to change", required=True)
    if meaning not in REJECTION_MEANINGS:
        msg = f"a rejection means one of: {', '.join(REJECTION_MEANINGS)}"
        raise MedPrintError(msg)
    return _decide(
        actor,
        lab(actor),
        case,
        version,
        access.REJECTED,
        meaning=meaning,
        comment=comment,
        overrides=[],
    )


def _decide(
    actor: Actor,
    roles: esign.Lab,
    case: Case,
    version: int,
    decision: str,
    *,
    meaning: str,
    comment: str,
    overrides: list[dict],
) -> dict:
    unsigned = access.new_decision(
        case.pseudonym,
        decision,
        case.mesh_sha256(version),
        case.mesh_qa(version),
        mesh_version=version,
        meaning=meaning,
        comment=comment,
        override_ids=[o["id"] for o in overrides],
    )
    rec = _sign(actor, roles, case, unsigned, f"review.{decision}")
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
        signer_key=rec["signer_key"],
    )
    return rec


def _sign(actor: Actor, roles: esign.Lab, case: Case, record: dict, action: str) -> dict:
    """``record`` signed with the actor's personal key in the role it needs, and stored.

    Refused when the actor's key is not the one the roles chain names for them (a signature
    that would not count)."""
    role = esign.needed_role(record)
    enrolled_as = roles.state.identities.get(actor.user)
    if enrolled_as is None or enrolled_as.fingerprint != actor.keys.public.fingerprint:
        msg = f"your personal key is not the one enrolled for '{actor.user}' in this vault, so "
        msg += "your signature would not count; ask an administrator to enrol you again"
        policy.refuse(actor, action, case.pseudonym, reason="key-not-enrolled", message=msg)
    signed = esign.sign(record, actor.keys, role)
    _write(case, signed)
    return signed


def _write(case: Case, record: dict) -> None:
    """The one place a decision or override is written (appended to the case's history)."""
    access.append(case, record)


def override(
    actor: Actor,
    case: Case,
    kind: str,
    *,
    reason: str,
    version: int | None = None,
    gcode_sha256: str | None = None,
) -> dict:
    """Record an administrator's signed override of ``kind`` (see the module doc) with its
    reason.

    ``self-approval`` also records the approval itself; returns the override record.
    """
    policy.allow(actor, "review.override", case.pseudonym)
    access.check_text(reason, "the reason", required=True)
    roles = lab(actor)
    facts: dict[str, object] = {}
    if kind == access.FOREIGN_GCODE:
        subject = access.check_sha(gcode_sha256 or "", "the G-code hash")
    elif version is None:
        msg = f"a {kind} override is for one mesh version; give --version N"
        raise MedPrintError(msg)
    else:
        subject = case.mesh_sha256(version)
        facts = {
            "mesh_version": version,
            "qa_sha256": access.qa_report_sha256(case.mesh_qa(version)),
        }
    qa_override = None
    if kind == access.SELF_APPROVAL:
        assert version is not None
        _check_self_approval(actor, roles, case, version)
        qa_override = _qa_override(actor, roles, case, version, "review.override")
    unsigned = access.new_override(
        case.pseudonym,
        kind,
        subject,
        meaning=access.OVERRIDE_MEANINGS.get(kind),
        reason=reason,
        **facts,
    )
    rec = _sign(actor, roles, case, unsigned, "review.override")
    policy.record(
        actor,
        "review.override",
        case.pseudonym,
        kind=kind,
        subject_sha256=subject,
        record_id=rec["id"],
        signer_key=rec["signer_key"],
    )
    if kind == access.SELF_APPROVAL:
        assert version is not None
        used = [rec, qa_override] if qa_override else [rec]
        _decide(
            actor,
            roles,
            case,
            version,
            access.APPROVED,
            meaning=SELF_APPROVED,
            comment=reason,
            overrides=used,
        )
    return rec


def _check_self_approval(actor: Actor, roles: esign.Lab, case: Case, version: int) -> None:
    people = enrolled(roles)
    if people != {actor.user}:
        msg = "self-approval is only for a vault with one enrolled person; this one has "
        msg += f"{len(people)}: ask a reviewer to approve mesh v{version}"
        policy.refuse(actor, "review.override", case.pseudonym, reason="not-alone", message=msg)


def release_mesh(actor: Actor, case: Case, version: int, action: str) -> Release:
    """Allow ``action`` (``print`` or ``package.build``) of mesh ``version``, or refuse it.

    Returns the approval it rests on and the overrides that approval used.
    """
    policy.allow(actor, action, case.pseudonym)
    roles = lab(actor)
    state = _status(roles, case, version)
    verb = "printed" if action == "print" else "packaged"
    if not state.approved:
        msg = f"mesh v{version} of {case.pseudonym} cannot be {verb}: {state.message}"
        policy.refuse(
            actor, action, case.pseudonym, reason=state.state, message=msg, version=version
        )
    assert state.record is not None
    used = [access.find_record(case, i) for i in state.record.get("override_ids", [])]
    if not all(r is not None and _accept(roles)(r) for r in used):
        msg = f"mesh v{version} of {case.pseudonym} cannot be {verb}: an override its approval "
        msg += "rests on is missing or fails its signature; ask for the review again"
        policy.refuse(actor, action, case.pseudonym, reason="override", message=msg)
    overrides = [r for r in used if r is not None]
    return Release(state.record, overrides, version, case.mesh_sha256(version))


def release_gcode(actor: Actor, case: Case, gcode: StoredGcode, action: str) -> Release:
    """Allow ``action`` of a stored G-code: it must come from an approved mesh version of the
    case (its provenance names the mesh hash), or carry an administrator's foreign-gcode
    override."""
    policy.allow(actor, action, case.pseudonym)
    if gcode.sha256 != gcode.provenance.get("gcode_sha256"):
        msg = f"G-code g{gcode.number} does not match its provenance record; slice it again"
        policy.refuse(actor, action, case.pseudonym, reason="gcode-changed", message=msg)
    foreign = access.find_override(case, access.FOREIGN_GCODE, gcode.sha256, _accept(lab(actor)))
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
    found = access.find_override(case, access.FOREIGN_GCODE, gcode_sha256, _accept(lab(actor)))
    if found is None:
        msg = "this G-code was not sliced here from an approved mesh version; slice the case "
        msg += "('medprint slice CASE'), or an administrator prints it with --override"
        policy.refuse(actor, action, case.pseudonym, reason="foreign-gcode", message=msg)
    return Release(None, [found])

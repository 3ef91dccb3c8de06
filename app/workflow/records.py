"""The audit log as people see it: verify, read, export (the records hold no patient data).

Each record is signed by the person who acted; verifying checks the signatures against the
people of the vault's verified roles chain and the state against the anchors in the verifying
person's keystore (:mod:`app.workflow.anchoring`), so a deleted or rolled-back log is reported.

Anyone enrolled may verify and read the log; exporting it is for reviewers and administrators.
Verifying and exporting are audited themselves.
"""

from __future__ import annotations

from app.errors import AuditError, IntegrityError
from app.security import audit, syslog
from app.security.audit import VerifyResult
from app.workflow import anchoring, policy
from app.workflow.actor import Actor

FORMATS = ("csv", "json")


def verify_log(actor: Actor) -> VerifyResult:
    """Check the hash chain, every record's signature against the people of the verified roles
    chain, the signed head, and the anchors in the actor's keystore; the message names the
    first bad record, or what is missing or older than the actor saw. Heads that did not reach
    syslog are noted. Audited ``audit.verify`` when the log can take the record."""
    try:
        policy.allow(actor, "audit.view")
    except IntegrityError as exc:  # the anchors caught a rollback or deletion on opening
        return _with_notes(actor, VerifyResult(False, 0, str(exc)))
    result = audit.verify(actor.paths, anchoring.known_people(actor))
    if result.ok:
        try:
            anchoring.check_audit(actor)
        except IntegrityError as exc:
            result = VerifyResult(False, result.records, str(exc))
    result = _with_notes(actor, result)
    try:
        policy.record(actor, "audit.verify", ok=result.ok, records=result.records)
    except (AuditError, IntegrityError):
        if result.ok:
            raise
    return result


def _with_notes(actor: Actor, result: VerifyResult) -> VerifyResult:
    note = syslog.describe_unsent(actor.paths)
    if note:
        result.notes.append(note)
    return result


def read_log(actor: Actor, *, case: str | None = None, last: int = 0) -> list[dict]:
    """The records in log order, only those of ``case`` when given, only the ``last`` N."""
    policy.allow(actor, "audit.view", case)
    records = audit.read_records(actor.paths)
    if case:
        records = [r for r in records if r.get("case") == case]
    return records[-last:] if last > 0 else records


def review_log(actor: Actor) -> tuple[VerifyResult, list[dict]]:
    """:func:`verify_log`, then every record (the audit panel's Refresh and verify)."""
    verdict = verify_log(actor)
    return verdict, read_log(actor)


def export_log(actor: Actor, fmt: str, *, case: str | None = None, last: int = 0) -> str:
    """The selected records as CSV or JSON text (audited ``audit.export``)."""
    policy.allow(actor, "audit.export", case)
    records = read_log(actor, case=case, last=last)
    text = audit.export(records, fmt)
    policy.record(actor, "audit.export", case, format=fmt, records=len(records))
    return text

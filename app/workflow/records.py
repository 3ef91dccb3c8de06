"""The audit log as people see it: verify, read, export (the records hold no patient data).

Anyone enrolled may verify and read the log; exporting it is for reviewers and administrators.
Verifying and exporting are audited themselves.
"""

from __future__ import annotations

from app.security import audit
from app.security.audit import VerifyResult
from app.workflow import policy
from app.workflow.actor import Actor

FORMATS = ("csv", "json")


def verify_log(actor: Actor) -> VerifyResult:
    """Check the hash chain, every MAC and the sealed head; the message names the first bad
    record (audited ``audit.verify``)."""
    policy.allow(actor, "audit.view")
    result = audit.verify(actor.paths)
    policy.record(actor, "audit.verify", ok=result.ok, records=result.records)
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

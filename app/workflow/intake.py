"""Intake: open, scan, import and de-identify; the case list."""

from __future__ import annotations

from app.case import Case
from app.workflow import policy
from app.workflow.actor import Actor


def open_case(actor: Actor, pseudonym: str) -> Case:
    """Open case ``pseudonym`` for work (any role; audited as ``case.open``)."""
    policy.allow(actor, "case.open", pseudonym)
    case = actor.case(pseudonym)
    policy.record(actor, "case.open", case.pseudonym)
    return case

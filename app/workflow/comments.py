"""Comments pinned to a point of a mesh version: made by a reviewer or technician, listed,
resolved. They are free text and stay in the vault with the version (``comments.json``): the
audit records only their ids and versions, and a package never carries them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from app.case import Case
from app.errors import MedPrintError
from app.security import access
from app.workflow import policy
from app.workflow.actor import Actor


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _point(at: Sequence[float]) -> list[float]:
    values = [float(v) for v in at]
    if len(values) != 3 or not all(abs(v) < 1e5 for v in values):
        msg = "a comment is pinned to one point: X,Y,Z in patient LPS millimetres"
        raise MedPrintError(msg)
    return values


def add(actor: Actor, case: Case, version: int, *, at: Sequence[float], text: str) -> dict:
    """Pin ``text`` to point ``at`` (LPS mm) of mesh ``version``; returns the comment."""
    policy.allow(actor, "review.comment", case.pseudonym)
    access.check_text(text, "the comment", required=True)
    comment = {
        "id": uuid.uuid4().hex[:12],
        "version": version,
        "mesh_sha256": case.mesh_sha256(version),
        "at_lps_mm": _point(at),
        "text": text,
        "author": actor.user,
        "time_utc": _now(),
        "resolved": None,
    }
    case.save_comments([*case.load_comments(), comment])
    policy.record(
        actor, "review.comment", case.pseudonym, comment_id=comment["id"], version=version
    )
    return comment


def listed(actor: Actor, case: Case, version: int | None = None) -> list[dict]:
    """The comments of ``case`` (of one ``version`` when given), oldest first."""
    policy.allow(actor, "review.view", case.pseudonym)
    found = case.load_comments()
    return [c for c in found if version is None or c.get("version") == version]


def resolve(actor: Actor, case: Case, comment_id: str) -> dict:
    """Mark a comment resolved (by whom, when); returns it."""
    policy.allow(actor, "review.comment", case.pseudonym)
    found = case.load_comments()
    match = next((c for c in found if c.get("id") == comment_id), None)
    if match is None:
        msg = f"case {case.pseudonym} has no comment {comment_id}; 'review comments' lists them"
        raise MedPrintError(msg)
    if match.get("resolved"):
        msg = f"comment {comment_id} is already resolved"
        raise MedPrintError(msg)
    match["resolved"] = {"by": actor.user, "time_utc": _now()}
    case.save_comments(found)
    policy.record(
        actor,
        "review.resolve",
        case.pseudonym,
        comment_id=comment_id,
        version=match.get("version"),
    )
    return match

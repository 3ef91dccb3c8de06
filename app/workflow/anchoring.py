"""The anchors of the state each person sees: checked when they open the vault or a case,
advanced after each of their acts (see :mod:`app.security.anchors`), and every new audit head
forwarded to syslog.

When an actor opens the vault, an interrupted audit append is repaired, then the audit log,
``vault.json`` and the roles chain are checked against the anchors in the actor's keystore: a
missing log or roles record, or any state older than an anchor, raises :class:`IntegrityError`
naming what is missing. A case's decision history is checked, then anchored, when the actor
opens the case. After each act the audit head and the vault version are anchored; after role
changes the roles head; after review acts the case's decision history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.case import Case
from app.errors import AuditError, IntegrityError, VaultError
from app.security import access, anchors, audit, roles, syslog
from app.security.anchors import Anchors
from app.security.identity import PublicIdentity
from app.settings import Settings

if TYPE_CHECKING:
    from app.workflow.actor import Actor


def anchors_of(actor: Actor) -> Anchors:
    """The anchors of the actor's vault in the actor's own keystore."""
    return Anchors(actor.vault.vault_id, actor.keys.keystore)


def _chain(actor: Actor) -> tuple[list[dict], roles.RolesState]:
    """The vault's roles statements and the state they verify to (empty when the record is
    missing and an anchor says it existed: :func:`check` names that)."""
    vault = actor.vault
    try:
        chain = roles.load_chain(vault)
    except VaultError:
        if anchors_of(actor).get(anchors.ROLES) is None:
            raise
        return [], roles.RolesState()
    return chain, roles.verify_chain(
        chain, vault_id=vault.vault_id, founder_fingerprint=vault.founder
    )


def identities(chain: list[dict]) -> dict[str, PublicIdentity]:
    """Every key the roles chain ever gave a person (fingerprint -> person), so records signed
    before a person's key was replaced or removed still verify."""
    people = (PublicIdentity.from_dict(s["subject"]) for s in chain)
    return {person.fingerprint: person for person in people}


def known_people(actor: Actor) -> dict[str, PublicIdentity]:
    """The people whose signatures the audit log may carry (from the verified roles chain)."""
    return identities(_chain(actor)[0])


def _statement_digest(chain: list[dict]) -> Callable[[int], str | None]:
    def digest_at(seq: int) -> str | None:
        if 1 <= seq <= len(chain):
            return roles.statement_hash(chain[seq - 1])
        return None

    return digest_at


# ----- on opening -------------------------------------------------------------------------------


def check(actor: Actor) -> None:
    """Repair an interrupted audit append, then check the audit log, ``vault.json`` and the
    roles chain against the actor's anchors (raises :class:`IntegrityError`)."""
    try:
        head = audit.repair(actor.paths, actor.user, actor.keys, lambda: known_people(actor))
    except AuditError as exc:
        raise IntegrityError(str(exc)) from None
    check_audit(actor, head)
    marks = anchors_of(actor)
    marks.check(anchors.VAULT, actor.vault.meta_version, "")
    chain, state = _chain(actor)
    marks.check(anchors.ROLES, state.head_seq, state.head_hash, digest_at=_statement_digest(chain))
    marks.advance(anchors.ROLES, state.head_seq, state.head_hash)


def check_audit(actor: Actor, head: audit.Head | None = None) -> None:
    """Check the audit log's head (default: as stored) against the actor's anchor, and that
    the record the anchor names is still the one seen."""
    paths = actor.paths
    head = head or audit.current_head(paths)
    anchors_of(actor).check(
        anchors.AUDIT, head.seq, head.hash, digest_at=lambda n: audit.record_hash(paths, n)
    )


def before_record(actor: Actor) -> None:
    """Repair an interrupted append (taking in only records that verify), and refuse to append
    to an audit log older than the actor saw (a cheap check: the head only; opening the vault
    and ``audit verify`` check the whole history)."""
    if actor.opened_vault is not None:
        head = audit.repair(actor.paths, actor.user, actor.keys, lambda: known_people(actor))
        anchors_of(actor).check(anchors.AUDIT, head.seq, head.hash)


def _decisions_digest(history: list[dict]) -> Callable[[int], str | None]:
    def digest_at(count: int) -> str | None:
        if count > len(history):
            return None
        return hashlib.sha256(audit.canonical(history[:count])).hexdigest()

    return digest_at


def check_case(actor: Actor, case: Case) -> None:
    """Check the case's decision history against the actor's anchor (raises
    :class:`IntegrityError` when it was rolled back, deleted or replaced), then anchor it: each
    decision is signed by its reviewer, so what is there can only have grown."""
    history = access.history(case)
    digest_at = _decisions_digest(history)
    name, digest = anchors.decisions(case.pseudonym), digest_at(len(history)) or ""
    marks = anchors_of(actor)
    marks.check(name, len(history), digest, digest_at=digest_at)
    marks.advance(name, len(history), digest)


# ----- after each act ---------------------------------------------------------------------------


def after_record(actor: Actor, head: audit.Head, action: str, case: str | None) -> None:
    """Anchor what the act left (audit head, vault version; roles after role changes; the
    decision history after review acts) and forward the head to syslog."""
    vault = actor.opened_vault
    if vault is not None:
        marks = anchors_of(actor)
        marks.advance(anchors.AUDIT, head.seq, head.hash)
        marks.advance(anchors.VAULT, vault.meta_version, "")
        if action.startswith("users."):
            state = _chain(actor)[1]
            marks.advance(anchors.ROLES, state.head_seq, state.head_hash)
        if case and action.startswith("review."):
            history = access.history(Case(vault, case))
            digest = _decisions_digest(history)(len(history)) or ""
            marks.advance(anchors.decisions(case), len(history), digest)
    forward(actor, head, action, vault.vault_id if vault else "")


def forward(actor: Actor, head: audit.Head, action: str, vault_id: str) -> None:
    """Send the new head to the syslog targets in the settings (a failure is noted for
    ``audit verify``, never raised)."""
    settings = Settings.load(actor.paths)
    if not settings.syslog and not settings.syslog_local:
        return
    message = syslog.format_head(
        seq=head.seq, digest=head.hash, vault_id=vault_id, user=actor.user, action=action
    )
    errors = syslog.send(message, target=settings.syslog, local=settings.syslog_local)
    syslog.note(actor.paths, head.seq, errors)

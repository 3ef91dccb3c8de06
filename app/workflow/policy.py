"""Who may do what, and the audit record of every act: the one place policy is decided.

Every use case calls :func:`allow` before it acts and :func:`record` after; a refusal raises
:class:`AccessDenied` with a clear message and is audited as ``access.denied``. An administrator
may do everything a technician may; approving and rejecting need the reviewer role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from app.errors import AccessDenied, MedPrintError
from app.security import access, audit, roles
from app.workflow import anchoring

if TYPE_CHECKING:
    from app.workflow.actor import Actor

T, R, A = access.TECHNICIAN, access.REVIEWER, access.ADMINISTRATOR
ANYONE = frozenset({T, R, A})
MAKERS = frozenset({T, A})
ADMINS = frozenset({A})

# Use case -> roles allowed to do it.
PERMISSIONS: dict[str, frozenset[str]] = {
    "vault.status": ANYONE,
    "vault.recovery_key": ADMINS,
    "vault.rotate_key": ADMINS,
    "users.list": ANYONE,
    "users.manage": ADMINS,
    "keys.export": ANYONE,
    "keys.manage": ADMINS,
    "case.list": ANYONE,
    "case.open": ANYONE,
    "case.identity": ANYONE,
    "case.import": MAKERS,
    "case.delete": ADMINS,
    "deid": MAKERS,
    "segment": MAKERS,
    "segment.export": MAKERS,
    "segment.export_identified": ADMINS,
    "mesh.view": ANYONE,
    "mesh.build": MAKERS,
    "mesh.edit": MAKERS,
    "mesh.export": MAKERS,
    "review.view": ANYONE,
    "review.approve": frozenset({R}),
    "review.reject": frozenset({R}),
    "review.override": ADMINS,
    "review.comment": ANYONE,
    "order.set": ANYONE,
    "registry.export": frozenset({R, A}),
    "slice": MAKERS,
    "print": MAKERS,
    "printer.serial": MAKERS,
    "package.build": MAKERS,
    "audit.view": ANYONE,
    "audit.export": frozenset({R, A}),
    "settings.manage": ADMINS,
    "record.step": MAKERS,
    "trace.view": ANYONE,
    "verify_print": ANYONE,
    "lab_qa": MAKERS,
    "pacs.nodes": ANYONE,
    "pacs.query": MAKERS,
    "pacs.retrieve": MAKERS,
    "pacs.store": frozenset({R, A}),
    "pacs.manage": ADMINS,
}


def record(actor: Actor, action: str, case: str | None = None, **facts: object) -> None:
    """Append the audit record of ``action`` by ``actor``, signed with the actor's personal key
    (no PHI: pseudonyms, hashes, numbers); then anchor the state the act left."""
    anchoring.before_record(actor)
    head = audit.record(action, case, user=actor.user, paths=actor.paths, keys=actor.keys, **facts)
    anchoring.after_record(actor, head, action, case)


def roles_of(actor: Actor, user: str | None = None) -> set[str]:
    """The roles of ``user`` (default: the actor) in the actor's vault, from the verified roles
    chain (a missing, edited or forged roles record is a :class:`VaultError` naming it)."""
    return set(roles.current(actor.vault).roles.get(user or actor.user, set()))


def allow(actor: Actor, action: str, case: str | None = None) -> None:
    """Let ``actor`` do ``action`` or raise :class:`AccessDenied` (and audit the refusal)."""
    if action not in PERMISSIONS:
        msg = f"unknown action '{action}' (a programming error); nothing was done"
        raise MedPrintError(msg)
    allowed = PERMISSIONS[action]
    held = roles_of(actor)
    if held & allowed:
        return
    needed = " or ".join(sorted(allowed))
    have = ", ".join(sorted(held)) if held else "no role"
    msg = f"user '{actor.user}' ({have}) may not {action.replace('.', ' ').replace('_', ' ')}: "
    msg += f"it needs the {needed} role; ask an administrator ('medprint users add USER ROLE')"
    refuse(actor, action, case, reason="role", message=msg, roles=sorted(held))


def refuse(
    actor: Actor,
    action: str,
    case: str | None,
    *,
    reason: str,
    message: str,
    **facts: object,
) -> NoReturn:
    """Audit a refusal of ``action`` and raise :class:`AccessDenied` with ``message``."""
    record(actor, "access.denied", case, attempted=action, reason=reason, **facts)
    raise AccessDenied(message)

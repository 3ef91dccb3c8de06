"""Set-up and users: the vault, its first administrator, and roles."""

from __future__ import annotations

from app.errors import AccessDenied, MedPrintError
from app.security import access
from app.security.vault import Vault
from app.workflow import policy
from app.workflow.actor import Actor


def init_vault(actor: Actor) -> str:
    """Create the vault in the actor's data folder; the actor becomes its first administrator.

    Returns the recovery key (shown to the user once).
    """
    vault, recovery = Vault.init(actor.paths)
    actor.adopt_vault(vault)
    access.save_roles(vault, {actor.user: {access.ADMINISTRATOR}})
    policy.record(actor, "vault.init", vault_id=vault.vault_id)
    policy.record(actor, "users.bootstrap", subject=actor.user, role=access.ADMINISTRATOR)
    return recovery


def list_users(actor: Actor) -> dict[str, list[str]]:
    """Every user with a role, and their roles."""
    policy.allow(actor, "users.list")
    return {u: sorted(r) for u, r in sorted(access.load_roles(actor.vault).items())}


def add_role(actor: Actor, user: str, role: str) -> None:
    """Give ``user`` the ``role`` (administrators only)."""
    policy.allow(actor, "users.manage")
    access.check_user(user)
    access.check_role(role)
    roles = access.load_roles(actor.vault)
    roles.setdefault(user, set()).add(role)
    access.save_roles(actor.vault, roles)
    policy.record(actor, "users.role_added", subject=user, role=role)


def remove_role(actor: Actor, user: str, role: str | None = None) -> list[str]:
    """Take ``role`` (or every role) from ``user``; the last administrator stays. Returns what
    was removed."""
    policy.allow(actor, "users.manage")
    roles = access.load_roles(actor.vault)
    if user not in roles:
        msg = f"user '{user}' has no roles; nothing to remove"
        raise MedPrintError(msg)
    removed = set(roles[user]) if role is None else {access.check_role(role)} & roles[user]
    if not removed:
        msg = f"user '{user}' does not have the {role} role; nothing to remove"
        raise MedPrintError(msg)
    roles[user] -= removed
    if not any(access.ADMINISTRATOR in r for r in roles.values()):
        msg = "this would remove the last administrator; add another administrator first"
        raise AccessDenied(msg)
    access.save_roles(actor.vault, roles)
    policy.record(actor, "users.role_removed", subject=user, roles=sorted(removed))
    return sorted(removed)

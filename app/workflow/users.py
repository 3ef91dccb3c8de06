"""Set-up and users: the vault (create, status, keys, recovery), its first administrator, roles."""

from __future__ import annotations

from app.errors import AccessDenied, MedPrintError
from app.security import access
from app.security.vault import Vault
from app.workflow import policy
from app.workflow.actor import Actor

ROLES = access.ROLES


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


def vault_status(actor: Actor) -> dict:
    """Folder, key generation, number of cases, keystore service, and who is asking."""
    policy.allow(actor, "vault.status")
    return actor.vault.status() | {"user": actor.user, "roles": sorted(policy.roles_of(actor))}


def recovery_key(actor: Actor) -> str:
    """The vault's recovery key (administrators; audited ``vault.recovery_key_shown``)."""
    policy.allow(actor, "vault.recovery_key")
    key = actor.vault.recovery_key()
    policy.record(actor, "vault.recovery_key_shown", vault_id=actor.vault.vault_id)
    return key


def restore_vault(actor: Actor, recovery_key: str) -> str:
    """Put the master key back into the actor's keystore with the recovery key; the vault id.

    Holding the recovery key is the permission: without the master key no role can be read.
    """
    vault = Vault.restore_with_recovery_key(recovery_key, actor.paths)
    actor.adopt_vault(vault)
    policy.record(actor, "vault.restore", vault_id=vault.vault_id, generation=vault.generation)
    return vault.vault_id


def rotate_key(actor: Actor) -> int:
    """Re-wrap every data key under a new master key (administrators); the new generation."""
    policy.allow(actor, "vault.rotate_key")
    vault = actor.vault
    vault.rotate_key()
    policy.record(actor, "vault.rotate_key", vault_id=vault.vault_id, generation=vault.generation)
    return vault.generation


def bootstrap(actor: Actor) -> str:
    """Name the first administrator of a vault made before roles were stored at ``vault init``.

    The founder is the account the verified audit log names as the vault's creator; returns
    that account. Refused once roles exist, or when the log cannot name the founder.
    """
    if access.roles_exist(actor.vault):
        msg = "roles are already set up; an administrator assigns roles ('medprint users add')"
        raise AccessDenied(msg)
    policy.roles_of(actor)  # stores the founder from the verified audit log, when it names one
    founders = [u for u, r in access.load_roles(actor.vault).items() if access.ADMINISTRATOR in r]
    if not founders:
        msg = "the audit log does not name who created this vault (or fails verification); "
        msg += "restore the audit log and its keystore key from a backup, then try again"
        raise AccessDenied(msg)
    return founders[0]


def whoami(actor: Actor) -> dict:
    """The acting OS account, its roles in this data folder's vault, and whether one exists."""
    if not actor.has_vault():
        return {"user": actor.user, "roles": [], "vault": False}
    return {"user": actor.user, "roles": sorted(policy.roles_of(actor)), "vault": True}


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

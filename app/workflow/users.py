"""Set-up and people: the vault (create, status, keys, recovery), enrolment and roles.

Every account has its own personal keys (:class:`~app.security.identity.PersonalKeys`, made
by ``medprint whoami`` on its first run). To join a vault it leaves an enrolment request (its
public keys, self-signed) in ``<vault>/requests/<user>.json``; an administrator enrols it: the
master key is sealed to its wrapping key and a roles statement, signed by the administrator, is
appended to the vault's roles chain. Removing a person appends a statement with no roles, takes
out their sealed master key and rotates every key.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from app.atomic import atomic_write_bytes
from app.errors import AccessDenied, MedPrintError
from app.security import access, roles
from app.security.identity import PublicIdentity
from app.security.signing import TrustStore, utc_now
from app.security.vault import Vault
from app.settings import Paths
from app.workflow import policy
from app.workflow.actor import Actor

ROLES = access.ROLES


@dataclass(frozen=True)
class Enrolled:
    """Who was enrolled, with which roles, and the key fingerprint the administrator checks."""

    user: str
    roles: list[str]
    fingerprint: str


# --- the vault --------------------------------------------------------------------------------


def init_vault(actor: Actor) -> str:
    """Create the vault founded by the actor's personal key; the actor is its first
    administrator (the first statement of the roles chain), and the data folder trusts the
    founder's key as its lab key (packages' signatures chain back to it). Returns the recovery
    key (shown to the user once; it is stored nowhere)."""
    vault, recovery = Vault.init(actor.paths, actor.keys)
    actor.adopt_vault(vault)
    roles.found(vault, actor.keys)
    TrustStore(actor.paths).add(actor.keys.public.signing_key, name="lab-founder")
    policy.record(actor, "vault.init", vault_id=vault.vault_id, founder=vault.founder)
    return recovery


def vault_status(actor: Actor) -> dict:
    """Folder, key generation, members, number of cases, keystore service, who is asking."""
    policy.allow(actor, "vault.status")
    return actor.vault.status() | {"user": actor.user, "roles": sorted(policy.roles_of(actor))}


def recovery_key(actor: Actor) -> str:
    """A new recovery key (administrators). No copy of it is stored, so it cannot be shown
    again: issuing one rotates every key (see :func:`rotate_key`) and the old recovery key opens
    nothing current. Audited ``vault.recovery_key_issued``."""
    policy.allow(actor, "vault.recovery_key")
    vault = actor.vault
    key = vault.rotate_key()
    policy.record(
        actor, "vault.recovery_key_issued", vault_id=vault.vault_id, generation=vault.generation
    )
    return key


def restore_vault(actor: Actor, recovery_key: str) -> str:
    """Open the vault with the recovery key and seal its master key to the actor's (new)
    personal keys; the vault id. Holding the recovery key is the permission; roles are not
    changed (an administrator enrols the new key for roles and signatures)."""
    vault = Vault.restore_with_recovery_key(recovery_key, actor.paths, actor.keys)
    actor.adopt_vault(vault)
    policy.record(actor, "vault.restore", vault_id=vault.vault_id, generation=vault.generation)
    return vault.vault_id


def rotate_key(actor: Actor) -> tuple[int, str]:
    """New master key and data keys, every file re-encrypted (administrators). Returns the new
    key generation and the new recovery key (show it once)."""
    policy.allow(actor, "vault.rotate_key")
    vault = actor.vault
    recovery = vault.rotate_key()
    policy.record(actor, "vault.rotate_key", vault_id=vault.vault_id, generation=vault.generation)
    return vault.generation, recovery


# --- people ----------------------------------------------------------------------------------


def whoami(actor: Actor) -> dict:
    """The acting OS account, its key fingerprint (the keys are made on first use), its roles
    in this data folder's vault. An account that is not enrolled leaves an enrolment request
    for an administrator (``request`` true)."""
    identity = actor.keys.public
    me = {"user": actor.user, "fingerprint": identity.fingerprint, "roles": []}
    if not actor.has_vault():
        Vault.refuse_deleted_meta(actor.paths)
        return me | {"vault": False, "member": False, "request": False}
    if not Vault.lists_member(actor.paths, identity):
        request_enrolment(actor)
        return me | {"vault": True, "member": False, "request": True}
    roles_held = sorted(policy.roles_of(actor))
    return me | {"vault": True, "member": True, "request": False, "roles": roles_held}


def request_path(paths: Paths, user: str) -> Path:
    """Where ``user`` leaves their enrolment request."""
    return Vault.requests_folder(paths) / f"{access.check_user(user)}.json"


def request_enrolment(actor: Actor) -> Path:
    """Leave the actor's public keys, self-signed, for an administrator to enrol."""
    identity = actor.keys.public
    body = {"identity": identity.to_dict(), "time_utc": utc_now()}
    signature = base64.b64encode(actor.keys.sign(roles.canonical(body))).decode("ascii")
    path = request_path(actor.paths, actor.user)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, roles.canonical(body | {"signature": signature}))
    return path


def _read_request(actor: Actor, user: str) -> PublicIdentity:
    """The public keys ``user`` left, checked: self-signed, named for that account and, when
    the account exists here, written by it."""
    path = request_path(actor.paths, user)
    if not path.exists():
        msg = f"'{user}' has not asked to join: they run 'medprint whoami' first"
        raise MedPrintError(msg)
    try:
        data = json.loads(path.read_bytes())
        body = {k: v for k, v in data.items() if k != "signature"}
        identity = PublicIdentity.from_dict(body["identity"])
        signature = base64.b64decode(data["signature"], validate=True)
    except (ValueError, KeyError, TypeError, AttributeError, MedPrintError):
        identity, signature, body = None, b"", {}
    if identity is None or identity.user != user:
        msg = f"the enrolment request of '{user}' is malformed; they run 'medprint whoami' again"
        raise MedPrintError(msg)
    if not identity.signing_key.verify(signature, roles.canonical(body)):
        msg = f"the enrolment request of '{user}' fails its signature; they run 'medprint whoami'"
        raise MedPrintError(msg)
    _check_owner(path, user)
    return identity


def _check_owner(path: Path, user: str) -> None:
    """On a multi-user workstation, the request must be the account's own file."""
    if sys.platform == "win32":  # pragma: no cover - Windows ACLs are not checked here
        return
    import pwd  # noqa: PLC0415 (POSIX only)

    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return  # not an account on this machine (a directory user, or a test's person)
    if os.stat(path).st_uid != uid:
        msg = f"the enrolment request of '{user}' was not written by that account; delete it "
        msg += f"and let '{user}' run 'medprint whoami'"
        raise AccessDenied(msg)


def enrol(
    actor: Actor, user: str, wanted: list[str], *, fingerprint: str | None = None
) -> Enrolled:
    """Enrol ``user`` from their request with ``wanted`` roles (administrators): seal the master
    key to them and sign their roles. ``fingerprint``, when given, must match their key."""
    policy.allow(actor, "users.manage")
    held = {access.check_role(r) for r in wanted}
    identity = _read_request(actor, access.check_user(user))
    if fingerprint and fingerprint.replace(":", "").lower() != identity.fingerprint:
        msg = f"the key of '{user}' has fingerprint {identity.fingerprint}, not the one given; "
        msg += "check with them before enrolling"
        raise AccessDenied(msg)
    actor.vault.add_member(identity)
    roles.grant(actor.vault, actor.keys, identity, held)
    request_path(actor.paths, user).unlink(missing_ok=True)
    policy.record(
        actor, "users.enrolled", subject=user, roles=sorted(held), key=identity.fingerprint
    )
    return Enrolled(user, sorted(held), identity.fingerprint)


def list_users(actor: Actor) -> dict[str, dict]:
    """Every person with a role or a key to the vault: roles, key fingerprint, membership."""
    policy.allow(actor, "users.list")
    state = roles.current(actor.vault)
    members = actor.vault.members()
    people = {u for u, r in state.roles.items() if r} | set(members)
    return {
        user: {
            "roles": sorted(state.roles.get(user, set())),
            "fingerprint": (state.identities.get(user) or members[user]).fingerprint,
            "member": user in members,
        }
        for user in sorted(people)
    }


def add_role(actor: Actor, user: str, role: str) -> None:
    """Give ``user`` the ``role`` (administrators); a person not yet enrolled is enrolled from
    their request."""
    policy.allow(actor, "users.manage")
    access.check_role(role)
    state = roles.current(actor.vault)
    identity = state.identities.get(access.check_user(user))
    if identity is None or user not in actor.vault.members():
        enrol(actor, user, [role])
        return
    roles.grant(actor.vault, actor.keys, identity, state.roles.get(user, set()) | {role})
    policy.record(actor, "users.role_added", subject=user, role=role)


def remove_role(actor: Actor, user: str, role: str) -> None:
    """Take ``role`` from ``user`` (administrators); the last administrator stays."""
    policy.allow(actor, "users.manage")
    access.check_role(role)
    state = roles.current(actor.vault)
    if role not in state.roles.get(user, set()):
        msg = f"user '{user}' does not have the {role} role; nothing to remove"
        raise MedPrintError(msg)
    _keep_an_administrator(state, user, role)
    roles.grant(actor.vault, actor.keys, state.identities[user], state.roles[user] - {role})
    policy.record(actor, "users.role_removed", subject=user, roles=[role])


def remove_user(actor: Actor, user: str) -> str:
    """Remove ``user`` for good (administrators): a statement with no roles, their sealed
    master key taken out, then every key rotated so their key opens nothing written from now
    on. Returns the new recovery key (show it once)."""
    policy.allow(actor, "users.manage")
    state = roles.current(actor.vault)
    members = actor.vault.members()
    if user not in members and not state.roles.get(user):
        msg = f"'{user}' is not a member of this vault; 'medprint users list' shows them"
        raise MedPrintError(msg)
    if user == actor.user:
        msg = "you cannot remove yourself; another administrator removes you"
        raise AccessDenied(msg)
    _keep_an_administrator(state, user, access.ADMINISTRATOR)
    if user in state.identities and state.roles.get(user):
        roles.grant(actor.vault, actor.keys, state.identities[user], set())
    recovery = actor.vault.remove_member(user) if user in members else actor.vault.rotate_key()
    vault = actor.vault
    policy.record(actor, "users.removed", subject=user, generation=vault.generation)
    return recovery


def _keep_an_administrator(state: roles.RolesState, user: str, role: str) -> None:
    if role == access.ADMINISTRATOR and state.holders(access.ADMINISTRATOR) <= {user}:
        msg = "this would remove the last administrator; add another administrator first"
        raise AccessDenied(msg)

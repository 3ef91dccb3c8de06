"""Roles as signed statements, chained to the vault's founding key.

Each statement gives one person (their account and public keys) their full set of roles, is
signed by an administrator's personal key, and names the hash of the statement before it. The
first is the founder's own statement, signed by the founding key that the vault and every
member's keystore pin. Anyone can check the chain; only an administrator's keystore can extend
it, so a technician with write access to the data folder cannot make themselves administrator,
and a removed, edited or re-ordered statement breaks the chain.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol

from app.errors import AccessDenied, VaultError
from app.security.identity import PersonalKeys, PublicIdentity
from app.security.signing import utc_now

ADMINISTRATOR = "administrator"
GENESIS = "0" * 64
RECORD = "roles"  # the vault record holding the chain
CHAIN_VERSION = 2


class ChainStore(Protocol):
    """Where the chain lives: the vault (its id, founder, and encrypted records)."""

    @property
    def vault_id(self) -> str: ...

    @property
    def founder(self) -> str: ...

    def put_record(self, name: str, data: bytes) -> None: ...

    def get_record(self, name: str) -> bytes | None: ...


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def statement_hash(statement: dict) -> str:
    return hashlib.sha256(canonical(statement)).hexdigest()


@dataclass
class RolesState:
    """Who holds which role after the last statement, with their public keys."""

    roles: dict[str, set[str]] = field(default_factory=dict)
    identities: dict[str, PublicIdentity] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: str = GENESIS

    def holders(self, role: str) -> set[str]:
        return {u for u, r in self.roles.items() if role in r}

    def identity_by_fingerprint(self, fingerprint: str) -> PublicIdentity | None:
        return next((i for i in self.identities.values() if i.fingerprint == fingerprint), None)


def issue(
    chain: list[dict],
    issuer: PersonalKeys,
    subject: PublicIdentity,
    roles: set[str],
    *,
    vault_id: str,
    founder_fingerprint: str,
) -> dict:
    """A new statement giving ``subject`` exactly ``roles``, signed by ``issuer``.

    Raises :class:`AccessDenied` unless the issuer is an administrator at the chain's head (or
    founds the chain with their own administrator statement).
    """
    state = verify_chain(chain, vault_id=vault_id, founder_fingerprint=founder_fingerprint)
    founding = not chain and issuer.public.fingerprint == founder_fingerprint
    if not founding and issuer.user not in state.holders(ADMINISTRATOR):
        msg = f"only an administrator may give roles; '{issuer.user}' is not one"
        raise AccessDenied(msg)
    body = {
        "seq": state.head_seq + 1,
        "prev": state.head_hash,
        "vault_id": vault_id,
        "subject": subject.to_dict(),
        "roles": sorted(roles),
        "issuer": issuer.user,
        "issuer_key": issuer.public.fingerprint,
        "time_utc": utc_now(),
    }
    signature = base64.b64encode(issuer.sign(canonical(body))).decode("ascii")
    return body | {"signature": signature}


def verify_chain(chain: list[dict], *, vault_id: str, founder_fingerprint: str) -> RolesState:
    """Check every statement (signature, chaining, issuer's authority); the resulting state.

    Raises :class:`VaultError` naming the first statement that fails.
    """
    state = RolesState()
    for number, statement in enumerate(chain, start=1):
        problem = _problem(statement, number, state, vault_id, founder_fingerprint)
        if problem:
            msg = f"the roles record is not trustworthy: statement {number} {problem}; "
            msg += "restore the vault folder from a backup and ask an administrator"
            raise VaultError(msg)
        subject = PublicIdentity.from_dict(statement["subject"])
        state.roles[subject.user] = set(statement["roles"])
        state.identities[subject.user] = subject
        state.head_seq, state.head_hash = number, statement_hash(statement)
    return state


def _problem(
    statement: dict, number: int, state: RolesState, vault_id: str, founder: str
) -> str | None:
    if not isinstance(statement, dict) or "signature" not in statement:
        return "is malformed"
    body = {k: v for k, v in statement.items() if k != "signature"}
    if body.get("seq") != number or body.get("prev") != state.head_hash:
        return "does not follow the one before it (removed, inserted or re-ordered)"
    if body.get("vault_id") != vault_id:
        return "belongs to another vault"
    issuer = _issuer_identity(body, state, number, founder)
    if issuer is None:
        return f"was issued by '{body.get('issuer')}', who was not an administrator then"
    try:
        signature = base64.b64decode(statement["signature"], validate=True)
    except (TypeError, ValueError):
        return "has a malformed signature"
    if not issuer.verify(signature, canonical(body)):
        return "fails its signature (edited or forged)"
    return None


def _issuer_identity(body: dict, state: RolesState, number: int, founder: str):
    """The public signing key the statement must verify with, or None when not entitled."""
    if number == 1:
        subject = body.get("subject", {})
        founding = body.get("issuer_key") == founder and ADMINISTRATOR in body.get("roles", [])
        if founding and subject.get("fingerprint") == founder:
            return PublicIdentity.from_dict(subject).signing_key
        return None
    issuer = state.identities.get(str(body.get("issuer")))
    if issuer is None or ADMINISTRATOR not in state.roles.get(issuer.user, set()):
        return None
    if issuer.fingerprint != body.get("issuer_key"):
        return None
    return issuer.signing_key


def load_chain(store: ChainStore) -> list[dict]:
    """The statements in the vault's roles record; a missing or unsigned record is an error
    (every current vault has one from ``vault init`` on, so it was deleted or replaced)."""
    raw = store.get_record(RECORD)
    if raw is None:
        msg = "the roles record is missing from the vault (deleted?); nobody holds a role "
        msg += "until the vault folder is restored from a backup"
        raise VaultError(msg)
    try:
        data = json.loads(raw)
        version, statements = data.get("version"), data["statements"]
    except (ValueError, KeyError, TypeError, AttributeError):
        version, statements = None, None
    if version != CHAIN_VERSION or not isinstance(statements, list) or not statements:
        msg = "the roles record is not a signed roles chain (replaced, or an old format); "
        msg += "restore the vault folder from a backup"
        raise VaultError(msg)
    return statements


def save_chain(store: ChainStore, chain: list[dict]) -> None:
    data = {"version": CHAIN_VERSION, "statements": chain}
    store.put_record(RECORD, canonical(data))


def current(store: ChainStore) -> RolesState:
    """The verified roles of the vault (raises :class:`VaultError` naming what is wrong)."""
    return verify_chain(
        load_chain(store), vault_id=store.vault_id, founder_fingerprint=store.founder
    )


def grant(
    store: ChainStore, issuer: PersonalKeys, subject: PublicIdentity, roles: set[str]
) -> RolesState:
    """Append a statement giving ``subject`` exactly ``roles``; the new state."""
    chain = load_chain(store)
    chain.append(
        issue(
            chain,
            issuer,
            subject,
            roles,
            vault_id=store.vault_id,
            founder_fingerprint=store.founder,
        )
    )
    state = verify_chain(chain, vault_id=store.vault_id, founder_fingerprint=store.founder)
    save_chain(store, chain)
    return state


def found(store: ChainStore, founder: PersonalKeys) -> RolesState:
    """Start the chain of a new vault: the founder's own administrator statement."""
    first = issue(
        [],
        founder,
        founder.public,
        {ADMINISTRATOR},
        vault_id=store.vault_id,
        founder_fingerprint=store.founder,
    )
    save_chain(store, [first])
    return verify_chain([first], vault_id=store.vault_id, founder_fingerprint=store.founder)

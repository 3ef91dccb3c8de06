"""Keys: this workstation's package signing key, the keys it trusts, and named recipients.

Anyone enrolled may show and export the public keys; trusting or revoking a key and adding a
recipient are an administrator's acts (``keys.manage``). Every export and change is audited
with key IDs only.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import PackageError
from app.security.signing import (
    PublicKey,
    RecipientBook,
    RecipientKey,
    RecipientPublicKey,
    SigningKey,
    TrustStore,
    delete_signing_key,
)
from app.workflow import policy
from app.workflow.actor import Actor

FORMATS = ("pem", "base64")


@dataclass(frozen=True)
class KeyInfo:
    """This workstation's signing key and the state of its trust store."""

    key_id: str
    fingerprint: str
    public_key: str
    revoked: bool
    trusted_keys: list[str]
    revoked_keys: list[str]


def show(actor: Actor) -> KeyInfo:
    """The signing key (created on first use) and the trusted and revoked key IDs."""
    key = SigningKey.load_or_create(paths=actor.paths).public_key
    store = TrustStore(actor.paths)
    return KeyInfo(
        key_id=key.key_id,
        fingerprint=key.display_fingerprint,
        public_key=key.to_base64(),
        revoked=key.fingerprint in store.revoked(),
        trusted_keys=[k.key_id for k in store.trusted()],
        revoked_keys=[r.key_id for r in store.revocations()],
    )


def export_signing_key(actor: Actor, fmt: str = "pem") -> tuple[PublicKey, str]:
    """The public signing key as PEM or base64 text, for the receivers (audited)."""
    policy.allow(actor, "keys.export")
    if fmt not in FORMATS:
        msg = f"unknown key format '{fmt}'; use pem or base64"
        raise PackageError(msg)
    key = SigningKey.load_or_create(paths=actor.paths).public_key
    text = key.to_pem() if fmt == "pem" else key.to_base64() + "\n"
    policy.record(actor, "keys.export", key_id=key.key_id, format=fmt)
    return key, text


def export_recipient_key(actor: Actor) -> tuple[RecipientPublicKey, str]:
    """This workstation's receiving key (X25519) as PEM, to give to senders (audited)."""
    policy.allow(actor, "keys.export")
    key = RecipientKey.load_or_create().public_key
    policy.record(actor, "keys.recipient_export", key_id=key.key_id)
    return key, key.to_pem()


def trust(actor: Actor, source: str, name: str | None = None) -> PublicKey:
    """Trust another workstation's public key (a file or base64 text); administrators."""
    policy.allow(actor, "keys.manage")
    key = PublicKey.load(source)
    TrustStore(actor.paths).add(key, name=name)
    policy.record(actor, "keys.trust", key_id=key.key_id)
    return key


def revoke(actor: Actor, which: str | None = None, reason: str = "") -> tuple[PublicKey, bool]:
    """Revoke a key (ID, fingerprint or key file; default this workstation's own).

    Returns the key and whether it was this workstation's own, which is then removed from the
    keystore (a new one is made on next use). Administrators.
    """
    policy.allow(actor, "keys.manage")
    store = TrustStore(actor.paths)
    own = SigningKey.load()
    key = _key_to_revoke(store, own, which)
    store.revoke(key, reason)
    replaced = own is not None and own.public_key == key
    if replaced:
        delete_signing_key()
    policy.record(actor, "keys.revoke", key_id=key.key_id, own_key=replaced)
    return key, replaced


def _key_to_revoke(store: TrustStore, own: SigningKey | None, which: str | None) -> PublicKey:
    if which:
        key = store.find(which) if _looks_like_id(which) else PublicKey.load(which)
        if key is None:
            msg = f"no trusted key matches '{which}'; pass the key file instead"
            raise PackageError(msg)
        return key
    if own is None:
        msg = "this workstation has no signing key to revoke; name the key to revoke"
        raise PackageError(msg)
    return own.public_key


def _looks_like_id(text: str) -> bool:
    compact = text.replace(" ", "").replace(":", "")
    return 16 <= len(compact) <= 64 and all(c in "0123456789abcdefABCDEF" for c in compact)


def add_recipient(actor: Actor, name: str, source: str) -> RecipientPublicKey:
    """Add a named recipient's receiving public key (a file or base64); administrators."""
    policy.allow(actor, "keys.manage")
    key = RecipientPublicKey.load(source, name)
    RecipientBook(actor.paths).add(name, key)
    policy.record(actor, "keys.recipient_add", recipient=name, key_id=key.key_id)
    return key


def recipients(actor: Actor) -> dict[str, str]:
    """Named recipients and their key IDs."""
    book = RecipientBook(actor.paths)
    return {name: book.get(name).key_id for name in book.names()}

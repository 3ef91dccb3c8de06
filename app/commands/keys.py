"""``medprint keys``: the package signing key, trusted keys, recipients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import PackageError
from app.security import access, audit
from app.security.signing import (
    PublicKey,
    RecipientBook,
    RecipientKey,
    RecipientPublicKey,
    SigningKey,
    TrustStore,
    delete_signing_key,
)
from app.settings import resolve_paths

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction) -> None:
    _register_keys(sub)


# --- keys ---------------------------------------------------------------------------------------


def _register_keys(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="the package signing key, trusted keys, recipients")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="this workstation's key ID and fingerprint (created on first use)"
    )
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_keys_show)
    export = actions.add_parser("export", help="write the public signing key for the receivers")
    export.add_argument("--format", choices=("pem", "base64"), default="pem")
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(func=_keys_export)
    trust = actions.add_parser("trust", help="trust another workstation's key (administrators)")
    trust.add_argument("key", help="public key file or base64")
    trust.add_argument("--name", help="a plain name for the key file, e.g. theatre-2")
    trust.set_defaults(func=_keys_trust)
    revoke = actions.add_parser(
        "revoke", help="revoke a key (default: this workstation's, replaced on next use)"
    )
    revoke.add_argument("key", nargs="?", help="key ID, fingerprint or key file")
    revoke.add_argument("--reason", default="", help="why (kept in the revocation list)")
    revoke.set_defaults(func=_keys_revoke)
    rkey = actions.add_parser(
        "recipient-key", help="this workstation's receiving key (X25519), to give to senders"
    )
    rkey.add_argument("--out", help="file to write (default: standard output)")
    rkey.set_defaults(func=_keys_recipient_key)
    radd = actions.add_parser("recipient-add", help="add a named recipient (administrators)")
    radd.add_argument("name", help="plain name, e.g. print-room")
    radd.add_argument("key", help="their receiving public key: file or base64")
    radd.set_defaults(func=_keys_recipient_add)
    actions.add_parser("recipients", help="list the named recipients").set_defaults(
        func=_keys_recipients
    )


def _keys_show(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    key = SigningKey.load_or_create(paths=paths).public_key
    store = TrustStore(paths)
    info = {
        "key_id": key.key_id,
        "fingerprint": key.display_fingerprint,
        "public_key": key.to_base64(),
        "revoked": key.fingerprint in store.revoked(),
        "trusted_keys": [k.key_id for k in store.trusted()],
        "revoked_keys": [r.key_id for r in store.revocations()],
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"signing key ID   {info['key_id']}{'  (REVOKED)' if info['revoked'] else ''}")
    print(f"fingerprint      {info['fingerprint']}")
    print(f"public key       {info['public_key']}")
    print(f"trusted keys     {', '.join(info['trusted_keys']) or '-'}")
    print(f"revoked keys     {', '.join(info['revoked_keys']) or '-'}")
    return 0


def _keys_export(args: argparse.Namespace) -> int:
    key = SigningKey.load_or_create(paths=resolve_paths()).public_key
    text = key.to_pem() if args.format == "pem" else key.to_base64() + "\n"
    _emit(text, args.out)
    audit.record("keys.export", key_id=key.key_id, format=args.format)
    if args.out:
        print(f"public key {key.key_id} written; fingerprint {key.display_fingerprint}")
    return 0


def _keys_trust(args: argparse.Namespace) -> int:
    access.require(access.current_user(), "keys.manage")
    key = PublicKey.load(args.key)
    TrustStore(resolve_paths()).add(key, name=args.name)
    audit.record("keys.trust", key_id=key.key_id)
    print(f"trusted key {key.key_id} (fingerprint {key.display_fingerprint})")
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    access.require(access.current_user(), "keys.manage")
    paths = resolve_paths()
    store = TrustStore(paths)
    own = SigningKey.load()
    if args.key:
        key = store.find(args.key) if _looks_like_id(args.key) else PublicKey.load(args.key)
        if key is None:
            msg = f"no trusted key matches '{args.key}'; pass the key file instead"
            raise PackageError(msg)
    elif own is not None:
        key = own.public_key
    else:
        msg = "this workstation has no signing key to revoke; name the key to revoke"
        raise PackageError(msg)
    store.revoke(key, args.reason)
    replaced = own is not None and own.public_key == key
    if replaced:
        delete_signing_key()
    audit.record("keys.revoke", key_id=key.key_id, own_key=replaced)
    print(f"revoked key {key.key_id}")
    if replaced:
        print("this workstation's signing key was removed; a new one is created on next use")
    return 0


def _looks_like_id(text: str) -> bool:
    compact = text.replace(" ", "").replace(":", "")
    return 16 <= len(compact) <= 64 and all(c in "0123456789abcdefABCDEF" for c in compact)


def _keys_recipient_key(args: argparse.Namespace) -> int:
    key = RecipientKey.load_or_create().public_key
    _emit(key.to_pem(), args.out)
    audit.record("keys.recipient_export", key_id=key.key_id)
    return 0


def _keys_recipient_add(args: argparse.Namespace) -> int:
    access.require(access.current_user(), "keys.manage")
    key = RecipientPublicKey.load(args.key, args.name)
    RecipientBook(resolve_paths()).add(args.name, key)
    audit.record("keys.recipient_add", recipient=args.name, key_id=key.key_id)
    print(f"recipient '{args.name}' added (key {key.key_id})")
    return 0


def _keys_recipients(args: argparse.Namespace) -> int:
    book = RecipientBook(resolve_paths())
    for name in book.names():
        print(f"{name:24} {book.get(name).key_id}")
    if not book.names():
        print("no recipients")
    return 0


def _emit(text: str, out: str | None) -> None:
    if out:
        Path(out).write_text(text, encoding="ascii")
    else:
        print(text, end="")

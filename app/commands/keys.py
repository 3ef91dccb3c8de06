"""``medprint keys``: the package signing key, trusted keys, recipients."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from app.commands.output import add_json, show
from app.workflow import keys
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("keys", help="the package signing key, trusted keys, recipients")
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="this workstation's key ID and fingerprint (created on first use)"
    )
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    export = actions.add_parser("export", help="write the public signing key for the receivers")
    export.add_argument("--format", choices=keys.FORMATS, default="pem")
    export.add_argument("--out", help="file to write (default: standard output)")
    add_json(export)
    export.set_defaults(func=_export)
    trust = actions.add_parser("trust", help="trust another workstation's key (administrators)")
    trust.add_argument("key", help="public key file or base64")
    trust.add_argument("--name", help="a plain name for the key file, e.g. theatre-2")
    add_json(trust)
    trust.set_defaults(func=_trust)
    revoke = actions.add_parser(
        "revoke",
        help="revoke a key (default: this workstation's, replaced on next use; administrators)",
    )
    revoke.add_argument("key", nargs="?", help="key ID, fingerprint or key file")
    revoke.add_argument("--reason", default="", help="why (kept in the revocation list)")
    add_json(revoke)
    revoke.set_defaults(func=_revoke)
    rkey = actions.add_parser(
        "recipient-key", help="this workstation's receiving key (X25519), to give to senders"
    )
    rkey.add_argument("--out", help="file to write (default: standard output)")
    add_json(rkey)
    rkey.set_defaults(func=_recipient_key)
    radd = actions.add_parser("recipient-add", help="add a named recipient (administrators)")
    radd.add_argument("name", help="plain name, e.g. print-room")
    radd.add_argument("key", help="their receiving public key: file or base64")
    add_json(radd)
    radd.set_defaults(func=_recipient_add)
    listing = actions.add_parser("recipients", help="list the named recipients")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_recipients)


def _show(args: argparse.Namespace) -> int:
    info = keys.show(Actor.current())
    if args.json:
        print(json.dumps(asdict(info), indent=2))
        return 0
    print(f"signing key ID   {info.key_id}{'  (REVOKED)' if info.revoked else ''}")
    print(f"fingerprint      {info.fingerprint}")
    print(f"public key       {info.public_key}")
    print(f"trusted keys     {', '.join(info.trusted_keys) or '-'}")
    print(f"revoked keys     {', '.join(info.revoked_keys) or '-'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    key, text = keys.export_signing_key(Actor.current(), args.format)
    facts = {"key_id": key.key_id, "fingerprint": key.display_fingerprint}
    written = f"public key {key.key_id} written; fingerprint {key.display_fingerprint}"
    _emit(args, text, facts, written)
    return 0


def _trust(args: argparse.Namespace) -> int:
    key = keys.trust(Actor.current(), args.key, args.name)
    facts = {"trusted": key.key_id, "fingerprint": key.display_fingerprint}
    show(args, facts, f"trusted key {key.key_id} (fingerprint {key.display_fingerprint})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    key, replaced = keys.revoke(Actor.current(), args.key, args.reason)
    text = f"revoked key {key.key_id}"
    if replaced:
        text += "\nthis workstation's signing key was removed; a new one is created on next use"
    show(args, {"revoked": key.key_id, "own_key_replaced": replaced}, text)
    return 0


def _recipient_key(args: argparse.Namespace) -> int:
    key, text = keys.export_recipient_key(Actor.current())
    _emit(args, text, {"key_id": key.key_id}, f"receiving key {key.key_id} written")
    return 0


def _recipient_add(args: argparse.Namespace) -> int:
    key = keys.add_recipient(Actor.current(), args.name, args.key)
    facts = {"recipient": args.name, "key_id": key.key_id}
    show(args, facts, f"recipient '{args.name}' added (key {key.key_id})")
    return 0


def _recipients(args: argparse.Namespace) -> int:
    book = keys.recipients(Actor.current())
    if args.json:
        print(json.dumps(book, indent=2))
        return 0
    for name, key_id in book.items():
        print(f"{name:24} {key_id}")
    if not book:
        print("no recipients")
    return 0


def _emit(args: argparse.Namespace, text: str, facts: dict, written: str) -> None:
    """Write the key ``text`` to ``--out`` and say so, or print it (in the JSON with --json)."""
    if args.out:
        Path(args.out).write_text(text, encoding="ascii")
    elif not args.json:
        print(text, end="")
        return
    show(args, facts | {"out": args.out, "key": None if args.out else text}, written)

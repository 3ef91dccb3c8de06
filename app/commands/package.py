"""Signed packages, keys, roles and review, headless.

::

    medprint verify PACKAGE [--trusted-key KEY ...] [--extract DIR] [--json]
    medprint keys show | export [--format pem|base64] [--out FILE]
    medprint keys trust KEY [--name NAME] | revoke [KEY] [--reason TEXT]
    medprint keys recipient-key [--out FILE] | recipient-add NAME KEY | recipients
    medprint users list | add USER ROLE | remove USER [ROLE]
    medprint review status|approve|reject|override CASE --mesh NAME [--qa NAME] ...
    medprint package CASE --out DIR --mesh NAME [--qa NAME] [--file NAME[=PATH] ...] [--zip]

The acting user is always the OS account running the command (``getpass.getuser()``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.progressbar import cli_progress
from app.errors import MedPrintError, PackageError
from app.security import access, audit
from app.security import package as pkg
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
    from app.case import Case


def register(sub: argparse._SubParsersAction) -> None:
    _register_verify(sub)
    _register_keys(sub)
    _register_users(sub)
    _register_review(sub)
    _register_package(sub)


# --- verify -------------------------------------------------------------------------------------


def _register_verify(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify", help="check a print package's signature, files and entries (nothing extracted)"
    )
    parser.add_argument("package", help="package folder, .zip or encrypted .mpkg")
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a trusted public key: file or base64 (repeatable; the trust folder is used too)",
    )
    parser.add_argument("--extract", metavar="DIR", help="after verifying a zip, extract it here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    store = TrustStore(paths)
    trusted = [*store.trusted(), *(PublicKey.load(k) for k in args.trusted_key)]
    recipient = _recipient_key_if_encrypted(Path(args.package))
    with cli_progress("verifying") as progress:
        report = pkg.verify_package(
            args.package, trusted, store.revoked(), recipient_key=recipient, progress=progress
        )
    if args.json:
        print(json.dumps(_report_dict(report), indent=2))
    else:
        _print_report(report)
    if report.ok and args.extract:
        out = pkg.extract_package(
            args.package, args.extract, trusted, store.revoked(), recipient_key=recipient
        )
        print(f"extracted to {out}")
    return 0 if report.ok else 1


def _recipient_key_if_encrypted(path: Path) -> RecipientKey | None:
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        if handle.read(len(pkg.ENC_MAGIC)) != pkg.ENC_MAGIC:
            return None
    return RecipientKey.load()


def _report_dict(report: pkg.VerifyReport) -> dict:
    return {
        "ok": report.ok,
        "path": str(report.path),
        "container": report.container,
        "package_id": report.package_id,
        "case": report.case,
        "key_id": report.key_id,
        "fingerprint": report.fingerprint,
        "files_checked": report.files_checked,
        "bytes_checked": report.bytes_checked,
        "problems": [vars(p) for p in report.problems],
        "ignored": report.ignored,
        "message": report.message,
    }


def _print_report(report: pkg.VerifyReport) -> None:
    if report.ok:
        manifest = report.manifest or {}
        print(f"OK  {report.message}")
        print(f"    case {report.case}, created {manifest.get('created_utc')}")
        if manifest.get("override"):
            print(f"    ADMINISTRATOR OVERRIDE: {manifest['override'].get('kind')}")
        if report.ignored:
            print(f"    ignored desktop metadata files: {', '.join(report.ignored)}")
        return
    print(f"INVALID  {report.path.name}")
    for problem in report.problems:
        print(f"  [{problem.code}] {problem.message}")


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


# --- users --------------------------------------------------------------------------------------


def _register_users(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="roles of the OS accounts (administrators manage them)")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every user and their roles").set_defaults(func=_users_list)
    add = actions.add_parser("add", help="give a user a role")
    add.add_argument("user", help="OS login name")
    add.add_argument("role", choices=access.ROLES)
    add.set_defaults(func=_users_add)
    remove = actions.add_parser("remove", help="take a role (or every role) from a user")
    remove.add_argument("user")
    remove.add_argument("role", nargs="?", choices=access.ROLES)
    remove.set_defaults(func=_users_remove)
    actions.add_parser(
        "bootstrap", help="make yourself the first administrator (only while no roles exist)"
    ).set_defaults(func=_users_bootstrap)


def _users_list(args: argparse.Namespace) -> int:
    from app.security.vault import Vault  # noqa: PLC0415

    roles = access.load_roles(Vault.open())
    for user, held in sorted(roles.items()):
        print(f"{user:24} {', '.join(sorted(held))}")
    if not roles:
        print("no roles assigned")
    return 0


def _users_bootstrap(args: argparse.Namespace) -> int:
    from app.security.vault import Vault  # noqa: PLC0415

    vault = Vault.open()
    access.load_roles(vault)  # the vault's creator, when the audit log names them, comes first
    access.bootstrap(vault, access.current_user())
    print(f"{access.current_user()} is now the administrator")
    return 0


def _users_add(args: argparse.Namespace) -> int:
    access.assign_role(access.current_user(), args.user, args.role)
    print(f"{args.user} is now a {args.role}")
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    access.remove_role(access.current_user(), args.user, args.role)
    print(f"removed {args.role or 'every role'} from {args.user}")
    return 0


# --- review -------------------------------------------------------------------------------------


def _register_review(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("review", help="approve, reject or override one mesh version")
    actions = parser.add_subparsers(dest="review_action", metavar="ACTION", required=True)
    for name, help_text in (
        ("status", "is this mesh version approved, void, rejected or not reviewed"),
        ("approve", "approve this mesh version and QA report (reviewers)"),
        ("reject", "reject this mesh version, saying why (reviewers)"),
        ("override", "administrator override: qa-failure or release-without-approval"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("case", help="case pseudonym")
        action.add_argument("--mesh", required=True, help="mesh file in the case, e.g. mesh/v3.stl")
        action.add_argument("--qa", help="QA report JSON in the case")
        if name in ("approve", "reject"):
            action.add_argument("--comment", default="", help="shown with the decision")
        if name == "override":
            action.add_argument("--kind", required=True, choices=access.OVERRIDE_KINDS)
            action.add_argument("--reason", required=True)
        action.set_defaults(func=_review)


def _case_mesh_and_qa(args: argparse.Namespace) -> tuple[Case, str, dict | None]:
    from app.case import open_case  # noqa: PLC0415

    case = open_case(args.case)
    mesh_sha = access.sha256_hex(case.load_bytes(args.mesh))
    qa = case.load_json(args.qa) if args.qa else None
    return case, mesh_sha, qa


def _review(args: argparse.Namespace) -> int:
    case, mesh_sha, qa = _case_mesh_and_qa(args)
    user = access.current_user()
    if args.review_action == "status":
        qa_sha = access.qa_report_sha256(qa) if qa is not None else None
        status = access.approval_status(case, mesh_sha, qa_sha)
        print(f"{status.state}: {status.message}")
        return 0 if status.approved else 1
    if qa is None:
        msg = "name the QA report the decision is about with --qa"
        raise MedPrintError(msg)
    if args.review_action == "approve":
        rec = access.approve(case, mesh_sha, qa, user, args.comment)
    elif args.review_action == "reject":
        rec = access.reject(case, mesh_sha, qa, user, args.comment)
    else:
        rec = access.record_override(
            case,
            args.kind,
            mesh_sha,
            qa,
            administrator=user,
            reason=args.reason,
        )
    print(f"{args.review_action} recorded for mesh {mesh_sha[:16]}… (record {rec['id']})")
    return 0


# --- package ------------------------------------------------------------------------------------


def _register_package(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "package", help="write a signed print package of an approved mesh to a drive or folder"
    )
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument("--out", required=True, help="target drive or folder")
    parser.add_argument("--mesh", required=True, help="the approved mesh file in the case")
    parser.add_argument("--qa", help="QA report JSON in the case (goes to qa/report.json)")
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="NAME[=PATH]",
        help="another case file to include (G-code, 3MF, HTML report), optionally renamed",
    )
    parser.add_argument(
        "--settings", help="case JSON with {'printer': {...}, 'slicer': {...}} for the manifest"
    )
    parser.add_argument("--zip", action="store_true", help="also write the package as one zip")
    parser.add_argument("--recipient", help="encrypt for this named recipient (only .mpkg)")
    parser.add_argument("--list-drives", action="store_true", help="list removable drives first")
    parser.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    from app.security import drives  # noqa: PLC0415

    if args.list_drives:
        for drive in drives.list_drives():
            print(drive.display)
    from app.case import open_case  # noqa: PLC0415

    case = open_case(args.case)
    settings = case.load_json(args.settings) if args.settings else {}
    extra = {}
    for spec in args.file:
        name, _, target = spec.partition("=")
        extra[name] = target or name
    recipient = RecipientBook(resolve_paths()).get(args.recipient) if args.recipient else None
    target = drives.target_for(args.out)
    with cli_progress("packaging") as progress:
        result, release = pkg.package_case(
            case,
            target.path,
            mesh=args.mesh,
            user=access.current_user(),
            qa=args.qa,
            extra=extra,
            printer=settings.get("printer"),
            slicer=settings.get("slicer"),
            make_zip=args.zip,
            recipient=recipient,
            progress=progress,
        )
    print(f"package written and verified: {result}")
    if release.override is not None:
        print(f"note: released under an administrator override ({release.override['kind']})")
    print("all data is flushed to the drive; it is safe to remove")
    return 0

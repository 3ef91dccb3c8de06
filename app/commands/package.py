"""``medprint package`` and ``medprint verify``: signed print packages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.progressbar import cli_progress
from app.security import access
from app.security import package as pkg
from app.security.signing import (
    PublicKey,
    RecipientBook,
    RecipientKey,
    TrustStore,
)
from app.settings import resolve_paths

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction) -> None:
    _register_verify(sub)
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

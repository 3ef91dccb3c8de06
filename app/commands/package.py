"""``medprint package CASE`` and ``medprint verify PACKAGE``: signed print packages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.progressbar import cli_progress
from app.security.package.verify import VerifyReport
from app.workflow import intake, package
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    _register_verify(sub)
    _register_package(sub)


# --- package ------------------------------------------------------------------------------------


def _register_package(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "package",
        help="write a signed print package of an approved mesh version to a drive or folder",
        description="Package mesh version N of CASE (default: the latest approved) with its "
        "STL and 3MF per part, QA report, G-code and provenance, the approval and every "
        "override it rests on; signed, read back and verified.",
    )
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument("--version", type=int, metavar="N", help="mesh version")
    parser.add_argument(
        "--gcode-version",
        type=int,
        metavar="N",
        help="stored G-code to include (default: the newest sliced from that version, if any)",
    )
    parser.add_argument(
        "--sla-version", type=int, metavar="N", help="stored resin slicing (SL1) to include"
    )
    parser.add_argument("--out", required=True, type=Path, help="target drive or folder")
    parser.add_argument("--zip", action="store_true", help="also write the package as one zip")
    parser.add_argument("--recipient", metavar="NAME", help="encrypt for this recipient (.mpkg)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_package)


def _package(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    with cli_progress("packaging") as progress:
        made = package.build(
            actor,
            case,
            version=args.version,
            gcode_version=args.gcode_version,
            sla_version=args.sla_version,
            out_dir=args.out,
            make_zip=args.zip,
            recipient=args.recipient,
            progress=progress,
        )
    kinds = [o.get("kind") for o in made.overrides]
    if args.json:
        facts = {
            "path": str(made.path),
            "package_id": made.package_id,
            "mesh_version": made.release.mesh_version,
            "mesh_sha256": made.release.mesh_sha256,
            "self_approved": made.release.self_approved,
            "overrides": kinds,
        }
        print(json.dumps(facts, indent=2))
        return 0
    print(f"package written and verified: {made.path}")
    print(f"mesh v{made.release.mesh_version} ({made.release.mesh_sha256})")
    if kinds:
        print(f"note: released under administrator override(s): {', '.join(kinds)}")
    print("all data is flushed to the drive; it is safe to remove")
    return 0


# --- verify -------------------------------------------------------------------------------------


def _register_verify(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="check a print package: signature, files, and that its approval names its mesh",
    )
    parser.add_argument("package", type=Path, help="package folder, .zip or encrypted .mpkg")
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a trusted public key: file or base64 (repeatable; the trust folder is used too)",
    )
    parser.add_argument("--extract", metavar="DIR", type=Path, help="extract a valid zip here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    with cli_progress("verifying") as progress:
        report = package.verify(
            Actor.current(),
            args.package,
            trusted_keys=args.trusted_key,
            extract_to=args.extract,
            progress=progress,
        )
    if args.json:
        print(json.dumps(_report_dict(report), indent=2))
    else:
        _print_report(report)
    return 0 if report.ok else 1


def _report_dict(report: VerifyReport) -> dict:
    manifest = report.manifest or {}
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
        "mesh": manifest.get("mesh"),
        "approval": manifest.get("approval"),
        "overrides": manifest.get("overrides", []),
        "problems": [vars(p) for p in report.problems],
        "extracted": str(report.extracted) if report.extracted else None,
        "message": report.message,
    }


def _print_report(report: VerifyReport) -> None:
    if not report.ok:
        print(f"INVALID  {report.path.name}")
        for problem in report.problems:
            print(f"  [{problem.code}] {problem.message}")
        return
    manifest = report.manifest or {}
    mesh = manifest.get("mesh") or {}
    approval = manifest.get("approval") or {}
    print(f"OK  {report.message}")
    print(f"    case {report.case}, created {manifest.get('created_utc')}")
    print(f"    mesh v{mesh.get('version')} ({mesh.get('sha256')}): {approval.get('meaning')}")
    for override in manifest.get("overrides", []):
        print(
            f"    ADMINISTRATOR OVERRIDE: {override.get('kind')} by {override.get('administrator')}"
        )
    if report.extracted:
        print(f"extracted to {report.extracted}")

"""``medprint review status|approve|reject|override CASE --version N``: the review of one mesh
version (decisions are bound to its hash and QA report; see :mod:`app.workflow.review`)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from app.case import Case
from app.errors import MedPrintError
from app.workflow import intake, review
from app.workflow.actor import Actor

OVERRIDE_KINDS = ("qa-failure", "self-approval", "foreign-gcode")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("review", help="approve, reject or override one mesh version")
    actions = parser.add_subparsers(dest="review_action", metavar="ACTION", required=True)
    for name, help_text in (
        ("status", "is this mesh version approved, void, rejected or not reviewed"),
        ("approve", "approve this mesh version and its QA report (reviewers)"),
        ("reject", "reject this mesh version, saying what to change (reviewers)"),
        ("override", "administrator override: qa-failure, self-approval or foreign-gcode"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("case", help="case pseudonym")
        action.add_argument(
            "--version",
            type=int,
            metavar="N",
            required=name != "override",
            help="mesh version (an override of kind foreign-gcode names a G-code instead)",
        )
        if name in ("approve", "reject"):
            action.add_argument("--comment", default="", help="kept in the vault with the decision")
        if name == "override":
            _override_options(action)
        action.add_argument("--json", action="store_true", help="print the result as JSON")
        action.set_defaults(func=_HANDLERS[name])


def _override_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=OVERRIDE_KINDS)
    parser.add_argument("--reason", required=True, help="why (kept in the vault)")
    gcode = parser.add_mutually_exclusive_group()
    gcode.add_argument(
        "--gcode-version", type=int, metavar="N", help="stored G-code (foreign-gcode)"
    )
    gcode.add_argument("--gcode-file", type=Path, metavar="F", help="a G-code file (foreign-gcode)")


def _status(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    state = review.status(actor, case, args.version)
    if args.json:
        facts = {"version": args.version, "state": state.state, "message": state.message}
        print(json.dumps(facts | {"record": state.record}, indent=2))
    else:
        print(f"{state.state}: {state.message}")
    return 0 if state.approved else 1


def _approve(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    _show(args, review.approve(actor, case, args.version, comment=args.comment))
    return 0


def _reject(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    _show(args, review.reject(actor, case, args.version, comment=args.comment))
    return 0


def _override(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    gcode_sha = _gcode_sha256(args, case) if args.kind == "foreign-gcode" else None
    rec = review.override(
        actor, case, args.kind, reason=args.reason, version=args.version, gcode_sha256=gcode_sha
    )
    _show(args, rec)
    return 0


def _gcode_sha256(args: argparse.Namespace, case: Case) -> str:
    if args.gcode_version is not None:
        return case.load_gcode(args.gcode_version).sha256
    if args.gcode_file is not None:
        try:
            return hashlib.sha256(args.gcode_file.read_bytes()).hexdigest()
        except OSError as exc:
            msg = f"cannot read {args.gcode_file.name}: {exc.strerror}"
            raise MedPrintError(msg) from None
    msg = "a foreign-gcode override names the G-code: give --gcode-version N or --gcode-file F"
    raise MedPrintError(msg)


def _show(args: argparse.Namespace, rec: dict) -> None:
    """The record as stored (JSON), or one line saying what was recorded."""
    if args.json:
        print(json.dumps(rec, indent=2, sort_keys=True))
        return
    what = rec.get("meaning") or f"{rec.get('kind')} override"
    target = f"mesh v{rec['mesh_version']}" if rec.get("mesh_version") else "the G-code"
    print(f"{what} recorded for {target} of {rec['case']} (record {rec['id']})")


_HANDLERS = {"status": _status, "approve": _approve, "reject": _reject, "override": _override}

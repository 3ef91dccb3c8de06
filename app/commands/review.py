"""``medprint review status|approve|reject|override CASE --version N [--meaning M] [--reason T]``:
the review of one mesh version. Each decision is e-signed with the acting account's personal key
and bound to the version's hash and QA report (see :mod:`app.workflow.review`)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from app.case import Case
from app.commands.output import add_json, show
from app.errors import MedPrintError
from app.workflow import comments, compare, intake, review, review_report
from app.workflow.actor import Actor

OVERRIDE_KINDS = ("qa-failure", "self-approval", "foreign-gcode")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("review", help="approve, reject or override one mesh version")
    actions = parser.add_subparsers(dest="review_action", metavar="ACTION", required=True)
    for name, help_text in (
        ("status", "is this mesh version approved, void, rejected or not reviewed"),
        ("approve", "sign the approval of this mesh version and its QA report (reviewers)"),
        ("reject", "sign the rejection of this mesh version, saying what to change (reviewers)"),
        ("override", "administrator's signed override: QA failure, self-approval, foreign G-code"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("case", help="case pseudonym")
        action.add_argument(
            "--version",
            type=int,
            metavar="N",
            required=name != "override",
            help="mesh version (an override for a foreign G-code names a G-code instead)",
        )
        if name != "status":
            _decision_options(action, name)
        if name == "override":
            _override_options(action)
        action.add_argument("--json", action="store_true", help="print the result as JSON")
        action.set_defaults(func=_HANDLERS[name])
    _report_parser(actions)
    _comment_parsers(actions)
    _compare_parser(actions)


def _compare_parser(actions: argparse._SubParsersAction) -> None:
    parser = actions.add_parser("compare", help="how one mesh version differs from another")
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument("--from", dest="older", type=int, metavar="A", required=True)
    parser.add_argument("--to", dest="newer", type=int, metavar="B", required=True)
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    found = compare.compare(actor, case, args.older, args.newer)
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    for name, part in found["parts"].items():
        print(f"{name}: max {part['max_mm']} mm, {len(part['regions'])} moved region(s)")
        for region in part["regions"]:
            centre = ", ".join(f"{v:.1f}" for v in region["centre_lps_mm"])
            print(f"  {region['vertices']} vertices at ({centre}), max {region['max_mm']} mm")
    for step in found["history"]:
        print(f"v{step['version']}: {step['operation']} by {step['author']} at {step['time_utc']}")
    return 0


def _report_parser(actions: argparse._SubParsersAction) -> None:
    report = actions.add_parser("report", help="the signed review report of a version as PDF")
    report.add_argument("case", help="case pseudonym")
    report.add_argument("--version", type=int, metavar="N", required=True, help="mesh version")
    report.add_argument("--out", type=Path, metavar="FILE.pdf", required=True, help="PDF file")
    add_json(report)
    report.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    path = review_report.write(actor, case, args.version, args.out)
    facts = {"case": case.pseudonym, "version": args.version, "report": str(path)}
    show(args, facts, f"review report of mesh v{args.version} of {case.pseudonym}: {path}")
    return 0


def _comment_parsers(actions: argparse._SubParsersAction) -> None:
    add = actions.add_parser("comment", help="pin a comment to a point of a mesh version")
    add.add_argument("case", help="case pseudonym")
    add.add_argument("--version", type=int, metavar="N", required=True, help="mesh version")
    add.add_argument("--at", required=True, metavar="X,Y,Z", help="the point, LPS mm")
    add.add_argument("--text", required=True, help="the comment (kept in the vault only)")
    add.add_argument("--json", action="store_true", help="print the comment as JSON")
    add.set_defaults(func=_comment)
    shown = actions.add_parser("comments", help="list the comments of a case or version")
    shown.add_argument("case", help="case pseudonym")
    shown.add_argument("--version", type=int, metavar="N", help="only this mesh version")
    shown.add_argument("--json", action="store_true", help="print the comments as JSON")
    shown.set_defaults(func=_comments)
    done = actions.add_parser("resolve", help="mark a comment resolved")
    done.add_argument("case", help="case pseudonym")
    done.add_argument("--comment", required=True, metavar="ID", help="the comment's id")
    done.add_argument("--json", action="store_true", help="print the comment as JSON")
    done.set_defaults(func=_resolve)


def _at(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        msg = f"--at takes X,Y,Z in millimetres, not '{text}'"
        raise MedPrintError(msg) from None


def _comment(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    made = comments.add(actor, case, args.version, at=_at(args.at), text=args.text)
    _show_comments(args, [made])
    return 0


def _comments(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    _show_comments(args, comments.listed(actor, case, args.version))
    return 0


def _resolve(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    _show_comments(args, [comments.resolve(actor, case, args.comment)])
    return 0


def _show_comments(args: argparse.Namespace, found: list[dict]) -> None:
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return
    for c in found:
        state = "resolved" if c.get("resolved") else "open"
        at = ", ".join(f"{v:.1f}" for v in c["at_lps_mm"])
        print(f"{c['id']} v{c['version']} ({at}) {state}, {c['author']}: {c['text']}")


_MEANINGS = {
    "approve": (review.APPROVED_FOR_PRINTING, review.APPROVED_WITH_QA_OVERRIDE),
    "reject": review.REJECTION_MEANINGS,
    "override": tuple(review.OVERRIDE_FOR_MEANING),
}


def _decision_options(parser: argparse.ArgumentParser, name: str) -> None:
    choices = _MEANINGS[name]
    helps = {
        "approve": "what your signature means (default: what the approval is: approved with QA "
        "override when QA failed, else approved for printing)",
        "reject": f"what your signature means (default: {choices[0]})",
        "override": "self-approved, or approved with QA override (a foreign G-code needs none)",
    }
    parser.add_argument(
        "--meaning",
        choices=choices,
        default=choices[0] if name == "reject" else None,
        help=helps[name],
    )
    parser.add_argument(
        "--reason",
        "--comment",
        dest="reason",
        default="",
        help="why (a rejection or an override needs it); kept in the vault with the signed "
        "decision, never in packages or logs",
    )


def _override_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=OVERRIDE_KINDS, help="instead of --meaning")
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
    rec = review.approve(actor, case, args.version, comment=args.reason, meaning=args.meaning)
    _show(args, rec)
    return 0


def _reject(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    rec = review.reject(actor, case, args.version, comment=args.reason, meaning=args.meaning)
    _show(args, rec)
    return 0


def _override(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    kind = _kind(args)
    gcode_sha = _gcode_sha256(args, case) if kind == "foreign-gcode" else None
    rec = review.override(
        actor, case, kind, reason=args.reason, version=args.version, gcode_sha256=gcode_sha
    )
    _show(args, rec)
    return 0


def _kind(args: argparse.Namespace) -> str:
    """The override asked for: by --kind, by the G-code named, or by its meaning."""
    foreign = args.gcode_version is not None or args.gcode_file is not None
    kind = args.kind or ("foreign-gcode" if foreign else None)
    kind = kind or review.OVERRIDE_FOR_MEANING.get(args.meaning or "")
    if kind is None:
        msg = "say which override: --meaning 'self-approved' or 'approved with QA override' "
        msg += "(with --version N), or a foreign G-code with --gcode-version N or --gcode-file F"
        raise MedPrintError(msg)
    if args.meaning and review.OVERRIDE_FOR_MEANING.get(args.meaning) != kind:
        msg = f"a {kind} override does not mean '{args.meaning}'; leave out --meaning or --kind"
        raise MedPrintError(msg)
    return kind


def _gcode_sha256(args: argparse.Namespace, case: Case) -> str:
    if args.gcode_version is not None:
        return case.load_gcode(args.gcode_version).sha256
    if args.gcode_file is not None:
        try:
            return hashlib.sha256(args.gcode_file.read_bytes()).hexdigest()
        except OSError as exc:
            msg = f"cannot read the G-code file ({exc.strerror}); check the path"
            raise MedPrintError(msg) from None
    msg = "a foreign-gcode override names the G-code: give --gcode-version N or --gcode-file F"
    raise MedPrintError(msg)


def _show(args: argparse.Namespace, rec: dict) -> None:
    """The record as stored (JSON), or one line saying what was recorded."""
    if args.json:
        print(json.dumps(rec, indent=2, sort_keys=True))
        return
    what = f"{rec.get('kind')} override" if rec.get("type") == "override" else rec["meaning"]
    target = f"mesh v{rec['mesh_version']}" if rec.get("mesh_version") else "the G-code"
    who = f"{rec['printed_name']} ({rec['signer']}, {rec['role']}, key {rec['signer_key'][:16]})"
    print(f"{what}: {target} of {rec['case']}, signed by {who} (record {rec['id']})")


_HANDLERS = {"status": _status, "approve": _approve, "reject": _reject, "override": _override}

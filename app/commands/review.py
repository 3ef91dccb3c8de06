"""``medprint review``: approve, reject or override one mesh version."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.errors import MedPrintError
from app.security import access

if TYPE_CHECKING:
    from app.case import Case


def register(sub: argparse._SubParsersAction) -> None:
    _register_review(sub)


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

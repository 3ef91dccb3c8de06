"""``medprint cases [--search TEXT] [--show-identity] [--json]``: list the vault's cases;
``medprint cases --delete PSEUDONYM`` deletes one for good (administrators)."""

from __future__ import annotations

import argparse
import json

from app.workflow import intake
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cases", help="list the cases in the vault (by pseudonym)")
    parser.add_argument("--search", metavar="TEXT", help="match pseudonym or patient fields")
    parser.add_argument(
        "--show-identity", action="store_true", help="also print patient fields (audited)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--delete",
        metavar="PSEUDONYM",
        help="delete a case for good: its data key is destroyed (administrators)",
    )
    parser.set_defaults(func=_cases)


def _cases(args: argparse.Namespace) -> int:
    actor = Actor.current()
    if args.delete:
        intake.delete_case(actor, args.delete)
        print(f"case {args.delete} deleted: its data key is destroyed and its files removed")
        return 0
    entries = intake.list_cases(actor, args.search, with_identity=args.show_identity)
    rows = [
        {"pseudonym": e.pseudonym, "created": e.created}
        | ({"identity": e.identity} if args.show_identity else {})
        for e in entries
    ]
    if args.json:
        for row in rows:
            row["suitability"] = intake.case_suitability(actor, row["pseudonym"])
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        extra = ""
        if args.show_identity:
            extra = "  " + ", ".join(f"{k}={v}" for k, v in row["identity"].items())
        print(f"{row['pseudonym']}  {row['created']}{extra}")
    if not rows:
        print("no cases")
    return 0

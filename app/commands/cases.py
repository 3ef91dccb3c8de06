"""``medprint cases [--search TEXT] [--show-identity] [--json]``: list the vault's cases."""

from __future__ import annotations

import argparse
import json

from app.security import access, audit
from app.security.vault import Vault


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("cases", help="list the cases in the vault (by pseudonym)")
    parser.add_argument("--search", metavar="TEXT", help="match pseudonym or patient fields")
    parser.add_argument(
        "--show-identity", action="store_true", help="also print patient fields (audited)"
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--delete", metavar="PSEUDONYM", help="delete a case for good: its data key is destroyed"
    )
    parser.set_defaults(func=_cases)


def _cases(args: argparse.Namespace) -> int:
    vault = Vault.open()
    if args.delete:
        access.require(access.current_user(), "case.delete", vault)
        vault.delete_case(args.delete)
        print(f"case {args.delete} deleted: its data key is destroyed and its files removed")
        return 0
    entries = vault.search_cases(args.search) if args.search else vault.list_cases()
    if args.show_identity:
        audit.record("cases.identity_shown", count=len(entries))
    rows = [
        {"pseudonym": e.pseudonym, "created": e.created}
        | ({"identity": e.identity} if args.show_identity else {})
        for e in entries
    ]
    if args.json:
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

"""``medprint audit verify|show|export``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.workflow import records
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit", help="verify, show or export the audit log")
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="check the chain, signatures, head and your anchors; syslog delivery"
    )
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=_verify)
    show = actions.add_parser("show", help="print the records")
    show.add_argument("--last", type=int, default=0, help="only the last N records")
    show.add_argument("--case", help="only records of this case pseudonym")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    export = actions.add_parser(
        "export", help="write the records as CSV or JSON (reviewers, administrators)"
    )
    export.add_argument("--format", choices=records.FORMATS, default="csv")
    export.add_argument("--last", type=int, default=0, help="only the last N records")
    export.add_argument("--case", help="only records of this case pseudonym")
    export.add_argument("--out", help="output file (default: standard output)")
    export.set_defaults(func=_export)


def _verify(args: argparse.Namespace) -> int:
    result = records.verify_log(Actor.current())
    if args.json:
        out = {"ok": result.ok, "records": result.records, "message": result.message}
        out |= {"first_bad": result.first_bad, "notes": result.notes}
        print(json.dumps(out, indent=2))
    else:
        print("\n".join([result.message, *result.notes]))
    return 0 if result.ok else 1


def _show(args: argparse.Namespace) -> int:
    rows = records.read_log(Actor.current(), case=args.case, last=args.last)
    if args.json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return 0
    for rec in rows:
        facts = json.dumps(rec.get("facts", {}), sort_keys=True)
        print(
            f"{rec['seq']:>6} {rec['time']} {rec['user']:12} {rec['action']:24} "
            f"{rec['case'] or '-':10} {facts}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    text = records.export_log(Actor.current(), args.format, case=args.case, last=args.last)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0

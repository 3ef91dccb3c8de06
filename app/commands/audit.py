"""``medprint audit verify|show|export``."""

from __future__ import annotations

import argparse
import json
import sys

from app.security import audit


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit", help="verify, show or export the audit log")
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    actions.add_parser("verify", help="check the hash chain, MACs and sealed head").set_defaults(
        func=_verify
    )
    show = actions.add_parser("show", help="print the records")
    show.add_argument("--last", type=int, default=0, help="only the last N records")
    show.add_argument("--case", help="only records of this case pseudonym")
    show.set_defaults(func=_show)
    export = actions.add_parser("export", help="write the records as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="csv")
    export.add_argument("--out", help="output file (default: standard output)")
    export.set_defaults(func=_export)


def _verify(args: argparse.Namespace) -> int:
    result = audit.verify()
    print(result.message)
    audit.record("audit.verify", ok=result.ok, records=result.records)
    return 0 if result.ok else 1


def _selected(args: argparse.Namespace) -> list[dict]:
    records = audit.read_records()
    if getattr(args, "case", None):
        records = [r for r in records if r.get("case") == args.case]
    if getattr(args, "last", 0):
        records = records[-args.last :]
    return records


def _show(args: argparse.Namespace) -> int:
    for rec in _selected(args):
        facts = json.dumps(rec.get("facts", {}), sort_keys=True)
        print(
            f"{rec['seq']:>6} {rec['time']} {rec['user']:12} {rec['action']:24} {rec['case'] or '-':10} {facts}"
        )
    return 0


def _export(args: argparse.Namespace) -> int:
    text = audit.export(_selected(args), args.format)
    if args.out:
        from pathlib import Path  # noqa: PLC0415

        Path(args.out).write_text(text, encoding="utf-8")
        audit.record("audit.export", format=args.format, records=text.count("\n"))
    else:
        sys.stdout.write(text)
    return 0

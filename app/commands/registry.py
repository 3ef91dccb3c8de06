"""``medprint registry export --out FILE.csv``: one row per ordered case with pseudonyms, coded
fields and years only (in the spirit of the ACR/RSNA 3D Printing Registry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands.output import add_json, show
from app.workflow import order
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("registry", help="export the 3D printing registry (no identity)")
    actions = parser.add_subparsers(dest="registry_action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write the registry as CSV")
    export.add_argument("--out", type=Path, metavar="FILE.csv", required=True)
    add_json(export)
    export.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    path = order.export_registry(Actor.current(), args.out)
    show(args, {"registry": str(path)}, f"registry written: {path}")
    return 0

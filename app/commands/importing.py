"""``medprint import PATH [--series KEY|UID] [--json]``: import a series into the vault."""

from __future__ import annotations

import argparse
import json

from app.commands.progressbar import cli_progress
from app.workflow import intake
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="import a DICOM series into the vault as a new case")
    parser.add_argument("path", help="folder, drive, DICOMDIR or zip file")
    parser.add_argument(
        "--series", help="series key or UID from 'medprint scan' (default: the largest CT)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    with cli_progress("importing") as progress:
        case = intake.import_path(Actor.current(), args.path, args.series, progress=progress)
    facts = case.series_facts()
    if args.json:
        out = {
            "case": case.pseudonym,
            "modality": facts["modality"],
            "shape": facts["geometry"]["shape"],
            "spacing": facts["geometry"]["spacing"],
            "warnings": facts["warnings"],
            "suitability": facts.get("suitability", []),
        }
        print(json.dumps(out, indent=2))
    else:
        print(case.pseudonym)
        for warning in facts["warnings"]:
            print(f"warning: {warning}")
        for warning in facts.get("suitability", []):
            print(f"fit to print? {warning['reason']}")
    return 0

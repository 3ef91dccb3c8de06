"""``medprint import PATH [--series KEY|UID] [--case CASE] [--json]``: import a series into the
vault as a new case, or a 3D model (Encapsulated STL) as a mesh version of its case."""

from __future__ import annotations

import argparse
import json

from app.commands.progressbar import cli_progress
from app.workflow import model_import
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="import a DICOM series into the vault as a new case")
    parser.add_argument("path", help="folder, drive, DICOMDIR or zip file")
    parser.add_argument(
        "--series",
        help="series or model key (or UID) from 'medprint scan' (default: the model found, "
        "else the largest CT)",
    )
    parser.add_argument("--case", help="the case a model goes to, when several hold its study")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_import)


def _import(args: argparse.Namespace) -> int:
    with cli_progress("importing") as progress:
        got = model_import.import_path(
            Actor.current(), args.path, args.series, case=args.case, progress=progress
        )
    case = got.case
    facts = case.series_facts()
    if args.json:
        out = {
            "case": case.pseudonym,
            "new_case": got.new_case,
            "mesh_version": got.mesh_version,
            "parts": got.parts,
            "modality": facts["modality"],
            "shape": facts["geometry"]["shape"],
            "spacing": facts["geometry"]["spacing"],
            "warnings": facts["warnings"],
            "suitability": facts.get("suitability", []),
        }
        print(json.dumps(out, indent=2))
    else:
        print(case.pseudonym)
        if got.mesh_version is not None:
            print(f"3D model imported as mesh v{got.mesh_version} ({len(got.parts)} part(s))")
        for warning in facts["warnings"]:
            print(f"warning: {warning}")
        for warning in facts.get("suitability", []):
            print(f"fit to print? {warning['reason']}")
    return 0

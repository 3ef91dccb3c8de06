"""``medprint deid IN OUT [--options]``: de-identified DICOM copies, verified after writing.

Output files get opaque names (``study-01/series-01/0001.dcm``); after writing, every output
file is re-read and searched for the inputs' names, IDs, dates, institution and UIDs, and the
output folder appears only when none is found. ``--json`` prints::

    {"out": "...", "files": 170, "studies": 1, "series": 1, "defaced_series": 0,
     "masked_files": 0, "checked_values": 185, "pseudonyms": ["C-7K3M-Q9"],
     "options": ["113100", ...], "rejected": [{"file": "rel/path", "reason": "..."}],
     "notes": ["..."]}

The UID key comes from the OS keystore (``deid-uid-key``, created on first use), so the same
input UID gives the same output UID on every run of this installation. The map of original to
new UIDs is added to the vault's encrypted record ``deid-uid-map`` (JSON object); it is never
written anywhere else. De-identifying needs the technician or administrator role.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.progressbar import cli_progress
from app.errors import MedPrintError
from app.security.deid.pixels import Rect
from app.security.deid.profile import DeidOptions
from app.workflow import intake
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "deid",
        help="write de-identified DICOM copies (PS3.15 Annex E) and verify them",
        description="Write de-identified DICOM copies (PS3.15 Annex E), verified after writing.",
    )
    parser.add_argument("input", type=Path, metavar="IN", help="folder of DICOM files, or one file")
    parser.add_argument("output", type=Path, metavar="OUT", help="new or empty output folder")
    parser.add_argument(
        "--pseudonym", help="pseudonym of the one patient (default: new per patient)"
    )
    parser.add_argument(
        "--retain-dates",
        action="store_true",
        help="Retain Longitudinal Temporal Information, modified dates (shifted per patient)",
    )
    parser.add_argument("--date-shift", type=int, metavar="DAYS", help="shift for --retain-dates")
    parser.add_argument(
        "--clean-descriptors", action="store_true", help="keep descriptions, cleaned"
    )
    parser.add_argument(
        "--retain-device", action="store_true", help="keep device identity (serials, station)"
    )
    parser.add_argument(
        "--retain-patient-characteristics",
        action="store_true",
        help="keep sex, age, size, weight",
    )
    parser.add_argument(
        "--deface", action="store_true", help="remove the face soft tissue of head CT/MR"
    )
    parser.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="X,Y,W,H",
        help="blank this pixel rectangle on every image at risk of burned-in text (repeatable)",
    )
    parser.add_argument(
        "--confirm-burned-in",
        action="store_true",
        help="the images at risk of burned-in text were checked and show no identifying text",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON summary")
    parser.set_defaults(func=_deid)


def _rect(text: str) -> Rect:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        msg = f"--mask needs X,Y,WIDTH,HEIGHT in pixels, got '{text}'"
        raise MedPrintError(msg) from None
    if w <= 0 or h <= 0:
        msg = "--mask width and height must be positive"
        raise MedPrintError(msg)
    return Rect(x, y, w, h)


def _deid(args: argparse.Namespace) -> int:
    options = DeidOptions(
        retain_longitudinal_temporal=args.retain_dates,
        clean_descriptors=args.clean_descriptors,
        retain_device_identity=args.retain_device,
        retain_patient_characteristics=args.retain_patient_characteristics,
        deface=args.deface,
    )
    with cli_progress("de-identifying") as progress:
        done = intake.deidentify(
            Actor.current(),
            args.input,
            args.output,
            options,
            pseudonym=args.pseudonym,
            date_shift_days=args.date_shift,
            masks=[_rect(text) for text in args.mask],
            confirm_burned_in=args.confirm_burned_in,
            progress=progress,
        )
    report = done.report
    summary = {
        "out": str(report.out_dir),
        "files": len(report.written),
        "studies": report.studies,
        "series": report.series,
        "defaced_series": report.defaced_series,
        "masked_files": report.masked_files,
        "checked_values": report.checked_values,
        "pseudonyms": report.pseudonyms,
        "options": done.codes,
        "rejected": [{"file": f, "reason": r} for f, r in report.rejected],
        "notes": report.notes,
        "uid_map_in_vault": done.uid_map_in_vault,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"{summary['files']} files de-identified into {summary['out']} "
        f"({summary['studies']} studies, {summary['series']} series); "
        f"verified: none of {summary['checked_values']} input identifiers remains"
    )
    print(f"pseudonym(s): {', '.join(report.pseudonyms) or '-'}")
    for file, reason in report.rejected:
        print(f"skipped {file}: {reason}")
    for note in report.notes:
        print(f"note: {note}")
    return 0

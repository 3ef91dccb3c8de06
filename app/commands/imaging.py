"""``medprint scan PATH [--json] [--identity]`` and ``medprint convert PATH OUT [--series KEY]``.

``scan`` lists patients → studies → series (and every rejected file with its reason) without
reading pixel data. By default it prints no names, IDs, dates, descriptions or UIDs: a series
is named by its key, which ``convert`` and ``import`` accept; ``--identity`` adds those fields
for the person at the workstation. ``--json`` prints the stable format documented in
:mod:`app.imaging.scan` (``medprint-scan/1``).

``convert`` (``--json``) loads one series with its corrected geometry (sorted, de-sheared, uniform spacing)
and writes it as NRRD or NIfTI, like dcm2niix does; a NIfTI/NRRD input is converted too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.commands.output import add_json, show
from app.commands.progressbar import cli_progress
from app.workflow import intake
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    scan_parser = sub.add_parser("scan", help="list the patients, studies and series in a folder")
    scan_parser.add_argument("path", nargs="+", help="folder, drive, DICOMDIR or zip file")
    scan_parser.add_argument("--json", action="store_true", help="print the medprint-scan/1 JSON")
    scan_parser.add_argument(
        "--identity",
        action="store_true",
        help="also print names, IDs, dates, descriptions and UIDs (for the person importing)",
    )
    scan_parser.set_defaults(func=_scan)

    convert = sub.add_parser("convert", help="write a series as NRRD or NIfTI with its geometry")
    convert.add_argument("path", help="folder, DICOMDIR, zip, or a .nrrd/.nii.gz volume")
    convert.add_argument("out", help="output file: .nrrd, .nii or .nii.gz")
    convert.add_argument("--series", help="series key or UID from 'medprint scan'")
    add_json(convert)
    convert.set_defaults(func=_convert)


def _scan(args: argparse.Namespace) -> int:
    with cli_progress("scanning") as progress:
        result = intake.scan(Actor.current(), args.path, progress=progress)
    if args.json:
        print(json.dumps(result.to_json(identity=args.identity), indent=2, ensure_ascii=False))
        return 0
    for line in format_scan(result, identity=args.identity):
        print(line)
    return 0


def format_scan(result, *, identity: bool = False) -> list[str]:
    """The human-readable listing: one line per patient, study, series and rejected file."""
    lines: list[str] = []
    for patient in result.patients:
        who = ""
        if identity:
            p = patient.identity
            who = (
                f"  {p.get('patient_name', '')}  id={p.get('patient_id', '')}  "
                f"born={p.get('birth_date', '')}  {p.get('sex', '')}"
            )
        lines.append(f"{patient.key}{who}")
        for study in patient.studies:
            what = ""
            if identity:
                st = study.identity
                what = f"  {st.get('study_date', '')}  {st.get('study_description', '')}"
            lines.append(f"  {study.key}{what}")
            for s in study.series:
                lines.append("    " + _series_line(s, identity))
                lines.extend(f"        note: {note}" for note in s.notes)
    if not result.patients:
        lines.append("no image series found")
    for model in result.models:
        uid = f"  series {model.series_uid}" if identity else ""
        lines.append(f"3D model {model.key}: {model.kind}, {len(model.sources)} part(s){uid}")
    if result.rejected:
        lines.append(f"rejected ({len(result.rejected)}):")
        lines.extend(f"  {r.file}: {r.reason}" for r in result.rejected)
    return lines


def _series_line(s, identity: bool) -> str:
    col, row, step = s.spacing
    spacing = "×".join("?" if v is None else f"{v:.3g}" for v in (col, row, step))
    text = (
        f"{s.key}  #{s.number if s.number is not None else '-'}  {s.modality:<3} "
        f"{s.body_part or '':<10} {s.slice_count:>4} slices  {s.columns}×{s.rows}  {spacing} mm"
    )
    if identity:
        text += f"  {s.identity.get('series_description', '')}  uid={s.series_uid}"
    return text


def _convert(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with cli_progress("converting") as progress:
        volume = intake.convert(
            Actor.current(), Path(args.path), out, args.series, progress=progress
        )
    ni, nj, nk = volume.size_ijk
    si, sj, sk = volume.spacing
    facts = {
        "out": out.name,
        "size_ijk": [ni, nj, nk],
        "spacing_mm": [si, sj, sk],
        "warnings": list(volume.warnings),
    }
    text = "".join(f"warning: {w}\n" for w in volume.warnings)
    text += f"wrote {out.name}: {ni}×{nj}×{nk} voxels, {si:.4g}×{sj:.4g}×{sk:.4g} mm, LPS geometry"
    show(args, facts, text)
    return 0

"""``medprint mesh``: build a mesh version of a case, list its versions, export one.

Grammar (``medprint COMMAND [SUBCOMMAND] CASE --version N``)::

    medprint mesh CASE [--segment NAME ...] [--settings print|review] [--smooth F]
                  [--decimate R | --triangles N] [--no-label] [--engrave]
                  [--build-volume X,Y,Z] [--tolerance MM] [--out FILE|DIR] [--json]
    medprint mesh versions CASE [--json]
    medprint mesh export CASE --version N --out FILE|DIR [--format F] [--part NAME] [--json]
    medprint mesh --volume IMAGE --threshold LOW[:HIGH] | --mask MASK  --out FILE [--json]

``mesh CASE`` builds one part per segment (default: the first) with the named settings
(``print``: smoothed, 80 % decimated, the pseudonym embossed; ``review``: every triangle, no
label; both lighter on coarse series), checks it, stores it as a new version and prints its QA
report; ``--out`` also exports it (a folder gets ``<pseudonym>_<part>.<ext>``). Edits are
``medprint edit``. Without a case, ``--volume``/``--mask`` mesh a plain image file: nothing is
stored or labelled (the label is a case pseudonym) and ``--out`` is required.

Exit status of a build: 0 when the QA report passes, 1 when the mesh fails a check.

Examples::

    medprint mesh C-7K3M-Q9 --segment bone --out exports/
    medprint mesh C-7K3M-Q9 --settings review --json
    medprint mesh export C-7K3M-Q9 --version 3 --out exports/ --format 3mf
    medprint mesh --volume ct.nrrd --threshold 226 --out bone.stl --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands.progressbar import cli_progress
from app.errors import MeshError
from app.tools.mesh.stages import StageMeter
from app.workflow.actor import Actor
from app.workflow.mesh_source import surface_ahead

if TYPE_CHECKING:
    from app.tools.mesh.qa import QAReport

# The mesh libraries (trimesh, VTK: about a second) are imported by the handlers, not to build
# the parser: a file build makes its surface meanwhile. These are the pipeline's PRESETS;
# tests/mesh/test_mesh_cli.py checks the two lists agree.
ACTIONS = ("versions", "export")
PRESET_NAMES = ("print", "review")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mesh",
        help="build a checked mesh version of a case (or list / export versions)",
        usage="medprint mesh [versions|export] CASE [options]",
    )
    parser.add_argument("words", nargs="*", metavar="[versions|export] CASE", help="case pseudonym")
    build = parser.add_argument_group("build")
    build.add_argument(
        "--segment", action="append", help="segment name (repeat for several parts; default first)"
    )
    build.add_argument("--settings", choices=PRESET_NAMES, default="print", help="named settings")
    build.add_argument("--smooth", type=float, help="smoothing 0..1 instead of the settings'")
    build.add_argument(
        "--decimate", type=float, help="fraction of triangles removed (0.8 keeps 20%%)"
    )
    build.add_argument("--triangles", type=int, help="decimate to this many triangles instead")
    build.add_argument("--no-label", action="store_true", help="no pseudonym label")
    build.add_argument("--engrave", action="store_true", help="engrave the label (default emboss)")
    build.add_argument("--build-volume", default="250,210,210", help="printer X,Y,Z in mm")
    build.add_argument("--tolerance", type=float, help="QA deviation tolerance in mm (0.5)")
    files = parser.add_argument_group("without a case")
    files.add_argument("--volume", help="image file (.nrrd, .nii.gz) instead of a case")
    files.add_argument("--threshold", help="with --volume: LOW[:HIGH] in image units, e.g. 226")
    files.add_argument("--mask", help="a mask image (nonzero = inside) instead of a case")
    out = parser.add_argument_group("export")
    out.add_argument("--version", type=int, help="with export: the mesh version")
    out.add_argument("--part", help="with export: one part (default: all parts in one file)")
    out.add_argument("--out", help="output file (.stl/.3mf/.obj/.ply) or folder")
    out.add_argument("--format", help="format when --out is a folder (default stl)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--stages", action="store_true", help="also report each stage's time and peak memory"
    )
    parser.set_defaults(func=_mesh)


def _mesh(args: argparse.Namespace) -> int:
    action, case_name = _words(args.words)
    if action == "versions":
        return _versions(case_name, args)
    if action == "export":
        return _export(case_name, args)
    if case_name is None:
        return _build_file(args)
    return _build(case_name, args)


def _words(words: list[str]) -> tuple[str, str | None]:
    action = words[0] if words and words[0] in ACTIONS else "build"
    rest = words[1:] if action != "build" else words
    if len(rest) > 1 or (action != "build" and not rest):
        msg = "usage: medprint mesh [versions|export] CASE [options] (one case pseudonym)"
        raise MeshError(msg)
    return action, rest[0] if rest else None


# ---------------------------------------------------------------------------------------------
# build


def _changes(args: argparse.Namespace) -> dict:
    changes: dict = {}
    if args.smooth is not None:
        changes["smoothing"] = args.smooth
    if args.decimate is not None:
        changes["reduction"] = args.decimate or None
    if args.triangles is not None:
        changes |= {"target_triangles": args.triangles, "reduction": None}
    if args.no_label:
        changes["label"] = False
    if args.engrave:
        changes["label_mode"] = "engrave"
    if args.tolerance is not None:
        changes["tolerance_mm"] = args.tolerance
    return changes


def _build(case_name: str, args: argparse.Namespace) -> int:
    from app.workflow import intake, mesh  # noqa: PLC0415 (the mesh libraries, see PRESET_NAMES)

    actor = Actor.current()
    case = intake.open_case(actor, case_name)
    with cli_progress("mesh") as progress:
        made = mesh.build(
            actor,
            case,
            segments=args.segment,
            settings=args.settings,
            changes=_changes(args),
            build_volume_mm=_build_volume(args.build_volume),
            progress=progress,
        )
    path = mesh.export(actor, case, made.number, args.out, args.format) if args.out else None
    if args.json:
        summary = {"case": case.pseudonym, "version": made.number, "sha256": made.sha256}
        print(json.dumps(summary | _report(made.qa, made.info, path), indent=2))
    else:
        print(
            f"{case.pseudonym}: mesh v{made.number} ({', '.join(made.parts)}), sha256 {made.sha256}"
        )
        _print_build(made.qa, made.info, path)
    return 0 if made.qa.passed else 1


def _build_volume(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        msg = "--build-volume takes three numbers X,Y,Z in mm, e.g. 250,210,210"
        raise MeshError(msg)
    return values  # type: ignore[return-value]


def _report(qa: QAReport, info: dict, path: Path | None) -> dict:
    return {"qa": qa.to_dict(), "build": info, "file": str(path) if path else None}


def _print_build(qa: QAReport, info: dict, path: Path | None) -> None:
    print("\n".join(qa.lines()))
    for name, facts in info.get("builds", {}).items():
        s = facts["smoothing"]
        print(
            f"  {name}: smoothing {s['factor']:g}, volume {s['volume_change_percent']:+.2f}%, "
            f"deviation mean {s['mean_deviation_mm']:.3f} mm, max {s['max_deviation_mm']:.3f} mm"
        )
        if label := facts.get("label"):
            print(
                f"  {name}: label {label['mode']} {label['text']} "
                f"({label['height_mm']:g} mm high, {label['depth_mm']:g} mm deep)"
            )
    if path:
        print(f"wrote {path}")


def _build_file(args: argparse.Namespace) -> int:
    if not args.out:
        msg = "without a case give --out FILE (nothing is stored, no pseudonym names the file)"
        raise MeshError(msg)
    meter = StageMeter() if args.stages else None
    surface = surface_ahead(args.volume, args.threshold, args.mask, meter=meter)
    from app.workflow import mesh  # noqa: PLC0415 (imported while the surface is made)

    with cli_progress("mesh") as progress:
        made = mesh.build_file(
            Actor.current(), Path(args.out), pending=surface, settings=args.settings,
            changes=_changes(args), build_volume_mm=_build_volume(args.build_volume),
            fmt=args.format, meter=meter, progress=progress,
        )  # fmt: skip
    if args.json:
        print(json.dumps(_report(made.built.qa, made.info, made.path), indent=2))
    else:
        _print_build(made.built.qa, made.info, made.path)
    return 0 if made.built.qa.passed else 1


# ---------------------------------------------------------------------------------------------
# versions, export


def _versions(case_name: str, args: argparse.Namespace) -> int:
    from app.workflow import intake, mesh  # noqa: PLC0415 (the mesh libraries, see PRESET_NAMES)

    actor = Actor.current()
    case = intake.open_case(actor, case_name)
    found = mesh.versions(actor, case)
    if args.json:
        print(json.dumps([v.to_dict() for v in found], indent=2))
        return 0
    if not found:
        print(f"{case.pseudonym}: no mesh version yet ('medprint mesh {case.pseudonym}')")
    for v in found:
        origin = f"{v.operation} of v{v.parent_version}" if v.parent_version else v.operation
        verdict = "QA pass" if v.qa_passed else f"QA FAIL ({', '.join(v.qa_failed)})"
        print(
            f"v{v.number}  {origin:<16} {', '.join(v.parts):<20} {v.triangles:>8} triangles  "
            f"{verdict}  by {v.author or '?'}  {v.time_utc or ''}  sha256 {v.sha256[:12]}…"
        )
    return 0


def _export(case_name: str, args: argparse.Namespace) -> int:
    if args.version is None or not args.out:
        msg = "medprint mesh export CASE needs --version N and --out FILE|FOLDER"
        raise MeshError(msg)
    from app.workflow import intake, mesh  # noqa: PLC0415 (the mesh libraries, see PRESET_NAMES)

    actor = Actor.current()
    case = intake.open_case(actor, case_name)
    path = mesh.export(actor, case, args.version, args.out, args.format, part=args.part)
    if args.json:
        print(json.dumps({"case": case.pseudonym, "version": args.version, "file": str(path)}))
    else:
        print(f"{case.pseudonym}: mesh v{args.version} written to {path}")
    return 0

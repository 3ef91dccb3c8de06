"""``medprint slice MESH --printer P --out F.gcode`` and ``medprint printers [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from app.errors import PrintingError
from app.printing.profiles import get_material, get_printer, load_materials, load_printers
from app.printing.slicer import Part, SliceSettings, engines, slice_parts


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("slice", help="slice a mesh into G-code for a printer profile")
    parser.add_argument("mesh", type=Path, help="mesh file (STL, OBJ, PLY, 3MF)")
    parser.add_argument("--printer", required=True, help="printer profile id or name")
    parser.add_argument("--material", help="material profile (default: the printer's)")
    parser.add_argument("--engine", choices=["builtin", "prusaslicer"], default="builtin")
    parser.add_argument("--name", default="part", help="object name written into the G-code")
    parser.add_argument("--layer-height", type=float, default=0.2, metavar="MM")
    parser.add_argument("--first-layer-height", type=float, default=None, metavar="MM")
    parser.add_argument("--perimeters", type=int, default=2)
    parser.add_argument("--infill", type=float, default=15.0, metavar="PERCENT")
    parser.add_argument("--pattern", choices=["grid", "rectilinear"], default="grid")
    parser.add_argument("--supports", action="store_true", help="add supports under overhangs")
    parser.add_argument(
        "--support-angle",
        type=float,
        default=45.0,
        metavar="DEG",
        help="support overhangs beyond this angle from vertical",
    )
    parser.add_argument("--brim", type=float, default=0.0, metavar="MM", help="brim width")
    parser.add_argument("--out", type=Path, required=True, help="G-code file to write")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=_slice)

    printers = sub.add_parser("printers", help="list printer (and material) profiles")
    printers.add_argument("--json", action="store_true")
    printers.add_argument("--materials", action="store_true", help="list material profiles")
    printers.set_defaults(func=_printers)


def _load_mesh(path: Path, name: str) -> Part:
    import trimesh  # noqa: PLC0415 (slow import, only for this command)

    if not path.is_file():
        msg = f"mesh file {path} not found; check the path"
        raise PrintingError(msg)
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many kinds for bad files
        msg = (
            f"cannot read {path.name} as a mesh ({exc.__class__.__name__}); export STL, OBJ or PLY"
        )
        raise PrintingError(msg) from None
    if len(getattr(mesh, "faces", [])) == 0:
        msg = f"{path.name} holds no triangles; export the mesh again"
        raise PrintingError(msg)
    return Part.from_trimesh(name, mesh)


def _slice(args: argparse.Namespace) -> int:
    from app.commands.progressbar import cli_progress  # noqa: PLC0415

    printer = get_printer(args.printer)
    material = get_material(args.material or printer.default_material)
    settings = SliceSettings(
        layer_height=args.layer_height,
        first_layer_height=args.first_layer_height or max(args.layer_height, 0.2),
        perimeters=args.perimeters,
        infill_density=args.infill,
        infill_pattern=args.pattern,
        supports=args.supports,
        support_angle=args.support_angle,
        brim_width=args.brim,
    )
    part = _load_mesh(args.mesh, args.name)
    with cli_progress(f"slicing ({args.engine})") as progress:
        result = slice_parts(
            [part], printer, material, settings, engine=args.engine, progress=progress
        )
    result.write(args.out)
    summary = result.summary
    if args.json:
        data = {"engine": result.engine, "out": str(args.out), **asdict(summary)}
        print(json.dumps(data, indent=2))
    else:
        print(f"{args.out}: {printer.name}, {material.name}, engine {result.engine}")
        for line in summary.lines():
            print(f"  {line}")
    for warning in result.warnings:
        print(f"medprint: warning: {warning}", file=sys.stderr)
    return 0


def _printers(args: argparse.Namespace) -> int:
    if args.materials:
        materials = load_materials()
        if args.json:
            print(
                json.dumps(
                    [{**m.to_dict(), "origin": m.origin} for m in materials.values()], indent=2
                )
            )
        else:
            for m in materials.values():
                print(
                    f"{m.id:24} {m.name:28} {m.temperature:g}/{m.bed_temperature:g} °C ({m.origin})"
                )
        return 0
    printers = load_printers()
    if args.json:
        data = {
            "printers": [{**p.to_dict(), "origin": p.origin} for p in printers.values()],
            "engines": [asdict(e) for e in engines()],
        }
        print(json.dumps(data, indent=2))
        return 0
    for p in printers.values():
        x, y, z = p.build_volume
        print(f"{p.id:24} {p.name:46} {x:g}x{y:g}x{z:g} mm  {p.connection.kind} ({p.origin})")
    for e in engines():
        state = f"available {e.version}".strip() if e.available else f"unavailable: {e.hint}"
        print(f"engine {e.name:17} {state}")
    return 0

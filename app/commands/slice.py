"""``medprint slice CASE [--version N] --printer P [--extruder PART=N ...] [--out FILE]`` and
``medprint printers``.

Slicing stores the G-code in the case with its provenance (the mesh version and its SHA-256,
the profiles, the engine and the settings); ``--out`` also writes a copy. A resin printer
(``--printer prusa-sl1s``) is sliced by PrusaSlicer's SLA engine into a label-stripped ``.sl1``
archive stored the same way (``--no-supports``, ``--no-pad``, ``--rotate-x/-y`` choose the rest).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from app.case import Case
from app.errors import PrintingError
from app.printing.profiles import load_materials, load_printers
from app.printing.slicer import SliceSettings, engines
from app.printing.slicer.sla import SlaSettings
from app.workflow import intake, resin
from app.workflow import slice as slicing
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "slice",
        help="slice a mesh version of a case into G-code stored with its provenance",
        description="Slice mesh version N of CASE for printer profile P; the G-code is stored "
        "in the case (print it with 'medprint print CASE'); --out also writes a copy.",
    )
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument("--version", type=int, metavar="N", help="mesh version (default: latest)")
    parser.add_argument("--printer", required=True, help="printer profile id or name")
    parser.add_argument("--material", help="material profile (default: the printer's)")
    parser.add_argument("--engine", choices=["builtin", "prusaslicer"], default="builtin")
    parser.add_argument(
        "--extruder",
        action="append",
        metavar="PART=N",
        help="multi-material printer: print PART with extruder N (repeat for every part; "
        "default: the parts in order)",
    )
    _settings_options(parser)
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write a copy of the G-code")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=_slice)

    printers = sub.add_parser("printers", help="list printer (and material) profiles")
    printers.add_argument("--json", action="store_true")
    printers.add_argument("--materials", action="store_true", help="list material profiles")
    printers.set_defaults(func=_printers)


def _settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layer-height",
        type=float,
        default=None,
        metavar="MM",
        help="default 0.2 (resin: the printer's)",
    )
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
    sla = parser.add_argument_group("resin printers")
    sla.add_argument("--no-supports", action="store_true", help="resin: no supports")
    sla.add_argument("--no-pad", action="store_true", help="resin: no pad under the supports")
    sla.add_argument("--rotate-x", type=float, default=0.0, metavar="DEG", help="resin: tilt")
    sla.add_argument("--rotate-y", type=float, default=0.0, metavar="DEG", help="resin: tilt")


def _settings(args: argparse.Namespace) -> SliceSettings:
    layer_height = args.layer_height or 0.2
    return SliceSettings(
        layer_height=layer_height,
        first_layer_height=args.first_layer_height or max(layer_height, 0.2),
        perimeters=args.perimeters,
        infill_density=args.infill,
        infill_pattern=args.pattern,
        supports=args.supports,
        support_angle=args.support_angle,
        brim_width=args.brim,
    )


def _extruders(pairs: list[str] | None) -> dict[str, int] | None:
    """``["bone=1", "tumour=2"]`` as a part->extruder map (None when not given)."""
    if not pairs:
        return None
    chosen: dict[str, int] = {}
    for pair in pairs:
        part, _, tool = pair.partition("=")
        if not part or not tool.isdigit():
            msg = f"--extruder takes PART=N (like bone=1), not {pair!r}"
            raise PrintingError(msg)
        chosen[part.strip()] = int(tool)
    return chosen


def _slice(args: argparse.Namespace) -> int:
    from app.commands.progressbar import cli_progress  # noqa: PLC0415

    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    if resin.is_resin_printer(actor, args.printer):
        return _slice_resin(actor, case, args)
    with cli_progress(f"slicing ({args.engine})") as progress:
        sliced = slicing.slice_version(
            actor,
            case,
            version=args.version,
            printer=args.printer,
            material=args.material,
            settings=_settings(args),
            engine=args.engine,
            extruders=_extruders(args.extruder),
            out=args.out,
            progress=progress,
        )
    gcode, prov = sliced.gcode, sliced.gcode.provenance
    if args.json:
        data = {
            "case": case.pseudonym,
            "gcode_version": gcode.number,
            "gcode_sha256": gcode.sha256,
            "mesh_version": prov["mesh_version"],
            "mesh_sha256": prov["mesh_sha256"],
            "printer": prov["printer"],
            "material": prov["material"],
            "engine": prov["engine"],
            "extruders": prov.get("extruders"),
            "out": str(args.out) if args.out else None,
            "warnings": sliced.warnings,
            **asdict(sliced.result.summary),
        }
        print(json.dumps(data, indent=2))
    else:
        print(
            f"{case.pseudonym}: G-code g{gcode.number} from mesh v{prov['mesh_version']} "
            f"({prov['printer']}, {prov['material']}, engine {prov['engine']})"
        )
        for line in sliced.summary_lines():
            print(f"  {line}")
    return _finish(args, sliced.warnings)


def _slice_resin(actor: Actor, case: Case, args: argparse.Namespace) -> int:
    from app.commands.progressbar import cli_progress  # noqa: PLC0415

    settings = SlaSettings(
        supports=not args.no_supports,
        pad=not args.no_pad,
        rotate_x=args.rotate_x,
        rotate_y=args.rotate_y,
        layer_height=args.layer_height,
    )
    with cli_progress("slicing (PrusaSlicer SLA)") as progress:
        sliced = resin.slice_resin(
            actor, case, version=args.version, printer=args.printer, material=args.material,
            settings=settings, out=args.out, progress=progress,
        )  # fmt: skip
    prov, archive = sliced.stored.provenance, sliced.archive
    if args.json:
        keys = ("mesh_version", "mesh_sha256", "printer", "material", "engine", "sl1_sha256")
        data = {"case": case.pseudonym, "sla_version": sliced.stored.number}
        data |= {k: prov[k] for k in keys} | {"out": str(args.out) if args.out else None}
        data |= {"layers": archive.layers, "layer_height": archive.layer_height}
        data |= {"resin_ml": archive.resin_ml, "print_time_s": archive.print_time_s}
        print(json.dumps(data | {"warnings": sliced.warnings}, indent=2))
        return 0
    print(
        f"{case.pseudonym}: resin slicing s{sliced.stored.number} from mesh v{prov['mesh_version']}"
        f" ({prov['printer']}, {prov['material']}, engine {prov['engine']})"
    )
    for line in archive.summary_lines(resin.material_of(actor, prov["material"])):
        print(f"  {line}")
    return _finish(args, sliced.warnings)


def _finish(args: argparse.Namespace, warnings: list[str]) -> int:
    """The copy's path (in the text report) and the slicer's warnings on stderr."""
    if args.out and not args.json:
        print(f"  copy: {args.out}")
    for warning in warnings:
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
        kind = f"{p.technology} {p.connection.kind}"
        print(f"{p.id:24} {p.name:46} {x:g}x{y:g}x{z:g} mm  {kind} ({p.origin})")
    for e in engines():
        state = f"available {e.version}".strip() if e.available else f"unavailable: {e.hint}"
        print(f"engine {e.name:17} {state}")
    return 0

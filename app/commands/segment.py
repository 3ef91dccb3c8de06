"""``medprint segment CASE [--tool T --param K=V ...] [--preset P] [--import F] [--export F]
[--identified] [--new] [--no-save] [--json]``, ``--volume FILE`` instead of a case, ``--list-tools``.

Runs the same segmentation tools as the GUI, headless, through :mod:`app.workflow.segment`: on a
case in the vault (its volume and saved segmentation), saving the result back into the case
(each tool, the save, an import and an export audited), then prints per-segment statistics.
``--volume FILE.nrrd`` works on a plain image file instead (no vault, nothing stored, only
``--export`` writes a file). ``--list-tools`` prints every tool and its parameters.

Examples::

    medprint segment C-7K3M-Q9 --tool bone --param keep_largest=2
    medprint segment C-7K3M-Q9 --preset compact-bone --json
    medprint segment C-7K3M-Q9 --tool margin --param segment=bone --param margin_mm=2
    medprint segment C-7K3M-Q9 --export bone.dcm       # DICOM SEG, de-identified header
    medprint segment --volume ct.nrrd --tool bone --export bone.seg.nrrd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.case import Case
from app.commands.progressbar import cli_progress
from app.errors import SegmentationError
from app.imaging.load import load_image_file
from app.imaging.volume import Volume
from app.tools.segmentation import ParamSpec, Tool, get_tool, registry
from app.tools.segmentation.threshold import CT_PRESETS
from app.workflow import intake, segment
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "segment", help="run segmentation tools on a case and print per-segment statistics"
    )
    parser.add_argument("case", nargs="?", help="case pseudonym (see 'medprint cases list')")
    parser.add_argument("--volume", help="work on an image file (.nrrd/.nii.gz) instead of a case")
    parser.add_argument(
        "--preset", choices=sorted(CT_PRESETS), help="threshold with an InVesalius CT preset"
    )
    parser.add_argument(
        "--tool",
        help="tool name (see --list-tools), e.g. bone (bone in one click), islands, margin",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="tool parameter; repeat for several (lists as JSON, e.g. seeds=[[256,260,30]])",
    )
    parser.add_argument("--new", action="store_true", help="start from an empty segmentation")
    parser.add_argument(
        "--import",
        dest="import_file",
        metavar="FILE",
        help="start from a .seg.nrrd/.nrrd, .nii/.nii.gz or DICOM SEG (.dcm) file",
    )
    parser.add_argument(
        "--export",
        metavar="FILE",
        help="also write .seg.nrrd, .nii/.nii.gz or .dcm (DICOM SEG, de-identified)",
    )
    parser.add_argument(
        "--identified",
        action="store_true",
        help="DICOM SEG with the original patient header (administrators; audited)",
    )
    parser.add_argument("--no-save", action="store_true", help="do not save into the case")
    parser.add_argument("--json", action="store_true", help="print statistics as JSON")
    parser.add_argument("--list-tools", action="store_true", help="list tools and parameters")
    parser.set_defaults(func=_segment)


def parse_value(spec: ParamSpec, text: str) -> Any:
    """Turn ``text`` into the type a parameter spec expects."""
    if spec.kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        msg = f"{spec.name} takes true or false, not {text!r}"
        raise SegmentationError(msg)
    if spec.kind in ("points", "segments") or text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            if spec.kind == "segments":
                return [t for t in text.split(",") if t]
            msg = f"{spec.name} takes a JSON list, e.g. [[256, 260, 30]]"
            raise SegmentationError(msg) from None
        return (
            [tuple(v) if isinstance(v, list) else v for v in value]
            if isinstance(value, list)
            else value
        )
    if spec.kind == "optional-float":
        return None if text.lower() in ("", "none") else float(text)
    try:
        if spec.kind == "int":
            return int(text)
        if spec.kind == "float":
            return float(text)
    except ValueError:
        msg = f"{spec.name} takes a number, not {text!r}"
        raise SegmentationError(msg) from None
    return text


def parse_params(tool: Tool, pairs: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs as the typed values of ``tool``'s parameters."""
    by_name = {s.name: s for s in tool.specs()}
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in by_name:
            known = ", ".join(by_name)
            msg = f"unknown parameter {name!r} for {tool.name}; parameters: {known}"
            raise SegmentationError(msg)
        values[name] = parse_value(by_name[name], text)
    return values


def _list_tools() -> int:
    reg = registry()
    for tool in reg.tools.values():
        print(f"{tool.name:22} {tool.title}")
        for spec in tool.specs():
            bounds = ""
            if spec.minimum is not None or spec.maximum is not None:
                bounds = f" [{spec.minimum:g}..{spec.maximum:g}]"
            choices = f" {{{', '.join(map(str, spec.choices))}}}" if spec.choices else ""
            unit = f" {spec.unit}" if spec.unit else ""
            print(f"    {spec.name}={spec.default!r}{unit}{bounds}{choices}")
    for module, error in reg.errors.items():
        print(f"(failed to load {module}: {error})")
    return 0


def _segment(args: argparse.Namespace) -> int:
    if args.list_tools:
        return _list_tools()
    if bool(args.case) == bool(args.volume):
        msg = "give a case pseudonym or --volume FILE (one of them)"
        raise SegmentationError(msg)
    if args.param and not args.tool:
        msg = "--param needs --tool"
        raise SegmentationError(msg)
    actor, case, volume, seg = _open(args)
    if args.import_file:
        seg = segment.import_file(actor, case, args.import_file, volume)
    seg = seg or segment.new(volume)
    messages = []
    for tool_name, values in _runs(args):
        with cli_progress(get_tool(tool_name).title) as progress:
            result = segment.run_tool(
                actor, case, seg, volume, tool_name, params=values, progress=progress
            )
        messages.append(result.message)
    saved = case is not None and bool(messages or args.import_file) and not args.no_save
    if saved:
        segment.save(actor, case, seg)
    exported = None
    if args.export:
        exported = segment.export_file(actor, case, seg, args.export, identified=args.identified)
    _report(args, seg.statistics(volume), messages, saved, exported)
    return 0


def _open(args: argparse.Namespace) -> tuple[Actor | None, Case | None, Volume, Any]:
    """(actor, case, volume, saved segmentation) of the case, or of the plain image file."""
    if args.volume:
        return None, None, load_image_file(Path(args.volume)), None
    actor = Actor.current()
    loaded = intake.load_case(actor, args.case)
    return actor, loaded.case, loaded.volume, None if args.new else loaded.segmentation


def _runs(args: argparse.Namespace) -> list[tuple[str, dict]]:
    runs = [("threshold", {"preset": args.preset})] if args.preset else []
    if args.tool:
        runs.append((args.tool, parse_params(get_tool(args.tool), args.param)))
    return runs


def _report(
    args: argparse.Namespace,
    stats: list,
    messages: list[str],
    saved: bool,
    exported: segment.Exported | None,
) -> None:
    if args.json:
        out: dict[str, Any] = {
            "messages": messages,
            "saved": saved,
            "segments": [s.to_dict() for s in stats],
        }
        if exported is not None:
            out["export"] = {"format": exported.format, "sha256": exported.sha256}
        print(json.dumps(out, indent=2))
        return
    for line in messages:
        print(line)
    _print_table(stats)
    if saved:
        print(f"saved into case {args.case}")
    if exported is not None:
        print(f"exported {exported.format} to {exported.path} (sha256 {exported.sha256[:16]}…)")


def _print_table(stats: list) -> None:
    if not stats:
        print("no segments")
        return
    print(
        f"{'segment':20} {'voxels':>10} {'ml':>10} {'surface cm²':>12} {'HU mean':>8} {'HU min':>7} {'HU max':>7}"
    )
    for s in stats:
        hu = (
            f"{s.hu_mean:8.0f} {s.hu_min:7.0f} {s.hu_max:7.0f}"
            if s.hu_mean is not None
            else f"{'-':>8} {'-':>7} {'-':>7}"
        )
        print(
            f"{s.name[:20]:20} {s.voxels:>10} {s.volume_ml:>10.1f} {s.surface_mm2 / 100:>12.1f} {hu}"
        )

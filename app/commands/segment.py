"""``medprint segment CASE [--preset P | --tool T] [--param K=V ...] [--json]``.

Runs the same segmentation tools as the GUI, headless, on a case in the vault (its volume and
its saved ``segmentation.seg``), saves the result back into the case and prints per-segment
statistics. ``--volume FILE.nrrd`` works on a plain image file instead (nothing is saved unless
``--export`` is given). ``--list-tools`` prints every tool and its parameters.

Examples::

    medprint segment C-7K3M-Q9 --tool bone --param keep_largest=2
    medprint segment C-7K3M-Q9 --preset compact-bone --json
    medprint segment C-7K3M-Q9 --tool margin --param segment=bone --param margin_mm=2
    medprint segment --volume ct.nrrd --tool bone --export bone.seg.nrrd
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from app.commands.progressbar import cli_progress
from app.errors import SegmentationError


def register(sub: argparse._SubParsersAction) -> None:
    from app.tools.segmentation.threshold import CT_PRESETS  # noqa: PLC0415

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
    parser.add_argument("--export", help="also write .seg.nrrd, .nii/.nii.gz or .dcm (DICOM SEG)")
    parser.add_argument("--no-save", action="store_true", help="do not save into the case")
    parser.add_argument("--json", action="store_true", help="print statistics as JSON")
    parser.add_argument("--list-tools", action="store_true", help="list tools and parameters")
    parser.set_defaults(func=_segment)


def parse_value(spec: Any, text: str) -> Any:
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


def build_params(tool: Any, pairs: list[str]) -> Any:
    by_name = {s.name: s for s in tool.specs()}
    values = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in by_name:
            known = ", ".join(by_name)
            msg = f"unknown parameter {name!r} for {tool.name}; parameters: {known}"
            raise SegmentationError(msg)
        values[name] = parse_value(by_name[name], text)
    return tool.default_params(**values)


def _list_tools() -> int:
    from app.tools.segmentation import registry  # noqa: PLC0415

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
    from app.tools.segmentation import Segmentation, get_tool  # noqa: PLC0415

    if bool(args.case) == bool(args.volume):
        msg = "give a case pseudonym or --volume FILE (one of them)"
        raise SegmentationError(msg)
    case = volume = seg = None
    if args.volume:
        from app.imaging.load import load_image_file  # noqa: PLC0415

        volume = load_image_file(Path(args.volume))
    else:
        from app.case import open_case  # noqa: PLC0415
        from app.tools.segmentation.storage import load_from_case  # noqa: PLC0415

        case = open_case(args.case)
        volume = case.load_volume()
        if not args.new:
            seg = load_from_case(case, volume)
    if args.import_file:
        seg = _import(args.import_file, volume)
    seg = seg or Segmentation(volume)
    runs = []
    if args.preset:
        tool = get_tool("threshold")
        runs.append((tool, tool.default_params(preset=args.preset)))
    if args.tool:
        tool = get_tool(args.tool)
        runs.append((tool, build_params(tool, args.param)))
    elif args.param:
        msg = "--param needs --tool"
        raise SegmentationError(msg)
    messages = []
    for tool, params in runs:
        with cli_progress(tool.title) as progress:
            messages.append(tool.apply(seg, volume, params, progress=progress).message)
    if case is not None and (runs or args.import_file) and not args.no_save:
        from app.tools.segmentation.storage import save_to_case  # noqa: PLC0415

        save_to_case(case, seg)
        _audit(case.pseudonym, runs, seg)
    if args.export:
        _export(seg, args.export, case)
    stats = seg.statistics(volume)
    if args.json:
        print(
            json.dumps({"messages": messages, "segments": [s.to_dict() for s in stats]}, indent=2)
        )
    else:
        for line in messages:
            print(line)
        _print_table(stats)
    return 0


def _audit(pseudonym: str, runs: list, seg: Any) -> None:
    from dataclasses import asdict  # noqa: PLC0415

    from app.security import audit  # noqa: PLC0415

    for tool, params in runs:
        audit.record(
            "segmentation.apply",
            case=pseudonym,
            tool=tool.name,
            params=json.dumps(asdict(params), default=str, sort_keys=True),
            segments=len(seg.segments),
        )


def _import(path: str, volume: Any) -> Any:
    from app.tools.segmentation import exchange  # noqa: PLC0415

    if path.endswith(".nrrd"):
        return exchange.import_seg_nrrd(path, volume)
    if path.endswith((".nii", ".nii.gz")):
        return exchange.import_nifti(path, volume)
    if path.endswith(".dcm"):
        return exchange.read_dicom_seg(path, volume)
    msg = "import a .seg.nrrd/.nrrd, .nii/.nii.gz or .dcm (DICOM SEG) file"
    raise SegmentationError(msg)


def _export(seg: Any, target: str, case: Any) -> None:
    from app.tools.segmentation import exchange  # noqa: PLC0415

    if target.endswith(".seg.nrrd") or target.endswith(".nrrd"):
        exchange.export_seg_nrrd(seg, target)
    elif target.endswith((".nii", ".nii.gz")):
        exchange.export_nifti(seg, target)
    elif target.endswith(".dcm"):
        if case is None:
            msg = "DICOM SEG export needs a case (its original series); run it on a case"
            raise SegmentationError(msg)
        import io  # noqa: PLC0415

        import pydicom  # noqa: PLC0415

        sources = [
            pydicom.dcmread(io.BytesIO(case.load_bytes(name)))
            for name in case.files()
            if name.startswith("dicom/")
        ]
        exchange.write_dicom_seg(seg, sources, target)
    else:
        msg = "export to .seg.nrrd, .nii, .nii.gz or .dcm"
        raise SegmentationError(msg)


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

"""``medprint mesh CASE [--segment NAME] [--smooth F] [--decimate R] [--label] --out FILE``.

Builds a printable mesh headless (extract, smooth, decimate, repair, optional pseudonym label),
checks it, exports it clean and prints its QA report. With a case the mesh version and its QA
report are also stored in the vault. Without a case, ``--volume IMAGE.nrrd --threshold
LOW[:HIGH]`` or ``--mask MASK.nrrd`` give the segment (nothing is stored).

Exit status: 0 when the QA report passes, 1 when the mesh was written but fails a check.

Examples::

    medprint mesh C-7K3M-Q9 --segment bone --decimate 0.8 --label --out exports/
    medprint mesh --volume ct.nrrd --threshold 226 --out bone.stl --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.commands.progressbar import cli_progress
from app.errors import MeshError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mesh", help="build, check and export a printable mesh of a segment; prints its QA report"
    )
    parser.add_argument("case", nargs="?", help="case pseudonym (see 'medprint cases')")
    parser.add_argument("--segment", help="segment name or id (default: the first segment)")
    parser.add_argument("--volume", help="image file (.nrrd, .nii.gz) instead of a case")
    parser.add_argument("--threshold", help="with --volume: LOW[:HIGH] in image units, e.g. 226")
    parser.add_argument("--mask", help="with --volume or alone: a mask image on the same grid")
    parser.add_argument("--smooth", type=float, default=0.5, help="smoothing 0..1 (default 0.5)")
    parser.add_argument(
        "--decimate", type=float, default=0.0, help="fraction of triangles removed (0.8 keeps 20%%)"
    )
    parser.add_argument("--triangles", type=int, help="decimate to this many triangles instead")
    parser.add_argument("--label", action="store_true", help="emboss the case pseudonym")
    parser.add_argument("--engrave", action="store_true", help="engrave the label instead")
    parser.add_argument("--pseudonym", help="label text when working without a case")
    parser.add_argument("--label-at", help="label point x,y,z in LPS mm (default: automatic)")
    parser.add_argument("--label-normal", help="outward normal at the label point, x,y,z")
    parser.add_argument("--build-volume", default="250,210,210", help="printer X,Y,Z in mm")
    parser.add_argument("--tolerance", type=float, default=0.5, help="deviation tolerance in mm")
    parser.add_argument("--out", required=True, help="output file (.stl/.3mf/.obj/.ply) or folder")
    parser.add_argument("--format", default="stl", help="format when --out is a folder")
    parser.add_argument("--json", action="store_true", help="print the QA report as JSON")
    parser.add_argument("--no-save", action="store_true", help="do not store the mesh in the case")
    parser.set_defaults(func=_mesh)


def _triple(text: str, what: str) -> np.ndarray:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        msg = f"{what} takes three numbers x,y,z (mm), e.g. 250,210,210"
        raise MeshError(msg)
    return np.asarray(values)


def _source(args: argparse.Namespace):
    """(mask, volume, case or None, part name)."""
    if args.case:
        from app.case import open_case  # noqa: PLC0415
        from app.tools.segmentation.storage import load_from_case  # noqa: PLC0415

        case = open_case(args.case)
        volume = case.load_volume()
        seg = load_from_case(case, volume)
        if seg is None or not seg.segments:
            msg = f"case {case.pseudonym} has no segments; run 'medprint segment' first"
            raise MeshError(msg)
        segment = seg.segment(args.segment) if args.segment else seg.segments[0]
        return seg.mask(segment), volume, case, segment.name
    return *_file_source(args), None, "part"


def _file_source(args: argparse.Namespace):
    import SimpleITK as sitk  # noqa: PLC0415

    from app.imaging.volume import Volume  # noqa: PLC0415

    def read(path: str) -> Volume:
        try:
            return Volume.from_sitk(sitk.ReadImage(str(path)))
        except RuntimeError:
            msg = f"cannot read the image {Path(path).name}; give an .nrrd or .nii.gz file"
            raise MeshError(msg) from None

    if args.mask:
        mask_volume = read(args.mask)
        return mask_volume.array > 0, mask_volume
    if not (args.volume and args.threshold):
        msg = "give a CASE, or --volume IMAGE with --threshold LOW[:HIGH], or --mask MASK"
        raise MeshError(msg)
    volume = read(args.volume)
    low, _, high = args.threshold.partition(":")
    try:
        lo, hi = float(low), float(high) if high else np.inf
    except ValueError:
        msg = "--threshold takes LOW or LOW:HIGH, e.g. 226 or 226:3000"
        raise MeshError(msg) from None
    return (volume.array >= lo) & (volume.array <= hi), volume


def _out_path(args: argparse.Namespace, pseudonym: str | None, part: str) -> Path:
    from app.security.strip import export_name  # noqa: PLC0415

    out = Path(args.out)
    if out.is_dir() or args.out.endswith(("/", "\\")):
        if pseudonym is None:
            msg = "with --out FOLDER the file is named by the pseudonym; give --pseudonym or a file"
            raise MeshError(msg)
        return out / export_name(pseudonym, part, args.format)
    return out


def _mesh(args: argparse.Namespace) -> int:
    from app.tools.mesh.export import export_mesh  # noqa: PLC0415
    from app.tools.mesh.pipeline import build_mesh  # noqa: PLC0415
    from app.tools.mesh.qa import qa_report  # noqa: PLC0415

    mask, volume, case, part = _source(args)
    pseudonym = case.pseudonym if case is not None else args.pseudonym
    with cli_progress("mesh") as progress:
        built = build_mesh(
            mask,
            volume,
            smoothing=args.smooth,
            reduction=args.decimate or None,
            target_faces=args.triangles,
            progress=progress.sub(0.0, 0.7),
        )
        mesh = built.mesh
        label = None
        if args.label or args.engrave:
            mesh, label = _apply_label(args, mesh, pseudonym)
        qa = qa_report(
            mesh,
            reference=built.reference,
            build_volume_mm=tuple(_triple(args.build_volume, "--build-volume")),
            tolerance_mm=args.tolerance,
            label=label,
            progress=progress.sub(0.7, 1.0),
        )
    out = export_mesh(mesh, _out_path(args, pseudonym, part))
    info = built.to_dict() | {"label": label.to_dict() if label else None, "part": part}
    stored = None
    if case is not None:
        import hashlib  # noqa: PLC0415

        from app.security import audit  # noqa: PLC0415

        audit.record(
            "mesh.export",
            case=case.pseudonym,
            file=out.name,
            sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
            qa_passed=qa.passed,
        )
    if case is not None and not args.no_save:
        from app.tools.mesh.store import save_mesh_version  # noqa: PLC0415

        stored = save_mesh_version(case, mesh, qa, info)
    if args.json:
        print(
            json.dumps(
                {"qa": qa.to_dict(), "build": info, "file": str(out), "stored": stored}, indent=2
            )
        )
    else:
        print("\n".join(qa.lines()))
        s = built.smoothing
        print(
            f"  smoothing {s.factor:g}: volume {s.volume_change_percent:+.2f}%, deviation mean "
            f"{s.mean_deviation_mm:.3f} mm, max {s.max_deviation_mm:.3f} mm"
        )
        if label:
            print(
                f"  label {label.mode}: {label.text} ({label.height_mm:g} mm high, {label.depth_mm:g} mm deep)"
            )
        print(f"wrote {out}" + (f"; stored as {stored}" if stored else ""))
    return 0 if qa.passed else 1


def _apply_label(args: argparse.Namespace, mesh, pseudonym: str | None):
    from app.tools.mesh.case_mesh import label_with_pseudonym  # noqa: PLC0415
    from app.tools.mesh.label import add_label  # noqa: PLC0415

    mode = "engrave" if args.engrave else "emboss"
    if pseudonym is None:
        msg = "a label needs the case pseudonym; give a CASE or --pseudonym"
        raise MeshError(msg)
    if args.label_at:
        point = _triple(args.label_at, "--label-at")
        if not args.label_normal:
            msg = "--label-at needs --label-normal (the outward direction there)"
            raise MeshError(msg)
        normal = _triple(args.label_normal, "--label-normal")
        return add_label(mesh, pseudonym, point, normal, mode=mode)
    return label_with_pseudonym(mesh, pseudonym, mode=mode)

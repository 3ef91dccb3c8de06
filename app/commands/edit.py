"""``medprint edit CASE --version N OPERATION [--part NAME] [--json]``: edit a mesh version.

One operation per call; the result is stored as a new version of the case (its parent is
``N``) with a fresh QA report, so an approval of ``N`` does not carry over. Operations::

    --cut X,Y,Z:NX,NY,NZ [--keep front|back]   plane through the point with that normal (LPS mm);
                                               keeps the side the normal points to by default
    --mirror x|y|z                             mirror across the model's centre plane
    --scale F                                  scale about the model's centre (0.5 = half size)
    --hollow MM [--drain MM]                   walls of MM, a drain hole at the lowest point (0: none)
    --base [MM]                                a flat plate under the model (3 mm)
    --label [--engrave] [--height MM] [--depth MM]   the case pseudonym, automatically placed
    --union M | --difference M                 with mesh version M of the same case
    --connector [MM]                           a rod (5 mm) joining the two largest components

Exit status: 0 when the new version passes QA, 1 when it fails a check.

Examples::

    medprint edit C-7K3M-Q9 --version 1 --cut 0,0,120:0,0,-1
    medprint edit C-7K3M-Q9 --version 2 --hollow 2 --drain 4 --json
    medprint edit C-7K3M-Q9 --version 3 --difference 1
"""

from __future__ import annotations

import argparse
import json

from app.commands.progressbar import cli_progress
from app.errors import MeshError
from app.tools.mesh.operations import AXES
from app.workflow import intake, mesh
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "edit", help="edit a mesh version (cut, mirror, scale, hollow, base, label, booleans)"
    )
    parser.add_argument("case", help="case pseudonym")
    parser.add_argument("--version", type=int, required=True, help="the mesh version to edit")
    parser.add_argument("--part", help="edit one part (default: every part)")
    ops = parser.add_mutually_exclusive_group(required=True)
    ops.add_argument("--cut", metavar="X,Y,Z:NX,NY,NZ", help="plane cut (LPS mm)")
    ops.add_argument("--mirror", choices=sorted(AXES), help="mirror across the centre plane")
    ops.add_argument("--scale", type=float, metavar="F", help="scale factor")
    ops.add_argument("--hollow", type=float, metavar="MM", help="hollow, leaving walls of MM")
    ops.add_argument("--base", type=float, nargs="?", const=3.0, metavar="MM", help="flat base")
    ops.add_argument("--label", action="store_true", help="emboss the case pseudonym")
    ops.add_argument("--union", type=int, metavar="M", help="unite with version M")
    ops.add_argument("--difference", type=int, metavar="M", help="subtract version M")
    ops.add_argument("--connector", type=float, nargs="?", const=5.0, metavar="MM", help="rod")
    parser.add_argument("--keep", choices=("front", "back"), default="front", help="with --cut")
    parser.add_argument("--drain", type=float, default=4.0, help="with --hollow: hole mm (0: none)")
    parser.add_argument("--engrave", action="store_true", help="with --label: cut it in")
    parser.add_argument("--height", type=float, default=7.5, help="with --label: letter mm")
    parser.add_argument("--depth", type=float, default=3.0, help="with --label: relief mm")
    parser.add_argument("--json", action="store_true", help="print the new version as JSON")
    parser.set_defaults(func=_edit)


def operation(args: argparse.Namespace) -> tuple[str, dict]:
    """(operation, parameters) from the command line."""
    if args.cut:
        point, normal = _plane(args.cut)
        return "cut", {"point": point, "normal": normal, "keep": args.keep}
    if args.mirror:
        return "mirror", {"normal": AXES[args.mirror]}
    if args.scale is not None:
        return "scale", {"factor": args.scale}
    if args.hollow is not None:
        return "hollow", {"wall_mm": args.hollow, "hole_mm": args.drain}
    if args.base is not None:
        return "flat_base", {"thickness_mm": args.base}
    if args.label:
        mode = "engrave" if args.engrave else "emboss"
        return "label", {"mode": mode, "height_mm": args.height, "depth_mm": args.depth}
    if args.union is not None:
        return "union", {"with_version": args.union}
    if args.difference is not None:
        return "difference", {"with_version": args.difference}
    return "connector", {"diameter_mm": args.connector}


def _plane(text: str) -> tuple[list[float], list[float]]:
    try:
        point, normal = ([float(v) for v in half.split(",")] for half in text.split(":"))
    except ValueError:
        point, normal = [], []
    if len(point) != 3 or len(normal) != 3:
        msg = "--cut takes X,Y,Z:NX,NY,NZ (a point and the normal in LPS mm), e.g. 0,0,120:0,0,1"
        raise MeshError(msg)
    return point, normal


def _edit(args: argparse.Namespace) -> int:
    name, params = operation(args)
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    with cli_progress(name) as progress:
        made = mesh.edit(actor, case, args.version, name, params, part=args.part, progress=progress)
    if args.json:
        facts = {"case": case.pseudonym, "version": made.number, "sha256": made.sha256}
        print(json.dumps(facts | {"qa": made.qa.to_dict(), "edit": made.info}, indent=2))
    else:
        print(
            f"{case.pseudonym}: {name} of v{args.version} stored as mesh v{made.number}, "
            f"sha256 {made.sha256}"
        )
        print("\n".join(made.qa.lines()))
    return 0 if made.qa.passed else 1

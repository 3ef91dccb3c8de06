"""The demo: the whole pipeline on the bundled sample (or any CT), composed of the use cases.

It runs in its own throw-away data folder under the output folder (vault, audit log, settings),
so it never touches the user's data folder or roles. With one person in that vault, the
approval is the audited self-approval override, and the package says so. The printed part is
the largest piece of the bone segment that fits the printer, named by the segment and the body
region of the series; when the skeleton is one piece too large for the printer, a block of it
around its centre is cut out and the summary says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.case import Case
from app.errors import MedPrintError
from app.printing.profiles import get_printer
from app.progress import CancelToken, check_cancel
from app.settings import resolve_paths
from app.tools.segmentation.fit import printable_piece
from app.workflow import intake, mesh, package, review, segment, users
from app.workflow import slice as slicing
from app.workflow.actor import Actor

DEMO_PRINTER = "generic-marlin-220"
DATA_FOLDER = "demo-data"
CUT_HEIGHT_MM = 70.0
SELF_APPROVAL_REASON = "medprint demo: one person in a throw-away vault"

Report = Callable[[str, float, str], None]


@dataclass
class DemoResult:
    case: str
    package: Path
    verified: bool
    steps: list[tuple[str, float, str]] = field(default_factory=list)


class _Steps:
    def __init__(self, report: Report | None, cancel: CancelToken | None) -> None:
        self.report = report
        self.cancel = cancel
        self.done: list[tuple[str, float, str]] = []

    def run(self, name: str, fn: Callable[[], tuple[object, str]]) -> object:
        check_cancel(self.cancel)
        start = time.perf_counter()
        value, summary = fn()
        seconds = time.perf_counter() - start
        self.done.append((name, seconds, summary))
        if self.report is not None:
            self.report(name, seconds, summary)
        return value


def run_demo(
    out_dir: str | Path,
    input_dir: str | Path | None = None,
    *,
    report: Report | None = None,
    cancel: CancelToken | None = None,
) -> DemoResult:
    """Run the pipeline; the package and the demo's own data folder go into ``out_dir``."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    actor = Actor.current(resolve_paths(out / DATA_FOLDER))
    steps = _Steps(report, cancel)
    steps.run("vault", lambda: _vault(actor))
    case = steps.run("import", lambda: _import(actor, input_dir))
    part = steps.run("bone in one click", lambda: _segment(actor, case))
    version, failed = steps.run("surface, label, QA", lambda: _mesh(actor, case, part))
    steps.run("approval", lambda: _approve(actor, case, version, failed))
    gcode = steps.run("slicing", lambda: _slice(actor, case, version))
    path = steps.run("signed package", lambda: _package(actor, case, version, gcode, out))
    verified = steps.run("verification", lambda: _verify(actor, path))
    return DemoResult(case.pseudonym, path, verified, steps.done)


def _vault(actor: Actor) -> tuple[None, str]:
    if actor.has_vault():
        return None, f"opened the demo vault in {actor.paths.root}"
    recovery = users.init_vault(actor)
    text = f"a throw-away vault in {actor.paths.root} ({actor.user}: administrator); "
    return None, text + f"its recovery key: {recovery}"


def _import(actor: Actor, input_dir: str | Path | None) -> tuple[Case, str]:
    if input_dir is None:
        case = intake.open_sample(actor)
        return case, f"sample case {case.pseudonym}"
    case = intake.import_path(actor, str(input_dir))
    return case, f"largest CT series imported as {case.pseudonym}"


def _segment(actor: Actor, case: Case) -> tuple[str, str]:
    volume = case.load_volume()
    if volume.modality != "CT":
        msg = f"the demo needs a CT series, this case is {volume.modality}"
        raise MedPrintError(msg)
    seg = segment.load(actor, case, volume) or segment.new(volume)
    segment.run_tool(actor, case, seg, volume, "bone", {})
    bone = seg.mask("bone")
    build_volume = get_printer(DEMO_PRINTER).build_volume
    piece, was_cut = printable_piece(
        bone, volume.spacing, build_volume, cut_height_mm=CUT_HEIGHT_MM
    )
    if piece is None:
        msg = "bone in one click found no bone in this scan; is it a CT with bone in view?"
        raise MedPrintError(msg)
    name = f"bone-{_region(case)}"
    segment.add_segment_from_mask(actor, case, seg, name, piece)
    segment.save(actor, case, seg)
    ml = volume.voxel_volume_mm3() / 1000.0
    how = (
        f"a {CUT_HEIGHT_MM:.0f} mm block cut from it" if was_cut else "its largest piece that fits"
    )
    text = f"bone {bone.sum() * ml:.0f} ml; printing {name}, {how}: {piece.sum() * ml:.0f} ml"
    return name, text


def _region(case: Case) -> str:
    """The series' body part (``BodyPartExamined``) as a part-name word, else "unspecified"."""
    body_part = str(case.series_facts().get("body_part") or "").lower()
    word = re.sub(r"[^a-z0-9]+", "-", body_part).strip("-")[:20]
    return word or "unspecified"


def _mesh(actor: Actor, case: Case, part: str) -> tuple[tuple[int, list[str]], str]:
    build_volume = get_printer(DEMO_PRINTER).build_volume
    made = mesh.build(actor, case, segments=[part], settings="print", build_volume_mm=build_volume)
    qa = made.qa.to_dict()
    verdict = "pass" if made.qa.passed else "FAIL"
    text = f"mesh v{made.number} ({part}): {len(made.mesh.faces)} triangles, "
    text += f"deviation p95 {qa['deviation']['p95_mm']:.2f} mm, QA {verdict}"
    return (made.number, list(made.qa.failed)), text


def _approve(actor: Actor, case: Case, version: int, failed: list[str]) -> tuple[None, str]:
    if failed:  # a demo on any series goes on; the package says so, as a signed override
        reason = f"medprint demo: QA failed ({', '.join(failed)}); printed to show the pipeline"
        review.override(actor, case, "qa-failure", version=version, reason=reason)
    review.override(actor, case, "self-approval", version=version, reason=SELF_APPROVAL_REASON)
    digest = case.mesh_sha256(version)
    text = f"self-approved by {actor.user}, the only person in the demo vault, as an audited "
    text += f"override (mesh sha256 {digest[:12]}…)"
    if failed:
        text += f"; QA failed ({', '.join(failed)}): recorded as an audited QA override"
    return None, text


def _slice(actor: Actor, case: Case, version: int) -> tuple[int, str]:
    sliced = slicing.slice_version(actor, case, version=version, printer=DEMO_PRINTER)
    summary = sliced.result.summary
    text = f"g{sliced.gcode.number}: {summary.layers} layers, "
    text += f"{summary.filament_mm / 1000:.1f} m filament, {summary.time_text}"
    return sliced.gcode.number, text


def _package(actor: Actor, case: Case, version: int, gcode: int, out: Path) -> tuple[Path, str]:
    made = package.build(actor, case, version=version, gcode_version=gcode, out_dir=out)
    return made.path, f"{made.path.name} written and read back (marked self-approved)"


def _verify(actor: Actor, path: Path) -> tuple[bool, str]:
    result = package.verify(actor, path)
    if not result.ok:
        msg = f"the demo package did not verify: {result.message}"
        raise MedPrintError(msg)
    return True, "signature, manifest, approval, override and every file verified"

"""Slicing: a stored mesh version of a case becomes G-code stored in the case with its provenance.

The provenance binds the G-code to what it was made from: the mesh version and its hash (the
manifest hash over its parts), the printer and material profiles, the engine and every slicing
setting. Printing and packaging accept a stored G-code only when that hash is an approved version
of the case (:func:`app.workflow.review.release_gcode`). Object names in the G-code are the
pseudonym and the part name, never a file name or free text, so a copy (``out``) carries no PHI.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.atomic import atomic_write_bytes
from app.case import Case, StoredGcode
from app.errors import PrintingError
from app.printing.profiles import get_material, get_printer
from app.printing.slicer import Part, SliceResult, SliceSettings, slice_parts
from app.progress import CancelToken, Progress, ensure
from app.tools.mesh.core import make_mesh
from app.tools.mesh.meshio import read_mesh_bytes
from app.workflow import names, policy
from app.workflow.actor import Actor


@dataclass(frozen=True)
class Sliced:
    """A slicing stored in the case: the G-code with its provenance, and the slicer's result
    (summary, warnings and the toolpath analysis for a preview)."""

    gcode: StoredGcode
    result: SliceResult
    out: Path | None = None

    @property
    def warnings(self) -> list[str]:
        return list(self.result.warnings)

    def summary_lines(self) -> list[str]:
        return self.result.summary.lines()


def slice_version(
    actor: Actor,
    case: Case,
    *,
    version: int | None = None,
    printer: str,
    material: str | None = None,
    settings: SliceSettings | None = None,
    engine: str = "builtin",
    extruders: dict[str, int] | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Sliced:
    """Slice mesh ``version`` (default: the latest) of ``case`` for profile ``printer``.

    On a printer with several extruders each part prints with its own: ``extruders`` maps every
    part name to a tool (1-based), by default the parts in order. Stores the G-code in the case
    with its provenance (with the part->extruder map), writes a copy to ``out`` when given, and
    audits ``slice``; returns the stored G-code and the slicer's result.
    """
    policy.allow(actor, "slice", case.pseudonym)
    progress = ensure(progress)
    number = case.latest_mesh_version() if version is None else version
    stored = case.load_mesh_version(number)
    names.check_all(actor, case, list(stored.parts), what="part name", action="slice")
    if out is not None:
        names.check_outgoing(actor, case, Path(out).name, what="file name", action="slice")
    profile = get_printer(printer, actor.paths)
    chosen = get_material(material or profile.default_material, actor.paths)
    settings = settings or SliceSettings()
    tools = tool_map(list(stored.parts), profile.extruders, extruders)
    parts = [_part(case.pseudonym, name, data, tools) for name, data in stored.parts.items()]
    progress.update(0.05, f"slicing mesh v{number} ({engine})")
    result = slice_parts(
        parts,
        profile,
        chosen,
        settings,
        engine=engine,
        progress=progress.sub(0.05, 0.95),
        cancel=cancel,
    )
    provenance = {
        "mesh_version": number,
        "mesh_sha256": stored.sha256,
        "printer": profile.id,
        "material": chosen.id,
        "engine": result.engine,
        "settings": asdict(settings),
        "parts": sorted(stored.parts),
        "extruders": tools if result.engine != "builtin" else dict.fromkeys(tools, 1),
        "user": actor.user,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    gcode = case.save_gcode(result.gcode, provenance)
    if out is not None:
        atomic_write_bytes(Path(out), gcode.text.encode("utf-8"))
    policy.record(
        actor,
        "slice",
        case.pseudonym,
        gcode_version=gcode.number,
        mesh_version=number,
        mesh_sha256=stored.sha256,
        gcode_sha256=gcode.sha256,
        printer=profile.id,
        material=chosen.id,
        engine=result.engine,
        copy=out is not None,
    )
    progress.update(1.0, f"stored G-code g{gcode.number}")
    return Sliced(gcode, result, Path(out) if out is not None else None)


def tool_map(parts: list[str], tools: int, chosen: dict[str, int] | None) -> dict[str, int]:
    """Each part's extruder (1-based): ``chosen`` (naming every part), else the parts in order."""
    if chosen is None:
        if tools > 1 and len(parts) > tools:
            msg = f"{len(parts)} parts but {tools} extruders; choose each part's extruder"
            raise PrintingError(msg)
        return {name: min(index + 1, tools) for index, name in enumerate(parts)}
    unknown = sorted(set(chosen) - set(parts))
    missing = [name for name in parts if name not in chosen]
    if unknown or missing:
        msg = f"the extruder map must name each part ({', '.join(parts)}) once"
        raise PrintingError(msg)
    wrong = sorted(name for name, tool in chosen.items() if not 1 <= tool <= tools)
    if wrong:
        msg = f"the printer has {tools} extruder(s); part '{wrong[0]}' needs one of 1..{tools}"
        raise PrintingError(msg)
    return {name: int(chosen[name]) for name in parts}


def _part(pseudonym: str, name: str, stl: bytes, tools: dict[str, int]) -> Part:
    """One part of a stored version, named by the pseudonym and the part (checked), read by
    the capped mesh reader, with its extruder."""
    mesh = make_mesh(*read_mesh_bytes(stl, "stl"))
    return Part(f"{pseudonym} {name}", mesh.vertices, mesh.faces, tools[name])


def stored_gcodes(actor: Actor, case: Case) -> list[tuple[int, dict]]:
    """The case's stored G-codes as ``(number, provenance)``, newest first (for a list)."""
    policy.allow(actor, "case.open", case.pseudonym)
    return [(n, case.gcode_provenance(n)) for n in reversed(case.gcode_versions())]


def export(actor: Actor, case: Case, gcode_version: int, out: Path) -> StoredGcode:
    """Write a copy of stored G-code ``gcode_version`` to ``out`` (audited ``slice.export``)."""
    policy.allow(actor, "slice", case.pseudonym)
    names.check_outgoing(actor, case, Path(out).name, what="file name", action="slice.export")
    gcode = case.load_gcode(gcode_version)
    atomic_write_bytes(Path(out), gcode.text.encode("utf-8"))
    policy.record(
        actor,
        "slice.export",
        case.pseudonym,
        gcode_version=gcode.number,
        gcode_sha256=gcode.sha256,
        mesh_sha256=gcode.provenance.get("mesh_sha256"),
    )
    return gcode

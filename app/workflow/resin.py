"""Resin slicing: a stored mesh version becomes a label-stripped SL1 archive stored in the case.

The archive carries no names (no part, file, case or person); what it was made from is kept in
the case's provenance record beside it: the mesh version and its SHA-256 (manifest hash over the
parts), the printer and resin profiles, the engine and the settings.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import trimesh

from app.atomic import atomic_write_bytes
from app.case import Case, StoredSla
from app.printing.profiles import MaterialProfile, get_material, get_printer
from app.printing.slicer.sla import ENGINE, SlaArchive, SlaSettings, merged, read_sl1, slice_sla
from app.progress import CancelToken, Progress, ensure
from app.tools.mesh.core import make_mesh
from app.tools.mesh.drain import ResinCheck, resin_check
from app.tools.mesh.meshio import read_mesh_bytes
from app.workflow import names, policy
from app.workflow.actor import Actor


@dataclass(frozen=True)
class SlicedResin:
    """A stored resin slicing: the archive in the case, its facts, and the copy written."""

    stored: StoredSla
    archive: SlaArchive
    out: Path | None = None

    @property
    def warnings(self) -> list[str]:
        """Resin QA findings recorded with the slicing (closed cavities trap resin)."""
        check = self.stored.provenance.get("resin_check") or {}
        if not check:
            return []
        found = ResinCheck.from_dict(check)
        closed = [
            f"{found.closed_cavities} closed cavities trap {found.trapped_ml:.2f} ml "
            "of resin; hollow with drain holes (medprint edit CASE hollow) or print solid"
        ]
        return (closed if found.closed_cavities else []) + found.problems()


def slice_resin(
    actor: Actor,
    case: Case,
    *,
    version: int | None = None,
    printer: str,
    material: str | None = None,
    settings: SlaSettings | None = None,
    out: Path | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SlicedResin:
    """Slice mesh ``version`` (default: latest) for resin printer ``printer`` with PrusaSlicer's
    SLA engine; store the archive with its provenance, copy it to ``out``, audit ``slice``."""
    policy.allow(actor, "slice", case.pseudonym)
    progress = ensure(progress)
    number = case.latest_mesh_version() if version is None else version
    stored = case.load_mesh_version(number)
    if out is not None:
        names.check_outgoing(actor, case, Path(out).name, what="file name", action="slice")
    profile = get_printer(printer, actor.paths)
    chosen = get_material(material or profile.default_material, actor.paths)
    settings = settings or SlaSettings()
    parts = [read_mesh_bytes(data, "stl") for data in stored.parts.values()]
    progress.update(0.02, "resin check (cavities, suction cups, thin walls)")
    qa = _check(make_mesh(*merged(parts)), chosen, settings)
    progress.update(0.05, f"slicing mesh v{number} for resin")
    archive = slice_sla(
        parts, profile, chosen, settings, progress=progress.sub(0.05, 0.95), cancel=cancel
    )
    provenance = {
        "mesh_version": number,
        "mesh_sha256": stored.sha256,
        "printer": profile.id,
        "material": chosen.id,
        "engine": ENGINE,
        "settings": asdict(settings),
        "parts": sorted(stored.parts),
        "layers": archive.layers,
        "resin_ml": round(archive.resin_ml, 3),
        "print_time_s": round(archive.print_time_s, 1),
        "resin_check": qa.to_dict(),
        "user": actor.user,
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    saved = case.save_sla(archive.data, provenance)
    if out is not None:
        atomic_write_bytes(Path(out), archive.data)
    policy.record(
        actor, "slice", case.pseudonym, sla_version=saved.number, mesh_version=number,
        mesh_sha256=stored.sha256, sl1_sha256=saved.sha256, printer=profile.id,
        material=chosen.id, engine=ENGINE, copy=out is not None,
    )  # fmt: skip
    progress.update(1.0, f"stored resin slicing s{saved.number}")
    return SlicedResin(saved, archive, Path(out) if out is not None else None)


def _check(mesh: trimesh.Trimesh, resin: MaterialProfile, settings: SlaSettings) -> ResinCheck:
    """The resin check of ``mesh`` turned as it is sliced (x then y, degrees), against the resin's
    minimum wall and feature size; without supports the plate seals the part's underside."""
    for angle, axis in ((settings.rotate_x, (1, 0, 0)), (settings.rotate_y, (0, 1, 0))):
        if angle:
            mesh = mesh.copy()
            mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(angle), axis))
    return resin_check(
        mesh, min_wall_mm=resin.min_wall_mm, min_feature_mm=resin.min_feature_mm,
        on_plate=not settings.supports,
    )  # fmt: skip


def load(actor: Actor, case: Case, number: int | None = None) -> SlicedResin:
    """Stored resin slicing ``number`` (default: the newest) with its facts, for a preview."""
    policy.allow(actor, "case.open", case.pseudonym)
    versions = case.sla_versions()
    stored = case.load_sla(number if number is not None else (versions or [0])[-1])
    return SlicedResin(stored, read_sl1(stored.data))


def stored_slicings(actor: Actor, case: Case) -> list[tuple[int, dict]]:
    """The case's stored resin slicings as ``(number, provenance)``, newest first (for a list)."""
    policy.allow(actor, "case.open", case.pseudonym)
    return [(n, case.load_sla(n).provenance) for n in reversed(case.sla_versions())]


def check(
    actor: Actor,
    case: Case,
    version: int | None = None,
    voxel_mm: float | None = None,
    material: str | None = None,
) -> ResinCheck:
    """Resin QA of mesh ``version`` (default: latest), all parts together as stored (z up from
    the plate): resin volume in ml, the cavities closed to the outside (each traps resin; drain
    them with the hollow edit), suction cups, and with ``material`` (a resin profile) the walls
    and features thinner than its minimums."""
    policy.allow(actor, "mesh.view", case.pseudonym)
    number = case.latest_mesh_version() if version is None else version
    parts = [read_mesh_bytes(data, "stl") for data in case.load_mesh_version(number).parts.values()]
    limits = {}
    if material:
        resin = get_material(material, actor.paths)
        limits = {"min_wall_mm": resin.min_wall_mm, "min_feature_mm": resin.min_feature_mm}
    return resin_check(make_mesh(*merged(parts)), voxel_mm, **limits)


def material_of(actor: Actor, material: str) -> MaterialProfile:
    """The material profile ``material`` (for a front end's estimate lines)."""
    return get_material(material, actor.paths)


def is_resin_printer(actor: Actor, printer: str) -> bool:
    """Whether ``printer`` names a resin (SLA/MSLA) profile, for front ends choosing the use case."""
    return get_printer(printer, actor.paths).is_resin

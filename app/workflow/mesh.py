"""Mesh: build a version of a case from its segments, edit it, export it, load and list versions.

Every built or edited mesh is a new version of the case (:meth:`Case.save_mesh_version`): its
parts (one per segment, named from the segment), one QA report over all parts, and how it was
made (``info``: ``author``, ``operation``, the settings or the edit's parameters,
``parent_version``, time). A version's hash is the manifest hash over its parts and an approval
binds that hash, so an edit (a new version) needs a review of its own.

Audited: ``mesh.build`` and ``mesh.edit`` (version, hash, triangles, QA verdict, settings or
edit parameters), ``mesh.export`` (version, format and SHA-256 of the file, never its path);
a refusal as ``access.denied``. Loading and listing versions need ``mesh.view`` (any role).

:func:`build_file` meshes a plain image file with the same pipeline (no case: nothing stored
or audited, no role needed).

The pipeline and its named settings (``print``, ``review``) are
:mod:`app.tools.mesh.pipeline`'s; the edits by name are :mod:`app.tools.mesh.operations`'.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from app.case import Case, StoredMesh
from app.errors import MeshError, SegmentationError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.core import concatenate, make_mesh
from app.tools.mesh.export import export_bytes, export_mesh
from app.tools.mesh.meshio import (
    export_name,
    mesh_bytes,
    output_format,
    part_name,
    read_mesh_bytes,
    write_mesh_bytes,
)
from app.tools.mesh.operations import NEEDS_OTHER, apply_edit, edit_params
from app.tools.mesh.pipeline import (
    Built,
    MeshSettings,
    Part,
    check_built,
    check_parts,
    make_parts,
    settings_for,
)
from app.tools.mesh.qa import QAReport
from app.tools.mesh.stages import StageMeter, stage
from app.tools.mesh.surface import MaskCrop
from app.tools.segmentation import Segment, Segmentation
from app.workflow import names, policy, review, segment
from app.workflow.actor import Actor
from app.workflow.mesh_source import FileSurface, surface_ahead
from app.workflow.parts import export_parts


@dataclass
class MeshVersion:
    """One stored mesh version: its parts (name -> mesh, as stored), QA report and build info.

    ``references`` are the raw segmentation surfaces the parts were checked against, kept only
    right after a build (for a deviation map); a loaded version has none.
    """

    number: int
    sha256: str
    parts: dict[str, trimesh.Trimesh]
    qa: QAReport
    info: dict
    references: list[trimesh.Trimesh] | None = None

    @property
    def mesh(self) -> trimesh.Trimesh:
        """The single part, or all parts in one mesh."""
        meshes = list(self.parts.values())
        return meshes[0] if len(meshes) == 1 else concatenate(meshes)

    @property
    def part_name(self) -> str:
        """The single part's name, or ``all`` for several."""
        return next(iter(self.parts)) if len(self.parts) == 1 else "all"


@dataclass(frozen=True)
class VersionSummary:
    """One line of a case's version list."""

    number: int
    sha256: str
    qa_passed: bool
    qa_failed: list[str]
    operation: str
    author: str | None
    parent_version: int | None
    parts: list[str]
    triangles: int
    time_utc: str | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# ---------------------------------------------------------------------------------------------
# build


def build(
    actor: Actor,
    case: Case,
    *,
    segments: list[str] | None = None,
    settings: str | MeshSettings = "print",
    changes: Mapping[str, Any] | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    segmentation: Segmentation | None = None,
    volume: Volume | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> MeshVersion:
    """Build one part per segment (default: the first), check them, store a new version.

    ``settings`` names a preset (adapted to the series, see :func:`settings_for`) or gives them
    all; ``changes`` overrides single values (``smoothing``, ``reduction``, ``label``, ...).
    ``segmentation`` and ``volume`` are the case's, when the caller holds them already (the
    GUI's segmentation, possibly not saved yet); by default both are read from the case.
    """
    policy.allow(actor, "mesh.build", case.pseudonym)
    progress = ensure(progress)
    volume = volume if volume is not None else case.load_volume()
    resolved = settings_for(settings, volume, **dict(changes or {}))
    seg = _segmentation(actor, case, volume, segmentation)
    with seg.lock:  # the GUI's segmentation may be edited meanwhile on its thread
        chosen = _segments(case, seg, segments)
        masks = _masks(seg, chosen)
    names.check_all(actor, case, list(masks), what="part name", action="mesh.build")
    parts = make_parts(
        masks, volume, resolved, pseudonym=case.pseudonym, progress=progress.sub(0.0, 0.7),
        cancel=cancel,
    )  # fmt: skip
    built, data = _checked(
        parts, resolved, _stl, build_volume_mm=build_volume_mm, progress=progress.sub(0.7, 0.95),
        cancel=cancel,
    )  # fmt: skip
    check_cancel(cancel)
    info = _made(actor, "build") | {
        "authors": case.segmentation_authors(),  # who saved the segmentation (four eyes)
        "settings": resolved.to_dict(),
        "segments": [s.name for s in chosen],
        "parts": list(masks),
        "builds": {p.name: p.to_dict() for p in built.parts},
        "build_volume_mm": list(build_volume_mm) if build_volume_mm else None,
    }
    styles = {name: {"colour": _hex(s.color)} for name, s in zip(masks, chosen, strict=True)}
    version = _store(case, data, built.qa, info, styles)
    version.references = [p.build.reference for p in built.parts]
    policy.record(
        actor, "mesh.build", case.pseudonym, version=version.number, sha256=version.sha256,
        settings=resolved.name, parts=len(data), triangles=version.qa.triangles,
        qa_passed=version.qa.passed,
    )  # fmt: skip
    progress.update(1.0, f"stored mesh v{version.number}")
    return version


def _segmentation(
    actor: Actor, case: Case, volume: Volume, given: Segmentation | None
) -> Segmentation:
    seg = given if given is not None else segment.load(actor, case, volume)
    if seg is None or not seg.segments:
        msg = (
            f"case {case.pseudonym} has no segments; run 'medprint segment {case.pseudonym}' first"
        )
        raise MeshError(msg)
    if not seg.grid.matches(volume):
        msg = "the segmentation is not on this case's image grid; segment this case's image"
        raise SegmentationError(msg)
    return seg


def _segments(case: Case, seg: Segmentation, names: list[str] | None) -> list[Segment]:
    chosen = [seg.segment(name) for name in names] if names else [seg.segments[0]]
    empty = [s.name for s in chosen if seg.bbox(s) is None]
    if empty:
        msg = f"segment {empty[0]!r} of case {case.pseudonym} is empty; fill it before meshing"
        raise MeshError(msg)
    return chosen


def _masks(seg: Segmentation, chosen: list[Segment]) -> dict[str, MaskCrop]:
    """Each segment cut to its box (a copy, so the GUI may edit the segmentation meanwhile):
    meshing never holds a whole-grid mask."""
    masks = {}
    for s in chosen:
        name = part_name(s.name)
        if name in masks:
            msg = f"two segments would make the part {name!r}; rename one of them"
            raise MeshError(msg)
        box = seg.bbox(s)  # not None: _segments refused empty segments
        masks[name] = MaskCrop(seg.mask(s, box), box)
    return masks


def _hex(colour: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(255 * min(max(c, 0.0), 1.0)):02x}" for c in colour)


# ---------------------------------------------------------------------------------------------
# edit


def edit(
    actor: Actor,
    case: Case,
    version: int,
    operation: str,
    params: Mapping[str, Any] | None = None,
    *,
    part: str | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> MeshVersion:
    """Apply ``operation`` (see :mod:`app.tools.mesh.operations`) to ``part`` of ``version``
    (default: every part), check the result and store it as a new version.

    The new version records ``parent_version``, the operation and its parameters, and its
    author; a boolean with another version also names that version's authors (four eyes).
    """
    policy.allow(actor, "mesh.edit", case.pseudonym)
    progress = ensure(progress)
    params = edit_params(operation, params)
    source = case.load_mesh_version(version)
    parts = _meshes(source)
    targets = _targets(source, parts, part)
    other, other_authors = _other(case, operation, params)
    labels = {}
    share = 0.7 / len(targets)
    for n, name in enumerate(targets):
        parts[name], label = apply_edit(
            parts[name], operation, params, pseudonym=case.pseudonym, other=other,
            progress=progress.sub(n * share, (n + 1) * share), cancel=cancel,
        )  # fmt: skip
        if label is not None:
            labels[name] = label
    check_cancel(cancel)
    qa = check_parts(
        list(parts.values()),
        labels=list(labels.values()),
        build_volume_mm=build_volume_mm or _build_volume(source),
        tolerance_mm=float(source.qa.get("tolerance_mm") or 0.5),
        progress=progress.sub(0.7, 0.97),
        cancel=cancel,
    )
    check_cancel(cancel)
    info = _made(actor, operation) | {
        "parent_version": version,
        "params": params,
        "parts": list(parts),
        "edited_parts": targets,
        "labels": {name: label.to_dict() for name, label in labels.items()},
        "authors": sorted(other_authors),
    }
    styles = {p["name"]: p for p in source.part_facts}
    made = _store(case, {name: _stl(m) for name, m in parts.items()}, qa, info, styles)
    policy.record(
        actor, "mesh.edit", case.pseudonym, version=made.number, parent_version=version,
        operation=operation, params=params, sha256=made.sha256, triangles=qa.triangles,
        qa_passed=qa.passed,
    )  # fmt: skip
    progress.update(1.0, f"{operation}: stored mesh v{made.number}")
    return made


def _other(
    case: Case, operation: str, params: Mapping[str, Any]
) -> tuple[trimesh.Trimesh | None, set[str]]:
    """The other version of a boolean (all its parts) and its authors."""
    if operation not in NEEDS_OTHER:
        return None, set()
    number = int(params["with_version"])
    return _version(case.load_mesh_version(number)).mesh, review.authors(case, number)


def _targets(source: StoredMesh, parts: dict[str, trimesh.Trimesh], part: str | None) -> list[str]:
    if part is None:
        return list(parts)
    if part not in parts:
        msg = f"mesh v{source.number} has no part {part!r} (parts: {', '.join(parts)})"
        raise MeshError(msg)
    return [part]


def _build_volume(source: StoredMesh) -> tuple[float, float, float] | None:
    size = source.qa.get("build_volume_mm")
    return tuple(size) if size else None  # type: ignore[return-value]


@dataclass
class FileMesh:
    """A mesh built from a plain image file: what was built, the file written, how."""

    built: Built
    path: Path
    info: dict


def build_file(
    actor: Actor,
    out: Path,
    *,
    volume: Path | None = None,
    threshold: str | None = None,
    mask: Path | None = None,
    pending: Callable[[], FileSurface] | None = None,
    settings: str = "print",
    changes: Mapping[str, Any] | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    fmt: str | None = None,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> FileMesh:
    """Mesh a plain image file (``volume`` thresholded at ``threshold`` "LOW[:HIGH]", or the
    binary ``mask``) with the named ``settings`` and write it to ``out``. ``pending`` returns
    its surface made already (:func:`~app.workflow.mesh_source.surface_ahead`: the CLI starts it
    before it imports the mesh libraries).

    The user's own files in and out, no case: nothing is stored, labelled (a label is a case
    pseudonym) or audited, and no role is needed. ``meter`` books each stage's time and memory.
    """
    if Path(out).is_dir():
        msg = "without a case give --out FILE (nothing is stored, no pseudonym names the file)"
        raise MeshError(msg)
    fmt = output_format(Path(out), fmt)  # refused now, not after the build
    progress = ensure(progress)
    made = (pending or surface_ahead(volume, threshold, mask, meter=meter))()
    grid = made.grid
    chosen = settings_for(settings, grid, **({**(changes or {}), "label": False}))
    parts = make_parts(
        {"part": made.source}, grid, chosen, meter=meter, progress=progress.sub(0.0, 0.75),
        cancel=cancel,
    )  # fmt: skip
    del made
    built, data = _checked(
        parts, chosen, lambda m: export_bytes(m, fmt), build_volume_mm=build_volume_mm,
        meter=meter, progress=progress.sub(0.75, 1.0), cancel=cancel,
    )  # fmt: skip
    with stage(meter, "export"):  # the file's content was made meanwhile
        path = write_mesh_bytes(Path(out), data["part"])
    info = {"settings": chosen.to_dict(), "builds": {"part": built.parts[0].to_dict()}}
    if meter:
        info["stages"] = meter.stages | {"volume": {"int16_mib": 2 * np.prod(grid.shape) / 2**20}}
    return FileMesh(built, path, info)


# ---------------------------------------------------------------------------------------------
# export, load, list


def export(
    actor: Actor,
    case: Case,
    version: int,
    out: Path | str,
    fmt: str | None = None,
    *,
    part: str | None = None,
) -> Path:
    """Write ``version`` (one ``part``, the single part, or all parts merged) as a clean file;
    several parts to a .3mf/.obj become named, coloured objects (:mod:`app.workflow.parts`).

    ``out`` is a file, or a folder (existing, or written with a trailing slash) where the file
    is named ``<pseudonym>_<part>.<ext>``; the format comes from ``fmt`` or the extension.
    """
    policy.allow(actor, "mesh.export", case.pseudonym)
    made = _version(case.load_mesh_version(version))
    if part is None and len(made.parts) > 1 and _multi(out, fmt):
        return export_parts(actor, case, version, out, fmt)[0]  # named, coloured parts
    mesh, name = _export_part(made, part)
    names.check_outgoing(actor, case, name, what="part name", action="mesh.export")
    target = Path(out)
    if target.is_dir() or str(out).endswith(("/", "\\")):
        fmt = fmt or "stl"
        target.mkdir(parents=True, exist_ok=True)
        target = target / export_name(case.pseudonym, name, fmt)
    else:
        names.check_outgoing(actor, case, target.name, what="file name", action="mesh.export")
    fmt = output_format(target, fmt)
    path = export_mesh(mesh, target, fmt)
    policy.record(
        actor, "mesh.export", case.pseudonym, version=version, mesh_sha256=made.sha256,
        format=fmt, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )  # fmt: skip
    return path


def _multi(out: Path | str, fmt: str | None) -> bool:
    """Several parts go into one 3MF or OBJ as named, coloured objects."""
    return (fmt or Path(out).suffix.lower().lstrip(".")) in ("3mf", "obj")


def _export_part(made: MeshVersion, part: str | None) -> tuple[trimesh.Trimesh, str]:
    if part is None:
        return made.mesh, made.part_name
    if part not in made.parts:
        msg = f"mesh v{made.number} has no part {part!r} (parts: {', '.join(made.parts)})"
        raise MeshError(msg)
    return made.parts[part], part


def load(actor: Actor, case: Case, version: int | None = None) -> MeshVersion:
    """Mesh ``version`` of the case (default: the newest) with its QA report and info."""
    policy.allow(actor, "mesh.view", case.pseudonym)
    number = version if version is not None else case.latest_mesh_version()
    return _version(case.load_mesh_version(number))


def versions(actor: Actor, case: Case) -> list[VersionSummary]:
    """Every mesh version of the case, oldest first, with its QA verdict and origin."""
    policy.allow(actor, "mesh.view", case.pseudonym)
    return [_summary(case, n) for n in case.mesh_versions()]


def _summary(case: Case, number: int) -> VersionSummary:
    info, qa = case.mesh_info(number), QAReport.from_dict(case.mesh_qa(number))
    parent = info.get("parent_version")
    return VersionSummary(
        number=number,
        sha256=case.mesh_sha256(number),
        qa_passed=qa.passed,
        qa_failed=qa.failed,
        operation=str(info.get("operation") or "build"),
        author=info.get("author"),
        parent_version=int(parent) if parent is not None else None,
        parts=[p["name"] for p in case.mesh_manifest(number)["parts"]],
        triangles=qa.triangles,
        time_utc=info.get("time_utc"),
    )


# ---------------------------------------------------------------------------------------------
# storage


def _made(actor: Actor, operation: str) -> dict:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"author": actor.user, "operation": operation, "time_utc": now}


def _checked(
    parts: list[Part],
    settings: MeshSettings,
    render: Callable[[trimesh.Trimesh], bytes],
    **check: Any,
) -> tuple[Built, dict[str, bytes]]:
    """:func:`check_built` over ``parts`` while each part's file is made by ``render`` on a
    second core (a 500k-triangle STL takes 0.15 s; QA keeps under two cores busy)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        files = pool.submit(lambda: {p.name: render(p.mesh) for p in parts})
        built = check_built(parts, settings, **check)
        return built, files.result()


def _stl(mesh: trimesh.Trimesh) -> bytes:
    return mesh_bytes(mesh.vertices, mesh.faces, "stl")


def _store(
    case: Case,
    data: dict[str, bytes],
    qa: QAReport,
    info: dict,
    styles: Mapping[str, Mapping[str, Any]],
) -> MeshVersion:
    """A new version of binary STL ``data`` (part name -> file) with its QA and info."""
    styles = {
        name: {k: styles.get(name, {}).get(k) for k in ("colour", "material")} for name in data
    }
    number = case.save_mesh_version(data, qa=_json(qa.to_dict()), info=_json(info), styles=styles)
    return _version(case.load_mesh_version(number))


def _json(facts: dict) -> dict:
    """``facts`` as plain JSON values (numpy numbers become Python numbers)."""
    return json.loads(
        json.dumps(facts, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def _meshes(stored: StoredMesh) -> dict[str, trimesh.Trimesh]:
    return {name: make_mesh(*read_mesh_bytes(data, "stl")) for name, data in stored.parts.items()}


def _version(stored: StoredMesh) -> MeshVersion:
    qa = QAReport.from_dict(stored.qa)
    return MeshVersion(stored.number, stored.sha256, _meshes(stored), qa, stored.info)

"""Export every part of a mesh version with its name and colour: one 3MF (named objects,
colours, millimetres), OBJ + MTL, or one STL per part. Label-stripped, named by pseudonym,
audited with the mesh version's manifest hash (no names of people)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from app.case import Case, StoredMesh
from app.errors import MeshError
from app.tools.mesh.meshio import read_mesh_bytes
from app.tools.mesh.multipart import Part, make_part, write_parts
from app.workflow import names, policy
from app.workflow.actor import Actor

MULTI_FORMATS = ("3mf", "obj", "stl")


def export_parts(
    actor: Actor, case: Case, version: int, out: Path | str, fmt: str | None = None
) -> list[Path]:
    """Write all parts of ``version`` to ``out`` (a file, or a folder: ``<pseudonym>_parts.<ext>``).

    ``fmt`` (default: the extension, or 3mf for a folder) is 3mf, obj (+ mtl) or stl (one
    ``<stem>_<part>.stl`` per part). Returns the written files.
    """
    policy.allow(actor, "mesh.export", case.pseudonym)
    stored = case.load_mesh_version(version)
    parts = _parts(stored)
    names.check_all(actor, case, [p.name for p in parts], what="part name", action="mesh.export")
    target, fmt = _target(case, Path(out), fmt, str(out).endswith(("/", "\\")))
    names.check_outgoing(actor, case, target.name, what="file name", action="mesh.export")
    paths = write_parts(parts, target, fmt)
    policy.record(
        actor, "mesh.export", case.pseudonym, version=version, mesh_sha256=stored.sha256,
        format=fmt, parts=len(parts), sha256=[_sha(p) for p in paths],
    )  # fmt: skip
    return paths


def version_parts(actor: Actor, case: Case, version: int) -> list[Part]:
    """The parts of mesh ``version`` with their colours and materials, in order (for a view)."""
    policy.allow(actor, "mesh.view", case.pseudonym)
    return _parts(case.load_mesh_version(version))


def _parts(stored: StoredMesh) -> list[Part]:
    styles = {p["name"]: p for p in stored.part_facts}
    return [
        make_part(name, *read_mesh_bytes(data, "stl"), styles.get(name))
        for name, data in stored.parts.items()
    ]


def _target(case: Case, out: Path, fmt: str | None, folder: bool) -> tuple[Path, str]:
    if out.is_dir() or folder:
        fmt = fmt or "3mf"
        out.mkdir(parents=True, exist_ok=True)
        out = out / f"{case.pseudonym}_parts.{fmt}"
    fmt = fmt or out.suffix.lower().lstrip(".")
    if fmt not in MULTI_FORMATS:
        msg = f"several parts export as {', '.join(MULTI_FORMATS)}, not {fmt!r}"
        raise MeshError(msg)
    return out, fmt


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

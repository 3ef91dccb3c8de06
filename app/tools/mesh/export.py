"""Export meshes as STL (binary), 3MF (millimetre), OBJ or PLY: always mm, patient LPS, clean.

Files are written through :mod:`app.tools.mesh.meshio`, so they carry no text but fixed neutral
strings, and are named ``<pseudonym>_<part>.<ext>``.
"""

from __future__ import annotations

from pathlib import Path

import trimesh

from app.errors import MeshError
from app.tools.mesh.core import concatenate, make_mesh
from app.tools.mesh.meshio import (
    export_name,
    mesh_bytes,
    output_format,
    read_mesh_file,
    write_mesh_bytes,
)

ORIENTATION = (
    "units: millimetre; frame: patient LPS as scanned "
    "(+x towards the patient's left, +y posterior, +z superior)"
)


def export_mesh(mesh: trimesh.Trimesh, path: Path, fmt: str | None = None) -> Path:
    """Write one mesh to ``path`` (format from the extension unless ``fmt``)."""
    return write_mesh_bytes(Path(path), export_bytes(mesh, output_format(Path(path), fmt)))


def export_bytes(mesh: trimesh.Trimesh, fmt: str) -> bytes:
    """The content :func:`export_mesh` writes in ``fmt`` (made ahead, written later)."""
    if len(mesh.faces) == 0:
        msg = "the mesh is empty; build a surface before exporting"
        raise MeshError(msg)
    return mesh_bytes(mesh.vertices, mesh.faces, fmt)


def export_parts(
    parts: dict[str, trimesh.Trimesh],
    folder: Path,
    pseudonym: str,
    fmt: str = "stl",
    *,
    merged: bool = False,
) -> list[Path]:
    """One file per part (``<pseudonym>_<part>.<ext>``), or one merged file named ``all``."""
    folder = Path(folder)
    if merged:
        return [
            export_mesh(
                concatenate(list(parts.values())), folder / export_name(pseudonym, "all", fmt), fmt
            )
        ]
    names = [export_name(pseudonym, part, fmt) for part in parts]
    if len(set(names)) != len(names):
        msg = "two parts would get the same file name; rename one of the segments"
        raise MeshError(msg)
    return [export_mesh(m, folder / n, fmt) for m, n in zip(parts.values(), names, strict=True)]


def import_mesh(path: Path) -> trimesh.Trimesh:
    """Geometry of an STL/OBJ/PLY/3MF file for editing (vertices in mm, merged as STL readers do).

    Only vertices and triangles are read; names, comments, metadata and thumbnails are never
    kept, so whatever is written back from it is clean.
    """
    vertices, faces = read_mesh_file(Path(path))
    if len(faces) == 0:
        msg = "the file holds no triangles; export the model again with its surface"
        raise MeshError(msg)
    return make_mesh(vertices, faces)

"""Several named, coloured parts in one export, label-stripped.

* 3MF: one ``object`` per part, named by its part name, unit millimetre; colours and materials
  through the core ``basematerials`` (name + display colour, referenced by each object) and the
  materials extension's ``colorgroup`` (the same colours).
* OBJ + MTL: one ``o``/``usemtl`` group per part, one ``newmtl`` with ``Kd`` per part.
* STL: one binary STL per part.

Part names are already reduced to ``[a-z0-9-]`` (:func:`app.tools.mesh.meshio.part_name`) and
checked against the case's identity by the workflow; nothing else carries text.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from app.atomic import atomic_write_bytes
from app.errors import MeshError
from app.tools.mesh.meshio import (
    _3MF_PARTS,
    _NS_3MF,
    _ZIP_DATE,
    mesh_bytes,
    part_name,
    zip_3mf,
)

NS_MATERIAL = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
DEFAULT_COLOUR = "#c8c8c8"
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Part:
    """One part to export: name (``[a-z0-9-]``), geometry (mm), colour ``#rrggbb``, material."""

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    colour: str = DEFAULT_COLOUR
    material: str | None = None


def make_part(
    name: str,
    vertices: np.ndarray,
    faces: np.ndarray,
    style: Mapping[str, object] | None = None,
) -> Part:
    """A :class:`Part` with a safe name, a valid colour and a safe material word."""
    style = style or {}
    colour = str(style.get("colour") or DEFAULT_COLOUR)
    if not _COLOUR_RE.match(colour):
        colour = DEFAULT_COLOUR
    material = style.get("material")
    return Part(
        part_name(name),
        np.asarray(vertices, dtype=np.float64).reshape(-1, 3),
        np.asarray(faces, dtype=np.int64).reshape(-1, 3),
        colour.lower(),
        part_name(str(material)) if material else None,
    )


def write_parts(parts: list[Part], out: Path, fmt: str) -> list[Path]:
    """Write ``parts`` as one 3MF, an OBJ with its MTL, or one STL per part; the written files.

    ``out`` is the 3MF/OBJ file, or for STL the first file's stem: ``<stem>_<part>.stl``.
    """
    _check_parts(parts)
    out = Path(out)
    if fmt == "3mf":
        atomic_write_bytes(out, model_3mf(parts))
        problems = check_3mf(out.read_bytes())
        if problems:
            out.unlink(missing_ok=True)
            msg = f"the written 3MF was not clean ({problems[0]}); report this defect"
            raise MeshError(msg)
        return [out]
    if fmt == "obj":
        return _write_obj(parts, out)
    if fmt == "stl":
        return _write_stls(parts, out)
    msg = f"several parts export as 3mf, obj or stl (one file per part), not {fmt!r}"
    raise MeshError(msg)


def _check_parts(parts: list[Part]) -> None:
    if not parts:
        msg = "there are no parts to export; build a mesh version first"
        raise MeshError(msg)
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        msg = "two parts have the same name; rename one of the segments"
        raise MeshError(msg)
    for p in parts:
        if len(p.faces) == 0:
            msg = f"the part {p.name!r} is empty; build its surface before exporting"
            raise MeshError(msg)


# ---------------------------------------------------------------------------------------------
# 3MF


def _argb(colour: str) -> str:
    return f"{colour.upper()}FF"


def model_xml(parts: list[Part]) -> bytes:
    """The 3MF model part: basematerials (id 1), colorgroup (id 2), objects from id 3."""
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="millimeter" xml:lang="en-US" xmlns="{_NS_3MF}" xmlns:m="{NS_MATERIAL}">'
        '<resources><basematerials id="1">'
    ]
    out.extend(
        f'<base name="{p.material or p.name}" displaycolor="{_argb(p.colour)}"/>' for p in parts
    )
    out.append('</basematerials><m:colorgroup id="2">')
    out.extend(f'<m:color color="{_argb(p.colour)}"/>' for p in parts)
    out.append("</m:colorgroup>")
    for index, p in enumerate(parts):
        out.append(
            f'<object id="{index + 3}" type="model" name="{p.name}" pid="1" pindex="{index}">'
            "<mesh><vertices>"
        )
        out.extend(f'<vertex x="{v[0]:.6f}" y="{v[1]:.6f}" z="{v[2]:.6f}"/>' for v in p.vertices)
        out.append("</vertices><triangles>")
        out.extend(f'<triangle v1="{f[0]}" v2="{f[1]}" v3="{f[2]}"/>' for f in p.faces)
        out.append("</triangles></mesh></object>")
    out.append("</resources><build>")
    out.extend(f'<item objectid="{i + 3}"/>' for i in range(len(parts)))
    out.append("</build></model>")
    return "".join(out).encode("utf-8")


def model_3mf(parts: list[Part]) -> bytes:
    """The whole 3MF package (fixed zip dates, no thumbnails, no metadata)."""
    return zip_3mf(model_xml(parts))


_ALLOWED = {
    (_NS_3MF, "model"): {"unit", "{http://www.w3.org/XML/1998/namespace}lang"},
    (_NS_3MF, "resources"): set(),
    (_NS_3MF, "basematerials"): {"id"},
    (_NS_3MF, "base"): {"name", "displaycolor"},
    (NS_MATERIAL, "colorgroup"): {"id"},
    (NS_MATERIAL, "color"): {"color"},
    (_NS_3MF, "object"): {"id", "type", "name", "pid", "pindex"},
    (_NS_3MF, "mesh"): set(),
    (_NS_3MF, "vertices"): set(),
    (_NS_3MF, "vertex"): {"x", "y", "z"},
    (_NS_3MF, "triangles"): set(),
    (_NS_3MF, "triangle"): {"v1", "v2", "v3"},
    (_NS_3MF, "build"): set(),
    (_NS_3MF, "item"): {"objectid"},
}
_NAME_RE = re.compile(r"^[a-z0-9-]{1,40}$")


def check_3mf(data: bytes) -> list[str]:
    """Problems showing text beyond part names, colours and geometry; empty when clean."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return ["3MF is not a zip package"]
    with archive:
        names = set(archive.namelist())
        if archive.comment or names != {*_3MF_PARTS, "3D/3dmodel.model"}:
            return ["3MF has a comment or extra parts (thumbnails, metadata or vendor data)"]
        if any(i.comment or i.extra or i.date_time != _ZIP_DATE for i in archive.infolist()):
            return ["3MF entries carry a date, comment or extra field"]
        return _check_xml(archive.read("3D/3dmodel.model"))


def _check_xml(xml: bytes) -> list[str]:
    if b"<!--" in xml or b"<?xml-stylesheet" in xml or b"<!DOCTYPE" in xml:
        return ["3MF model has comments or processing instructions"]
    problems: set[str] = set()
    for element in ET.fromstring(xml).iter():
        ns, _, tag = element.tag.rpartition("}")
        allowed = _ALLOWED.get((ns.strip("{"), tag))
        if allowed is None or set(element.attrib) - allowed:
            problems.add(f"3MF model has a non-geometry element or attribute in {tag!r}")
        elif (element.text or "").strip() or (element.tail or "").strip():
            problems.add(f"3MF model has text in {tag!r}")
        elif tag in ("object", "base") and not _NAME_RE.match(element.get("name", "")):
            problems.add(f"3MF {tag} name is not a plain part name")
    return sorted(problems)


# ---------------------------------------------------------------------------------------------
# OBJ + MTL, STL per part


def _write_obj(parts: list[Part], out: Path) -> list[Path]:
    mtl = out.with_suffix(".mtl")
    lines = [f"mtllib {mtl.name}"]
    base = 1
    for p in parts:
        lines += [f"o {p.name}", f"usemtl {p.name}"]
        lines += [f"v {v[0]:.6f} {v[1]:.6f} {v[2]:.6f}" for v in p.vertices]
        lines += [f"f {f[0] + base} {f[1] + base} {f[2] + base}" for f in p.faces]
        base += len(p.vertices)
    materials = []
    for p in parts:
        r, g, b = (int(p.colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
        materials += [f"newmtl {p.name}", f"Kd {r:.4f} {g:.4f} {b:.4f}"]
    atomic_write_bytes(mtl, ("\n".join(materials) + "\n").encode("ascii"))
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode("ascii"))
    return [out, mtl]


def _write_stls(parts: list[Part], out: Path) -> list[Path]:
    paths = []
    for p in parts:
        path = out.with_name(f"{out.stem}_{p.name}.stl")
        atomic_write_bytes(path, mesh_bytes(p.vertices, p.faces, "stl"))
        paths.append(path)
    return paths

"""Mesh files in and out, label-stripped: every mesh file MedPrint writes or imports carries
geometry and nothing else.

Readers accept STL (binary/ASCII), OBJ, PLY (ASCII/binary) and 3MF and keep only vertices and
triangles, within caps (:data:`MAX_FILE_BYTES`, :data:`MAX_TEXT_BYTES`, :data:`MAX_TRIANGLES`,
:data:`MAX_VERTICES`; for 3MF also :data:`MAX_COMPONENTS` component references expanded and
:data:`MAX_NESTING` levels), so a small file cannot expand without bound; writers emit only fixed,
neutral text:

* binary STL: the 80-byte header is :data:`STL_HEADER`, every attribute word is zero;
* ASCII STL: ``solid``/``endsolid`` carry the name :data:`NEUTRAL_NAME`;
* OBJ: ``v`` and ``f`` lines only (no comments, object/group names, materials);
* PLY: binary little-endian, ``x y z`` float and ``vertex_indices``, no comment/obj_info;
* 3MF: the three required parts, ``unit="millimeter"``, no metadata, names, thumbnails,
  core properties or vendor parts; zip entries dated 1980-01-01, no comments or extras.

:func:`check_clean` proves a file holds no text beyond those neutral forms; :func:`strip_file`
rewrites any supported file clean. File names come from :func:`export_name` (pseudonym + part).
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from app.atomic import atomic_write_bytes
from app.errors import MeshError

STL_HEADER = b"binary STL; units mm".ljust(80, b" ")
NEUTRAL_NAME = "mesh"
FORMATS = ("stl", "stl-ascii", "obj", "ply", "3mf")
PSEUDONYM_RE = re.compile(r"^[A-Z]-[0-9A-Z]{4}-[0-9A-Z]{2}$")
_PART_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_NS_3MF = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)

# Reading caps: far above any printable anatomy, far below what would exhaust the workstation.
MAX_FILE_BYTES = 1 << 30  # a binary file (STL, PLY) or a 3MF's model part, uncompressed
MAX_TEXT_BYTES = 256 << 20  # ASCII STL, OBJ, ASCII PLY (parsed into Python numbers)
MAX_TRIANGLES = 10_000_000  # in the file, and after 3MF components are expanded
MAX_VERTICES = 10_000_000
MAX_COMPONENTS = 4096  # 3MF build items and component references, expanded
MAX_NESTING = 8  # 3MF components within components

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" '
    b'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="model" '
    b'ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    b"</Types>"
)
_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    b'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
    b"</Relationships>"
)
_3MF_PARTS = {"[Content_Types].xml": _CONTENT_TYPES, "_rels/.rels": _RELS}


# ---------------------------------------------------------------------------------------------
# names


def export_name(pseudonym: str, part: str, fmt: str) -> str:
    """``<pseudonym>_<part>.<ext>``; refuses anything that is not a pseudonym and a plain part."""
    if not PSEUDONYM_RE.match(pseudonym):
        msg = "mesh files are named by the case pseudonym only (like C-7K3M-Q9); pass the pseudonym"
        raise MeshError(msg)
    part = part_name(part)
    ext = "stl" if check_format(fmt) == "stl-ascii" else fmt
    return f"{pseudonym}_{part}.{ext}"


def check_format(fmt: str) -> str:
    """``fmt`` if MeshPrint writes it (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        msg = f"unknown mesh format {fmt!r}; use one of {', '.join(FORMATS)}"
        raise MeshError(msg)
    return fmt


def output_format(path: Path, fmt: str | None = None) -> str:
    """The format a file at ``path`` is written in: ``fmt``, or its extension's."""
    return format_of(path) if fmt is None else check_format(fmt)


def part_name(text: str) -> str:
    """A part name reduced to ``[a-z0-9-]`` (a segment name such as "Bone L1" -> "bone-l1")."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "part"
    if not _PART_RE.match(name):
        name = "part"
    return name


# ---------------------------------------------------------------------------------------------
# writers (the only way MedPrint puts a mesh in a file)


def mesh_bytes(vertices: np.ndarray, faces: np.ndarray, fmt: str) -> bytes:
    """The file content of a triangle mesh in ``fmt`` with only neutral text (mm)."""
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
        msg = "triangle indices point outside the vertex list; repair the mesh first"
        raise MeshError(msg)
    writers = {
        "stl": _stl_binary,
        "stl-ascii": _stl_ascii,
        "obj": _obj,
        "ply": _ply,
        "3mf": _3mf,
    }
    return writers[check_format(fmt)](vertices, faces)


def write_mesh_file(
    path: Path, vertices: np.ndarray, faces: np.ndarray, fmt: str | None = None
) -> Path:
    """Write atomically and prove the result clean; returns ``path``."""
    return write_mesh_bytes(path, mesh_bytes(vertices, faces, output_format(path, fmt)))


def write_mesh_bytes(path: Path, data: bytes) -> Path:
    """Write :func:`mesh_bytes`'s ``data`` atomically and prove the file clean; ``path``."""
    path = Path(path)
    atomic_write_bytes(path, data)
    problems = check_clean(path)
    if problems:  # cannot happen with our writers; refuse loudly if it ever does
        path.unlink(missing_ok=True)
        msg = f"the written mesh was not clean ({problems[0]}); report this defect"
        raise MeshError(msg)
    return path


def _normals(tri: np.ndarray) -> np.ndarray:
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


_STL_RECORD = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
_STL_CHUNK = 32_768  # triangles filled in at a time: temporaries of a few MiB, not the mesh's


def _stl_binary(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    out = bytearray(84 + _STL_RECORD.itemsize * len(faces))  # zeros: every attribute is 0
    out[:84] = STL_HEADER + struct.pack("<I", len(faces))
    records = np.frombuffer(out, dtype=_STL_RECORD, offset=84)
    for start in range(0, len(faces), _STL_CHUNK):
        tri = vertices[faces[start : start + _STL_CHUNK]]
        chunk = records[start : start + _STL_CHUNK]
        chunk["n"] = _normals(tri)
        chunk["v"] = tri
    return bytes(out)


def _stl_ascii(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    out = io.StringIO()
    out.write(f"solid {NEUTRAL_NAME}\n")
    corners = vertices[faces]
    for n, tri in zip(_normals(corners), corners, strict=True):
        out.write(f"facet normal {n[0]:.7e} {n[1]:.7e} {n[2]:.7e}\nouter loop\n")
        for v in tri:
            out.write(f"vertex {v[0]:.7e} {v[1]:.7e} {v[2]:.7e}\n")
        out.write("endloop\nendfacet\n")
    out.write(f"endsolid {NEUTRAL_NAME}\n")
    return out.getvalue().encode("ascii")


def _obj(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    out = io.StringIO()
    np.savetxt(out, vertices, fmt="v %.9g %.9g %.9g")
    np.savetxt(out, faces + 1, fmt="f %d %d %d")
    return out.getvalue().encode("ascii")


def _ply(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_rec = np.dtype([("n", "u1"), ("i", "<i4", 3)])
    data = np.zeros(len(faces), dtype=face_rec)
    data["n"] = 3
    data["i"] = faces
    return header + vertices.astype("<f4").tobytes() + data.tobytes()


def _3mf(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="millimeter" xmlns="{_NS_3MF}"><resources>'
        '<object id="1" type="model"><mesh><vertices>'
    ]
    parts.extend(f'<vertex x="{v[0]:.6f}" y="{v[1]:.6f}" z="{v[2]:.6f}"/>' for v in vertices)
    parts.append("</vertices><triangles>")
    parts.extend(f'<triangle v1="{f[0]}" v2="{f[1]}" v3="{f[2]}"/>' for f in faces)
    parts.append(
        '</triangles></mesh></object></resources><build><item objectid="1"/></build></model>'
    )
    return zip_3mf("".join(parts).encode("utf-8"))


def zip_3mf(model: bytes) -> bytes:
    """A 3MF package around ``model`` (3D/3dmodel.model): fixed zip dates, no thumbnails, no
    metadata, so the same model always gives the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in (*_3MF_PARTS.items(), ("3D/3dmodel.model", model)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            archive.writestr(info, data)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# readers (geometry only; everything else in the file is ignored)


def format_of(path: Path) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    if ext not in ("stl", "obj", "ply", "3mf"):
        msg = f"{Path(path).suffix or 'no extension'} is not a mesh format MedPrint reads; use STL, OBJ, PLY or 3MF"
        raise MeshError(msg)
    return ext


def read_mesh_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (mm) and triangles of a mesh file, vertices merged where they coincide."""
    fmt = format_of(path)
    _cap(Path(path).stat().st_size, MAX_FILE_BYTES, "bytes")
    return read_mesh_bytes(Path(path).read_bytes(), fmt)


def read_mesh_bytes(data: bytes, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`read_mesh_file` for file content already in memory (e.g. from the vault)."""
    readers = {"stl": _read_stl, "obj": _read_obj, "ply": _read_ply, "3mf": _read_3mf}
    _cap(len(data), MAX_FILE_BYTES, "bytes")
    try:
        return readers[fmt](data)
    except (
        ValueError,
        KeyError,
        IndexError,
        StopIteration,
        TypeError,
        struct.error,
        zipfile.BadZipFile,
        ET.ParseError,
    ) as exc:
        msg = f"cannot read the {fmt.upper()} file ({type(exc).__name__}); export it again from its program"
        raise MeshError(msg) from exc


def _cap(count: int, limit: int, what: str) -> None:
    """A clear error when a mesh file holds (or expands to) more ``what`` than ``limit``."""
    if count > limit:
        msg = f"the mesh file holds or expands to more than {limit:,} {what}, above what "
        msg += "MedPrint reads; reduce or split the model in its program and export it again"
        raise MeshError(msg)


def _is_binary_stl(data: bytes) -> bool:
    if len(data) < 84:
        return False
    (count,) = struct.unpack_from("<I", data, 80)
    return len(data) == 84 + 50 * count or data.lstrip()[:5].lower() != b"solid"


def _read_stl(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    if _is_binary_stl(data):
        (count,) = struct.unpack_from("<I", data, 80)
        _cap(count, MAX_TRIANGLES, "triangles")
        record = np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
        tris = np.frombuffer(data, dtype=record, count=count, offset=84)["v"].reshape(-1, 3)
    else:
        _cap(len(data), MAX_TEXT_BYTES, "bytes of text")
        _cap(data.count(b"vertex") // 3, MAX_TRIANGLES, "triangles")
        numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
        tris = np.array(numbers, dtype=np.float64).reshape(-1, 3)
    return _merge(tris.astype(np.float64))


def _merge(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Triangle soup (3n, 3) -> unique vertices and faces, the way slicers read STL."""
    v32 = np.ascontiguousarray(corners.astype(np.float32))
    keys = v32.view(np.dtype((np.void, 12))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return v32[first].astype(np.float64), inverse.reshape(-1, 3)


def _read_obj(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    _cap(len(data), MAX_TEXT_BYTES, "bytes of text")
    vertices, faces = [], []
    for raw in data.decode("utf-8", errors="replace").splitlines():
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) for p in parts[1:]]
            idx = [i - 1 if i > 0 else len(vertices) + i for i in idx]
            faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
            _cap(len(faces), MAX_TRIANGLES, "triangles")
    _cap(len(vertices), MAX_VERTICES, "vertices")
    return np.array(vertices, dtype=np.float64).reshape(-1, 3), np.array(
        faces, dtype=np.int64
    ).reshape(-1, 3)


_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def _read_ply(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    end = data.index(b"end_header")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", errors="replace").splitlines()
    fmt = next(line.split()[1] for line in header if line.startswith("format"))
    elements: list[dict] = []
    for line in header:
        words = line.split()
        if words and words[0] == "element":
            elements.append({"name": words[1], "count": int(words[2]), "props": []})
            if words[1] == "face":
                _cap(elements[-1]["count"], MAX_TRIANGLES, "triangles")
            else:
                _cap(elements[-1]["count"], MAX_VERTICES, f"{words[1][:20]} elements")
        elif words and words[0] == "property" and elements:
            elements[-1]["props"].append(words[1:])
    if fmt == "ascii":
        _cap(len(data), MAX_TEXT_BYTES, "bytes of text")
        return _read_ply_ascii(data[body_start:], elements)
    order = "<" if fmt == "binary_little_endian" else ">"
    return _read_ply_binary(data, body_start, elements, order)


def _read_ply_ascii(body: bytes, elements: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    lines = iter(body.decode("ascii", errors="replace").split("\n"))
    vertices, faces = [], []
    for el in elements:
        names = [p[-1] for p in el["props"]]
        for _ in range(el["count"]):
            values = next(lines).split()
            if el["name"] == "vertex":
                vertices.append([float(values[names.index(a)]) for a in ("x", "y", "z")])
            elif el["name"] == "face":
                n = int(values[0])
                idx = [int(v) for v in values[1 : 1 + n]]
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, n - 1))
                _cap(len(faces), MAX_TRIANGLES, "triangles")
    return np.array(vertices, dtype=np.float64).reshape(-1, 3), np.array(
        faces, dtype=np.int64
    ).reshape(-1, 3)


def _read_ply_binary(
    data: bytes, offset: int, elements: list[dict], order: str
) -> tuple[np.ndarray, np.ndarray]:
    vertices = np.zeros((0, 3))
    faces: list[list[int]] = []
    for el in elements:
        if all(p[0] != "list" for p in el["props"]):
            dtype = np.dtype([(p[-1], order + _PLY_TYPES[p[0]]) for p in el["props"]])
            table = np.frombuffer(data, dtype=dtype, count=el["count"], offset=offset)
            offset += dtype.itemsize * el["count"]
            if el["name"] == "vertex":
                vertices = np.stack([table[a].astype(np.float64) for a in ("x", "y", "z")], axis=1)
            continue
        for _ in range(el["count"]):
            for prop in el["props"]:
                if prop[0] == "list":
                    count_t = np.dtype(order + _PLY_TYPES[prop[1]])
                    item_t = np.dtype(order + _PLY_TYPES[prop[2]])
                    n = int(np.frombuffer(data, count_t, 1, offset)[0])
                    offset += count_t.itemsize
                    idx = np.frombuffer(data, item_t, n, offset).astype(np.int64)
                    offset += item_t.itemsize * n
                    if el["name"] == "face" and prop[-1] in ("vertex_indices", "vertex_index"):
                        faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, n - 1))
                        _cap(len(faces), MAX_TRIANGLES, "triangles")
                else:
                    offset += np.dtype(_PLY_TYPES[prop[0]]).itemsize
    return vertices, np.array(faces, dtype=np.int64).reshape(-1, 3)


_UNITS_MM = {
    "micron": 0.001,
    "millimeter": 1.0,
    "centimeter": 10.0,
    "inch": 25.4,
    "foot": 304.8,
    "meter": 1000.0,
}


def _read_3mf(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    model = _parse_3mf(_3mf_model_xml(data))
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    count = 0
    for v, f in _3mf_expand(model):
        vertices.append(v)
        faces.append(f + count)
        count += len(v)
    if not vertices:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(vertices) * model.scale, np.concatenate(faces)


def _3mf_model_xml(data: bytes) -> bytes:
    """The 3D model part of a 3MF, read within :data:`MAX_FILE_BYTES` (zip bombs)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = next(
            i
            for i in archive.infolist()
            if i.filename.lower().endswith(".model") and i.filename.startswith("3D/")
        )
        _cap(info.file_size, MAX_FILE_BYTES, "bytes of model XML")
        with archive.open(info) as part:
            xml = part.read(MAX_FILE_BYTES + 1)
    _cap(len(xml), MAX_FILE_BYTES, "bytes of model XML")
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        msg = "the 3MF model declares XML entities, which 3MF does not allow; export it again"
        raise MeshError(msg)
    return xml


@dataclass
class _Model3MF:
    """The objects (mesh and/or components) and build items of a 3MF model part."""

    scale: float = 1.0
    meshes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    components: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)
    items: list[tuple[str, np.ndarray]] = field(default_factory=list)


def _parse_3mf(xml: bytes) -> _Model3MF:
    """One pass over the XML (elements dropped as they are read), counting as it goes."""
    model = _Model3MF()
    core = ""
    oid: str | None = None
    vertices: list[list[float]] = []
    triangles: list[list[int]] = []
    stored = 0
    holder = ET.Element("none")  # the element whose children are being read
    for event, element in ET.iterparse(io.BytesIO(xml), events=("start", "end")):
        space, _, tag = element.tag.rpartition("}")
        if event == "start":
            if tag == "model" and not core:
                core = space
                model.scale = _UNITS_MM.get(element.get("unit", "millimeter"), 1.0)
            elif space == core and tag == "object":
                oid, vertices, triangles = element.get("id"), [], []
            if tag in ("resources", "vertices", "triangles", "components", "build"):
                holder = element
            continue
        if len(holder) > 4096:  # children read already: keep the tree small
            del holder[:]
        if space != core:
            continue
        if tag == "vertex":
            vertices.append([float(element.get(a)) for a in "xyz"])  # type: ignore[arg-type]
            _cap(len(vertices), MAX_VERTICES, "vertices")
        elif tag == "triangle":
            triangles.append([int(element.get(a)) for a in ("v1", "v2", "v3")])  # type: ignore[arg-type]
            stored += 1
            _cap(stored, MAX_TRIANGLES, "triangles")
        elif tag == "component" and oid is not None:
            ref = (element.get("objectid"), _3mf_matrix(element.get("transform")))
            model.components.setdefault(oid, []).append(ref)  # type: ignore[arg-type]
            _cap(len(model.components[oid]), MAX_COMPONENTS, "component references")
        elif tag == "mesh" and oid is not None:
            v = np.array(vertices, dtype=np.float64).reshape(-1, 3)
            model.meshes[oid] = (v, np.array(triangles, dtype=np.int64).reshape(-1, 3))
        elif tag == "item":
            model.items.append((element.get("objectid"), _3mf_matrix(element.get("transform"))))  # type: ignore[arg-type]
            _cap(len(model.items), MAX_COMPONENTS, "build items")
        if tag == "object":
            element.clear()
    return model


def _3mf_matrix(text: str | None) -> np.ndarray:
    m = np.eye(4)
    if text:
        values = [float(x) for x in text.split()]
        m[:3, :3] = np.array(values[:9]).reshape(3, 3)
        m[3, :3] = values[9:12]
    return m  # row-vector convention: p' = [p 1] @ m


def _3mf_expand(model: _Model3MF) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every placed mesh of the build, components expanded (depth first), within the caps on
    component references, nesting and triangles."""
    pending = [(oid, matrix, ()) for oid, matrix in reversed(model.items)]
    placed = triangles = 0
    while pending:
        oid, matrix, path = pending.pop()
        placed += 1
        _cap(placed, MAX_COMPONENTS, "component references")
        if oid in path:
            msg = "the 3MF model has an object that contains itself; export it again"
            raise MeshError(msg)
        _cap(len(path), MAX_NESTING, "levels of nested components")
        if oid not in model.meshes and oid not in model.components:
            raise KeyError(oid)
        if oid in model.meshes:
            v, f = model.meshes[oid]
            triangles += len(f)
            _cap(triangles, MAX_TRIANGLES, "triangles")
            yield np.c_[v, np.ones(len(v))] @ matrix[:, :3], f
        inner = (*path, oid)
        for sub, local in reversed(model.components.get(oid, [])):
            pending.append((sub, local @ matrix, inner))


# ---------------------------------------------------------------------------------------------
# stripping and checking


def strip_file(src: Path, dst: Path | None = None, fmt: str | None = None) -> Path:
    """Rewrite ``src`` (STL/OBJ/PLY/3MF) as ``dst`` (default: in place) with geometry only."""
    vertices, faces = read_mesh_file(src)
    if len(faces) == 0:
        msg = "the mesh file holds no triangles; export the model again with its surface"
        raise MeshError(msg)
    dst = Path(dst) if dst is not None else Path(src)
    return write_mesh_file(dst, vertices, faces, fmt or format_of(dst))


def check_clean(path: Path) -> list[str]:
    """Problems that show text beyond the neutral forms in a mesh file; empty when clean."""
    data = Path(path).read_bytes()
    fmt = format_of(path)
    if fmt == "stl":
        return _check_stl(data)
    if fmt == "obj":
        return _check_obj(data)
    if fmt == "ply":
        return _check_ply(data)
    return _check_3mf(data)


def _check_stl(data: bytes) -> list[str]:
    if _is_binary_stl(data):
        problems = []
        header = data[:80]
        if header not in (STL_HEADER, bytes(80)):
            problems.append("binary STL header is not the neutral text")
        (count,) = struct.unpack_from("<I", data, 80)
        if len(data) != 84 + 50 * count:
            problems.append("binary STL has bytes beyond its triangles")
        else:
            attrs = np.frombuffer(data, dtype="<u2", count=count * 25, offset=84)[24::25]
            if np.any(attrs):
                problems.append("binary STL attribute words carry data")
        return problems
    allowed = re.compile(
        rb"^\s*(facet normal( \S+){3}|outer loop|vertex( \S+){3}|endloop|endfacet)\s*$"
    )
    problems = []
    lines = data.decode("ascii", errors="replace").encode().splitlines()
    if not lines or lines[0].strip() != f"solid {NEUTRAL_NAME}".encode():
        problems.append("ASCII STL solid name is not neutral")
    if lines and lines[-1].strip() != f"endsolid {NEUTRAL_NAME}".encode():
        problems.append("ASCII STL endsolid name is not neutral")
    bad = sum(1 for line in lines[1:-1] if not allowed.match(line))
    if bad:
        problems.append(f"ASCII STL has {bad} lines that are not geometry")
    return problems


def _check_obj(data: bytes) -> list[str]:
    geometry = re.compile(rb"^(v( \S+){3}|f( \d+){3,})$")
    bad = [line for line in data.splitlines() if line.strip() and not geometry.match(line.strip())]
    kinds = sorted(
        {line.split()[0][:12].decode("ascii", errors="replace") for line in bad if line.split()}
    )
    return [f"OBJ has {len(bad)} non-geometry lines ({', '.join(kinds)})"] if bad else []


def _check_ply(data: bytes) -> list[str]:
    try:
        end = data.index(b"end_header\n") + len(b"end_header\n")
    except ValueError:
        return ["PLY header has no end_header"]
    header = data[:end].decode("ascii", errors="replace").splitlines()
    problems = []
    for line in header:
        words = line.split()
        if not words:
            continue
        if words[0] in ("comment", "obj_info"):
            problems.append(f"PLY header has a {words[0]} line")
        elif words[0] == "element" and words[1] not in ("vertex", "face"):
            problems.append(f"PLY has an extra element {words[1][:20]!r}")
        elif words[0] == "property" and words[-1] not in ("x", "y", "z", "vertex_indices"):
            problems.append(f"PLY has an extra property {words[-1][:20]!r}")
        elif words[0] not in (
            "ply",
            "format",
            "element",
            "property",
            "end_header",
            "comment",
            "obj_info",
        ):
            problems.append("PLY header has an unknown line")
    if not problems:
        counts = dict(re.findall(r"element (\w+) (\d+)", "\n".join(header)))
        nv, nf = int(counts.get("vertex", 0)), int(counts.get("face", 0))
        if "format binary_little_endian 1.0" in header and len(data) != end + 12 * nv + 13 * nf:
            problems.append("PLY has bytes beyond its geometry")
    return problems


def _check_3mf(data: bytes) -> list[str]:
    problems = []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return ["3MF is not a zip package"]
    with archive:
        if archive.comment:
            problems.append("3MF zip carries a comment")
        names = archive.namelist()
        extra = sorted(set(names) - {*_3MF_PARTS, "3D/3dmodel.model"})
        if extra:
            problems.append(
                f"3MF has extra parts ({len(extra)}: thumbnails, metadata or vendor data)"
            )
        for info in archive.infolist():
            if info.comment or info.extra or info.date_time != _ZIP_DATE:
                problems.append(
                    f"3MF entry {info.filename[:40]!r} carries a date, comment or extra field"
                )
        for name, expected in _3MF_PARTS.items():
            if name in names and archive.read(name) != expected:
                problems.append(f"3MF {name} is not the neutral version")
        if "3D/3dmodel.model" not in names:
            problems.append("3MF has no 3D/3dmodel.model")
            return problems
        problems.extend(_check_model_xml(archive.read("3D/3dmodel.model")))
    return problems


_ALLOWED_3MF = {
    "model": {"unit"},
    "resources": set(),
    "object": {"id", "type"},
    "mesh": set(),
    "vertices": set(),
    "vertex": {"x", "y", "z"},
    "triangles": set(),
    "triangle": {"v1", "v2", "v3"},
    "build": set(),
    "item": {"objectid"},
}


def _check_model_xml(xml: bytes) -> list[str]:
    problems = []
    if b"<!--" in xml or b"<?xml-stylesheet" in xml or b"<!DOCTYPE" in xml:
        problems.append("3MF model has comments or processing instructions")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return [*problems, "3MF model is not valid XML"]
    if root.get("unit") != "millimeter":
        problems.append("3MF unit is not millimeter")
    bad_tags: set[str] = set()
    bad_attrs: set[str] = set()
    for element in root.iter():
        ns, _, tag = element.tag.rpartition("}")
        if ns.strip("{") != _NS_3MF or tag not in _ALLOWED_3MF:
            bad_tags.add(tag)
            continue
        bad_attrs.update(
            f"{tag}@{a.rpartition('}')[2]}" for a in element.attrib if a not in _ALLOWED_3MF[tag]
        )
        if (element.text or "").strip() or (element.tail or "").strip():
            bad_tags.add(f"{tag} text")
    if bad_tags:
        problems.append(f"3MF model has non-geometry elements: {', '.join(sorted(bad_tags))[:120]}")
    if bad_attrs:
        problems.append(
            f"3MF model has non-geometry attributes: {', '.join(sorted(bad_attrs))[:120]}"
        )
    return problems

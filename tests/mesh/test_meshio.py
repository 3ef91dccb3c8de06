"""Label stripping: names planted in every text field of STL/OBJ/PLY/3MF come out with none."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.tools.mesh import meshio
from app.tools.mesh.meshio import (
    check_clean,
    export_name,
    mesh_bytes,
    part_name,
    read_mesh_bytes,
    read_mesh_file,
    strip_file,
    write_mesh_file,
)

NAMES = ["DOE^JANE", "Jane Doe", "MRN-0042137", "19650412", "St Elsewhere Hospital"]
SECRET = " ".join(NAMES)


@pytest.fixture
def solid():
    box = trimesh.creation.box((20.0, 30.0, 40.0))
    box.apply_translation((5.0, -7.0, 100.0))
    return np.asarray(box.vertices), np.asarray(box.faces)


def _canonical(vertices, faces):
    """Triangles as sorted rows of rounded corner coordinates (order-free comparison)."""
    tri = np.round(np.asarray(vertices)[np.asarray(faces)], 4)
    rows = [tuple(sorted(map(tuple, t))) for t in tri]
    return sorted(rows)


def _planted_stl_binary(v, f):
    data = bytearray(mesh_bytes(v, f, "stl"))
    data[:80] = SECRET.encode()[:80].ljust(80, b"\0")
    for n in range(len(f)):  # attribute words: 2 bytes per triangle
        data[84 + 50 * n + 48 : 84 + 50 * n + 50] = b"JD"
    return bytes(data)


def _planted_stl_ascii(v, f):
    text = mesh_bytes(v, f, "stl-ascii").decode()
    text = text.replace("solid mesh", f"solid {SECRET}", 1).replace(
        "endsolid mesh", f"endsolid {NAMES[0]}"
    )
    return text.replace("endfacet\n", f"endfacet\ncolor {NAMES[4]}\n", 1).encode()


def _planted_obj(v, f):
    lines = [
        f"# patient {NAMES[0]} id {NAMES[2]}",
        f"mtllib /home/{NAMES[1]}/study.mtl",
        f"o {NAMES[0]}",
        f"g {NAMES[4]}",
        f"usemtl {NAMES[3]}",
        "s 1",
    ]
    lines += [f"v {a} {b} {c}" for a, b, c in v]
    lines += ["vn 0 0 1", "vt 0.5 0.5"]
    lines += [f"f {a + 1}/1/1 {b + 1}/1/1 {c + 1}/1/1" for a, b, c in f]
    return "\n".join(lines).encode()


def _planted_ply_ascii(v, f):
    header = [
        "ply", "format ascii 1.0", f"comment patient {NAMES[0]}", f"obj_info {NAMES[4]}",
        f"element vertex {len(v)}", "property float x", "property float y", "property float z",
        "property uchar red", f"element face {len(f)}", "property list uchar int vertex_indices",
        "element patient 1", "property int dob", "end_header",
    ]  # fmt: skip
    body = [f"{a} {b} {c} 7" for a, b, c in v] + [f"3 {a} {b} {c}" for a, b, c in f] + [NAMES[3]]
    return ("\n".join(header + body) + "\n").encode()


def _planted_ply_binary(v, f):
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment {NAMES[1]}\nobj_info {NAMES[2]}\n"
        f"element vertex {len(v)}\nproperty double x\nproperty double y\nproperty double z\n"
        f"element face {len(f)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode()
    body = np.asarray(v, "<f8").tobytes()
    for tri in f:
        body += struct.pack("<B3i", 3, *tri)
    return header + body + NAMES[0].encode()  # trailing bytes after the geometry


def _planted_3mf(v, f):
    ns = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
    verts = "".join(f'<vertex x="{a}" y="{b}" z="{c}"/>' for a, b, c in v)
    tris = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in f)
    model = (
        f'<?xml version="1.0"?><!-- {NAMES[0]} --><model unit="millimeter" xml:lang="en" xmlns="{ns}">'
        f'<metadata name="Title">{NAMES[0]}</metadata><metadata name="Designer">{NAMES[1]}</metadata>'
        f'<metadata name="Description">{NAMES[2]}</metadata><metadata name="CreationDate">{NAMES[3]}</metadata>'
        f'<metadata name="Application">{NAMES[4]}</metadata>'
        f'<resources><object id="1" type="model" name="{NAMES[0]}" partnumber="{NAMES[2]}">'
        f"<mesh><vertices>{verts}</vertices><triangles>{tris}</triangles></mesh></object></resources>"
        f'<build><item objectid="1" partnumber="{NAMES[1]}"/></build></model>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>',
        )
        z.writestr("_rels/.rels", f"<Relationships><!-- {NAMES[1]} --></Relationships>")
        z.writestr("3D/3dmodel.model", model)
        z.writestr("Metadata/thumbnail.png", b"\x89PNG" + NAMES[0].encode())
        z.writestr(
            "docProps/core.xml", f"<coreProperties><creator>{NAMES[1]}</creator></coreProperties>"
        )
        z.writestr("Metadata/Slic3r_PE.config", f"; {NAMES[4]}")
        z.comment = NAMES[2].encode()
    return buffer.getvalue()


PLANTED = {
    "binary.stl": _planted_stl_binary,
    "ascii.stl": _planted_stl_ascii,
    "model.obj": _planted_obj,
    "ascii.ply": _planted_ply_ascii,
    "binary.ply": _planted_ply_binary,
    "model.3mf": _planted_3mf,
}


def _all_text(path):
    data = path.read_bytes()
    if path.suffix == ".3mf":
        with zipfile.ZipFile(path) as z:
            data += b"".join(z.read(n) + n.encode() for n in z.namelist()) + z.comment
    return data


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_names_are_stripped_and_geometry_kept(tmp_path, solid, name):
    v, f = solid
    src = tmp_path / name
    src.write_bytes(PLANTED[name](v, f))
    raw = _all_text(src)
    assert any(n.encode() in raw for n in NAMES)  # the plant worked
    assert check_clean(src)  # and the check sees it
    out = strip_file(src, tmp_path / f"C-7K3M-Q9_bone.{src.suffix.lstrip('.')}")
    assert check_clean(out) == []
    text = _all_text(out)
    for planted in NAMES:
        assert planted.encode() not in text
        assert planted.lower().encode() not in text.lower()
    before, after = read_mesh_file(src), read_mesh_file(out)
    assert _canonical(*after) == _canonical(*before)
    reread = trimesh.Trimesh(*after, process=False)
    assert reread.is_watertight and reread.volume == pytest.approx(20 * 30 * 40, rel=1e-4)


@pytest.mark.parametrize("fmt", ["stl", "stl-ascii", "obj", "ply", "3mf"])
def test_writers_are_clean_and_in_mm(tmp_path, solid, fmt):
    v, f = solid
    path = tmp_path / export_name("C-7K3M-Q9", "Left femur", fmt)
    assert path.name == f"C-7K3M-Q9_left-femur.{'stl' if fmt == 'stl-ascii' else fmt}"
    write_mesh_file(path, v, f, fmt)
    assert check_clean(path) == []
    assert _canonical(*read_mesh_file(path)) == _canonical(*read_mesh_file_from(v, f))
    if fmt == "3mf":
        with zipfile.ZipFile(path) as z:
            assert b'unit="millimeter"' in z.read("3D/3dmodel.model")


def read_mesh_file_from(v, f):
    return np.asarray(v, dtype=np.float32).astype(np.float64), f


def test_3mf_units_and_build_transforms_are_applied(tmp_path):
    ns = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
    model = (
        f'<model unit="centimeter" xmlns="{ns}"><resources><object id="1"><mesh><vertices>'
        '<vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/>'
        '</vertices><triangles><triangle v1="0" v2="1" v3="2"/></triangles></mesh></object>'
        '</resources><build><item objectid="1" transform="1 0 0 0 1 0 0 0 1 5 0 0"/></build></model>'
    )
    path = tmp_path / "cm.3mf"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("3D/3dmodel.model", model)
    vertices, _ = read_mesh_file(path)
    assert vertices[:, 0].max() == pytest.approx(60.0)  # (1 + 5) cm in mm


def test_names_refuse_anything_but_a_pseudonym():
    with pytest.raises(MeshError):
        export_name("DOE^JANE", "bone", "stl")
    assert part_name("../../etc/Jane Doe!") == "etc-jane-doe"
    assert part_name("***") == "part"
    with pytest.raises(MeshError):
        read_mesh_file("model.docx")


# --------------------------------------------------------------------------- expansion caps

_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"


def _3mf_of(model: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("3D/3dmodel.model", model)
    return buffer.getvalue()


def _nested_3mf(fan_out: int = 16, levels: int = 4) -> bytes:
    """One triangle, placed ``fan_out`` times per level through nested components."""
    objects = [
        '<object id="1" type="model"><mesh><vertices><vertex x="0" y="0" z="0"/>'
        '<vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/></vertices>'
        '<triangles><triangle v1="0" v2="1" v3="2"/></triangles></mesh></object>'
    ]
    for level in range(2, levels + 2):
        refs = "".join(
            f'<component objectid="{level - 1}" transform="1 0 0 0 1 0 0 0 1 {i} 0 0"/>'
            for i in range(fan_out)
        )
        objects.append(
            f'<object id="{level}" type="model"><components>{refs}</components></object>'
        )
    return _3mf_of(
        f'<model unit="millimeter" xmlns="{_NS}"><resources>{"".join(objects)}</resources>'
        f'<build><item objectid="{levels + 1}"/></build></model>'
    )


def test_nested_3mf_components_cannot_expand_without_bound():
    bomb = _nested_3mf()
    assert len(bomb) < 2048  # it used to give 16**4 = 65,536 triangles
    with pytest.raises(MeshError, match="component references") as error:
        read_mesh_bytes(bomb, "3mf")
    assert "\n" not in str(error.value)
    vertices, faces = read_mesh_bytes(_nested_3mf(fan_out=4, levels=2), "3mf")
    assert len(faces) == 16 and len(vertices) == 48


def test_3mf_objects_that_contain_themselves_or_nest_too_deep_are_refused():
    loop = _3mf_of(
        f'<model unit="millimeter" xmlns="{_NS}"><resources><object id="1" type="model">'
        '<components><component objectid="1"/></components></object></resources>'
        '<build><item objectid="1"/></build></model>'
    )
    with pytest.raises(MeshError, match="contains itself"):
        read_mesh_bytes(loop, "3mf")
    with pytest.raises(MeshError, match="levels of nested components"):
        read_mesh_bytes(_nested_3mf(fan_out=1, levels=12), "3mf")


def test_a_3mf_model_part_that_inflates_is_refused(monkeypatch):
    monkeypatch.setattr(meshio, "MAX_FILE_BYTES", 1 << 20)
    padding = " " * (4 << 20)  # deflates to a few KB
    bomb = _3mf_of(f'<model unit="millimeter" xmlns="{_NS}">{padding}</model>')
    assert len(bomb) < 64 << 10
    with pytest.raises(MeshError, match="bytes of model XML"):
        read_mesh_bytes(bomb, "3mf")
    entities = _3mf_of('<!DOCTYPE m [<!ENTITY a "aaaa">]><model xmlns="x">&a;</model>')
    with pytest.raises(MeshError, match="XML entities"):
        read_mesh_bytes(entities, "3mf")


@pytest.mark.parametrize("fmt", ["stl", "stl-ascii", "obj", "ply", "3mf"])
def test_every_reader_caps_triangles_and_bytes(tmp_path, solid, fmt, monkeypatch):
    v, f = solid  # a box: 12 triangles
    data = mesh_bytes(v, f, fmt)
    kind = "stl" if fmt == "stl-ascii" else fmt
    assert len(read_mesh_bytes(data, kind)[1]) == 12
    monkeypatch.setattr(meshio, "MAX_TRIANGLES", 11)
    with pytest.raises(MeshError, match="more than 11 triangle"):
        read_mesh_bytes(data, kind)
    monkeypatch.setattr(meshio, "MAX_TRIANGLES", 12)
    monkeypatch.setattr(meshio, "MAX_FILE_BYTES", len(data) - 1)
    path = tmp_path / f"model.{kind}"
    path.write_bytes(data)
    with pytest.raises(MeshError, match="bytes"):
        read_mesh_file(path)


def test_ply_element_counts_are_capped_before_reading(monkeypatch):
    header = b"ply\nformat binary_little_endian 1.0\nelement vertex 4000000000\n"
    header += b"property float x\nproperty float y\nproperty float z\nend_header\n"
    with pytest.raises(MeshError, match="vertex elements"):
        read_mesh_bytes(header, "ply")

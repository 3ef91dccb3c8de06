"""A multi-material model for PrusaSlicer: one object whose volumes are the parts, each printed
by its own extruder.

Written only into the slicer's private folder (never kept): a plain 3MF holding the parts as one
mesh in place, and PrusaSlicer's own model config (``Metadata/Slic3r_PE_model.config``) naming
each volume's triangle range and extruder. Volume names are ``part1``, ``part2``...: no source
names reach the slicer.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from app.printing.slicer.arrange import placed
from app.printing.slicer.settings import Part

_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
)


def tool_model_3mf(parts: list[Part], offsets: list[np.ndarray]) -> bytes:
    """The 3MF PrusaSlicer reads as one object with a volume (and extruder) per part."""
    vertices, faces = placed(parts, offsets)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", _CONTENT_TYPES)
        archive.writestr("_rels/.rels", _RELS)
        archive.writestr("3D/3dmodel.model", _model_xml(vertices, faces))
        archive.writestr("Metadata/Slic3r_PE_model.config", _volumes_xml(parts))
    return buffer.getvalue()


def _model_xml(vertices: np.ndarray, faces: np.ndarray) -> str:
    head = f'<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" xmlns="{_NS}">'
    head += '<resources><object id="1" type="model"><mesh><vertices>'
    v = "".join(f'<vertex x="{x:.6f}" y="{y:.6f}" z="{z:.6f}"/>' for x, y, z in vertices)
    t = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in faces)
    tail = '</triangles></mesh></object></resources><build><item objectid="1"/></build></model>'
    return f"{head}{v}</vertices><triangles>{t}{tail}"


def _volumes_xml(parts: list[Part]) -> str:
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n<config><object id="1" instances_count="1">']
    out.append('<metadata type="object" key="name" value="model"/>')
    first = 0
    for index, part in enumerate(parts):
        last = first + len(part.faces) - 1
        out.append(
            f'<volume firstid="{first}" lastid="{last}">'
            f'<metadata type="volume" key="name" value="part{index + 1}"/>'
            f'<metadata type="volume" key="extruder" value="{max(part.extruder, 1)}"/></volume>'
        )
        first = last + 1
    out.append("</object></config>")
    return "".join(out)

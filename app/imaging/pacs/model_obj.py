"""Encapsulated OBJ and MTL objects (DICOM Supplement 208, SOP Classes
1.2.840.10008.5.1.4.1.1.104.4 and .104.5): a coloured multi-part model as one Wavefront OBJ (one
group per part, in mm, patient LPS space) and its material library (one colour per part).

The OBJ instance names its MTL instance in its Referenced Instance Sequence; both carry the same
patient, study, frame of reference and source references as the Encapsulated STL objects.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from app.imaging.pacs.model3d import SourceSeries, encapsulated_stl
from app.imaging.pacs.nodes import PacsError

OBJ_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.4"
MTL_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.5"
MTL_NAME = "model.mtl"
DEFAULT_COLOUR = "#cccccc"
_TRIANGLE = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])


def stl_triangles(stl: bytes) -> np.ndarray:
    """The (n, 3, 3) corners of a binary STL's triangles."""
    if len(stl) < 84:
        msg = "a mesh part is not a binary STL (too short)"
        raise PacsError(msg)
    (count,) = struct.unpack_from("<I", stl, 80)
    if len(stl) < 84 + count * _TRIANGLE.itemsize:
        msg = "a mesh part is not a binary STL (truncated)"
        raise PacsError(msg)
    return np.frombuffer(stl, dtype=_TRIANGLE, count=count, offset=84)["corners"]


def _rgb(colour: str | None) -> tuple[float, float, float]:
    text = (colour or DEFAULT_COLOUR).lstrip("#")
    try:
        return tuple(int(text[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        msg = f"part colour '{colour}' is not #rrggbb"
        raise PacsError(msg) from None


def obj_and_mtl(
    parts: Mapping[str, bytes], colours: Mapping[str, str | None]
) -> tuple[bytes, bytes]:
    """One OBJ (a group and material per part, shared corners welded) and its MTL."""
    obj = [f"# MedPrint model, millimetres, patient LPS\nmtllib {MTL_NAME}\n"]
    mtl = ["# MedPrint materials\n"]
    first = 1
    for name, stl in parts.items():
        vertices, faces = _welded(stl_triangles(stl))
        obj.append(f"o {name}\nusemtl {name}\n")
        obj.append(("v %.9g %.9g %.9g\n" * len(vertices)) % tuple(vertices.ravel().tolist()))
        obj.append(("f %d %d %d\n" * len(faces)) % tuple((faces + first).ravel().tolist()))
        first += len(vertices)
        r, g, b = _rgb(colours.get(name))
        mtl.append(f"newmtl {name}\nKa 0 0 0\nKd {r:.4f} {g:.4f} {b:.4f}\nKs 0 0 0\nd 1\nillum 1\n")
    return "".join(obj).encode("ascii"), "".join(mtl).encode("ascii")


def _welded(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct corners (bit-equal, compared as 12-byte rows: faster than a float sort) and
    each triangle's three corner indices."""
    corners = np.ascontiguousarray(triangles.reshape(-1, 3))
    rows = corners.view(np.dtype((np.void, corners.itemsize * 3))).ravel()
    _, first, index = np.unique(rows, return_index=True, return_inverse=True)
    return corners[first], index.reshape(-1, 3)


def read_document(data: bytes) -> bytes:
    """The document inside an encapsulated instance (its trailing pad byte removed)."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    if "EncapsulatedDocument" not in ds:
        msg = "this instance holds no encapsulated document"
        raise PacsError(msg)
    document = bytes(ds.EncapsulatedDocument)
    length = ds.get("EncapsulatedDocumentLength")
    return (
        document[: int(length)] if length is not None and int(length) <= len(document) else document
    )


def mtl_colours(mtl: bytes) -> dict[str, str]:
    """Material name -> ``#rrggbb`` from an MTL's ``newmtl`` / ``Kd`` lines."""
    colours, name = {}, None
    for line in mtl.decode("ascii", "replace").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "newmtl":
            name = words[1]
        elif len(words) == 4 and words[0] == "Kd" and name:
            try:
                rgb = [min(255, max(0, round(float(v) * 255))) for v in words[1:]]
            except ValueError:
                continue
            colours[name] = "#" + "".join(f"{v:02x}" for v in rgb)
    return colours


def _as(ds: Dataset, sop_class: str, mime: str) -> Dataset:
    ds.SOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.MIMETypeOfEncapsulatedDocument = mime
    return ds


def encapsulated_obj_mtl(
    obj: bytes,
    mtl: bytes,
    source: SourceSeries,
    *,
    series_uid: str,
    first_number: int,
    title: str,
    serial: str,
) -> list[Dataset]:
    """The Encapsulated MTL and the Encapsulated OBJ that references it (in that order)."""
    common = {"series_uid": series_uid, "serial": serial}
    material = encapsulated_stl(
        mtl, source, number=first_number, title=f"{title} materials", **common
    )
    material = _as(material, MTL_SOP_CLASS, "model/mtl")
    model = encapsulated_stl(obj, source, number=first_number + 1, title=title, **common)
    model = _as(model, OBJ_SOP_CLASS, "model/obj")
    reference = Dataset()
    reference.ReferencedSOPClassUID = MTL_SOP_CLASS
    reference.ReferencedSOPInstanceUID = material.SOPInstanceUID
    model.ReferencedInstanceSequence = Sequence([reference])
    return [material, model]

"""Moving segmentations to and from other tools: 3D Slicer .seg.nrrd, NIfTI label maps, DICOM SEG.

* **.seg.nrrd** (3D Slicer): written here directly (no extra dependency): gzip-encoded NRRD in
  LPS space with Slicer's per-segment fields (``SegmentN_ID/Name/Color/LabelValue/Layer/Extent/
  Tags``) and ``Segmentation_*`` fields. Non-overlapping segments share one layer (a 3D label
  map); overlapping ones go to further layers (a 4D ``list domain domain domain`` file), exactly
  as Slicer stores them. Reading accepts those files, Slicer's cropped extents, and plain label
  map NRRDs, and resamples them (nearest neighbour) onto the volume's grid.
* **NIfTI** (SimpleITK): one label map, value n = n-th segment (overlaps: later segments win);
  names and colours are not part of the format, :func:`export_nifti` returns the value table.
* **DICOM SEG** (highdicom): binary segmentation referencing the source series; needs the source
  datasets (pydicom) of the volume. Patient and study attributes are copied from them, as DICOM
  requires: a SEG of the original series is PHI, a SEG of de-identified sources is de-identified
  too (their de-identification method is carried over). Which sources to give is the caller's
  decision (:mod:`app.workflow.segment` de-identifies them unless told otherwise).

Every importer returns a new :class:`Segmentation` on the grid it is given;
:func:`import_file` / :func:`export_file` pick the format from the file name.
"""

from __future__ import annotations

import gzip
import re
import warnings
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from app import __version__
from app.errors import SegmentationError
from app.tools.segmentation.grid import Grid, mask_box
from app.tools.segmentation.model import PALETTE, Segment, Segmentation

SEG_NRRD, NIFTI, DICOM_SEG = "seg.nrrd", "nifti", "dicom-seg"
_FORMAT_HELP = "use .seg.nrrd/.nrrd, .nii/.nii.gz or .dcm (DICOM SEG)"
# Attributes that say a dataset was de-identified: a SEG of such sources says so too.
_DEID_ATTRIBUTES = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)

_NRRD_TYPES = {
    "uchar": np.uint8,
    "unsigned char": np.uint8,
    "uint8": np.uint8,
    "uint8_t": np.uint8,
    "signed char": np.int8,
    "int8": np.int8,
    "int8_t": np.int8,
    "char": np.int8,
    "short": np.int16,
    "int16": np.int16,
    "int16_t": np.int16,
    "signed short": np.int16,
    "short int": np.int16,
    "ushort": np.uint16,
    "unsigned short": np.uint16,
    "uint16": np.uint16,
    "uint16_t": np.uint16,
    "int": np.int32,
    "int32": np.int32,
    "int32_t": np.int32,
    "signed int": np.int32,
    "uint": np.uint32,
    "unsigned int": np.uint32,
    "uint32": np.uint32,
    "uint32_t": np.uint32,
}
_SLICER_TAGS = (
    "Segmentation.Status:inprogress|TerminologyEntry:Segmentation category and type - 3D Slicer General "
    "Anatomy list~SCT^85756007^Tissue~SCT^85756007^Tissue~^^~Anatomic codes - DICOM master list~^^~^^|"
)


# ---------------------------------------------------------------- layers
def pack_layers(seg: Segmentation) -> tuple[np.ndarray, list[tuple[Segment, int, int]]]:
    """Label layers (L, k, j, i) uint8 with no overlap inside a layer; entries (segment, layer, value)."""
    layers: list[np.ndarray] = []
    counts: list[int] = []
    entries = []
    for segment in seg.segments:
        box = seg.bbox(segment)
        mask = seg.mask(segment, box) if box is not None else None
        for n, layer in enumerate(layers):
            if counts[n] < 255 and (mask is None or not np.any(layer[box][mask])):
                break
        else:
            layers.append(np.zeros(seg.grid.shape, dtype=np.uint8))
            counts.append(0)
            n = len(layers) - 1
        counts[n] += 1
        if mask is not None:
            layers[n][box][mask] = counts[n]
        entries.append((segment, n, counts[n]))
    if not layers:
        layers.append(np.zeros(seg.grid.shape, dtype=np.uint8))
    return np.stack(layers), entries


# ------------------------------------------------------------ .seg.nrrd
def _vec(values: Any) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def write_seg_nrrd(seg: Segmentation, stream: BinaryIO) -> None:
    """Write a 3D Slicer segmentation NRRD (see the module docstring)."""
    layers, entries = pack_layers(seg)
    grid = seg.grid
    axes = grid.direction_matrix * np.asarray(grid.spacing)[None, :]
    single = layers.shape[0] == 1
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
    ]
    lines.append("type: unsigned char")
    if single:
        lines += [
            "dimension: 3",
            "space: left-posterior-superior",
            "sizes: {} {} {}".format(*grid.size_ijk),
            "space directions: " + " ".join(_vec(axes[:, a]) for a in range(3)),
            "kinds: domain domain domain",
        ]
    else:
        lines += [
            "dimension: 4",
            "space: left-posterior-superior",
            "sizes: {} {} {} {}".format(layers.shape[0], *grid.size_ijk),
            "space directions: none " + " ".join(_vec(axes[:, a]) for a in range(3)),
            "kinds: list domain domain domain",
        ]
    lines += ["encoding: gzip", "space origin: " + _vec(grid.origin)]
    for n, (segment, layer, value) in enumerate(entries):
        box = seg.bbox(segment)
        extent = (
            "0 -1 0 -1 0 -1"
            if box is None
            else f"{box[2].start} {box[2].stop - 1} {box[1].start} {box[1].stop - 1} {box[0].start} {box[0].stop - 1}"
        )
        lines += [
            f"Segment{n}_Color:={' '.join(f'{c:.6g}' for c in segment.color)}",
            f"Segment{n}_ColorAutoGenerated:=0",
            f"Segment{n}_Extent:={extent}",
            f"Segment{n}_ID:={segment.id}",
            f"Segment{n}_LabelValue:={value}",
            f"Segment{n}_Layer:={layer}",
            f"Segment{n}_Name:={_clean(segment.name)}",
            f"Segment{n}_NameAutoGenerated:=0",
            f"Segment{n}_Tags:={_SLICER_TAGS}",
        ]
    lines += [
        "Segmentation_ContainedRepresentationNames:=Binary labelmap|",
        "Segmentation_ConversionParameters:=",
        "Segmentation_MasterRepresentation:=Binary labelmap",
        "Segmentation_ReferenceImageExtentOffset:=0 0 0",
    ]
    stream.write(("\n".join(lines) + "\n\n").encode("utf-8"))
    data = np.ascontiguousarray(np.moveaxis(layers, 0, -1) if not single else layers[0])
    with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=6, mtime=0) as out:
        out.write(memoryview(data.reshape(-1)))


def _clean(text: str) -> str:
    return text.replace("\n", " ").replace("\r", " ")


def _read_header(stream: BinaryIO) -> tuple[dict[str, str], dict[str, str]]:
    """NRRD fields (lower-case keys) and key/value pairs, up to the blank line."""
    if not stream.readline().startswith(b"NRRD000"):
        msg = "not a NRRD file (no NRRD magic); export it from Slicer as .seg.nrrd or .nrrd"
        raise SegmentationError(msg)
    fields: dict[str, str] = {}
    keyvalues: dict[str, str] = {}
    while True:
        raw = stream.readline()
        if not raw:
            msg = "NRRD header ends without data; the file is truncated"
            raise SegmentationError(msg)
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if line == "":
            return fields, keyvalues
        if line.startswith("#"):
            continue
        if ":=" in line:
            key, value = line.split(":=", 1)
            keyvalues[key] = value
        elif ": " in line:
            key, value = line.split(": ", 1)
            fields[key.strip().lower()] = value.strip()


def _parse_nrrd(stream: BinaryIO) -> tuple[dict[str, str], dict[str, str], np.ndarray]:
    fields, keyvalues = _read_header(stream)
    if "data file" in fields or "datafile" in fields:
        msg = "detached NRRD data files are not supported; save the segmentation as one .seg.nrrd"
        raise SegmentationError(msg)
    dtype = _NRRD_TYPES.get(fields.get("type", "").lower())
    if dtype is None:
        msg = (
            f"NRRD type {fields.get('type')!r} is not a label type; save the label map as integers"
        )
        raise SegmentationError(msg)
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
    except (KeyError, ValueError):
        msg = "the NRRD header has no valid 'sizes' field; export the file again"
        raise SegmentationError(msg) from None
    payload = _read_payload(stream, fields.get("encoding", "raw").lower())
    itemsize = np.dtype(dtype).itemsize
    count = int(np.prod(sizes))
    if len(payload) < count * itemsize:
        msg = "NRRD data is shorter than its sizes; the file is truncated"
        raise SegmentationError(msg)
    endian = "<" if fields.get("endian", "little") == "little" else ">"
    stored = np.dtype(dtype).newbyteorder(endian) if itemsize > 1 else np.dtype(dtype)
    array = np.frombuffer(payload[: count * itemsize], dtype=stored)
    array = array.astype(np.dtype(dtype).newbyteorder("="), copy=False).reshape(sizes[::-1])
    return fields, keyvalues, array


def _read_payload(stream: BinaryIO, encoding: str) -> bytes:
    payload = stream.read()
    if encoding in ("gzip", "gz"):
        try:
            return gzip.decompress(payload)
        except (OSError, EOFError, zlib.error) as exc:
            msg = "NRRD data is damaged (gzip); export the file again"
            raise SegmentationError(msg) from exc
    if encoding != "raw":
        msg = f"NRRD encoding {encoding!r} is not supported; use raw or gzip"
        raise SegmentationError(msg)
    return payload


def _nrrd_geometry(fields: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """(3×3 axes as columns in LPS mm, origin) from the NRRD space fields."""
    vectors = re.findall(r"\(([^)]*)\)", fields.get("space directions", ""))
    if len(vectors) != 3:
        msg = "the NRRD has no 3D space directions; it is not a volume label map"
        raise SegmentationError(msg)
    try:
        axes = np.array([[float(x) for x in v.split(",")] for v in vectors]).T
        found = re.findall(r"\(([^)]*)\)", fields.get("space origin", "(0,0,0)"))
        origin = np.array([float(x) for x in found[0].split(",")])
    except (ValueError, IndexError):
        msg = "the NRRD space directions or origin are not numbers; export the file again"
        raise SegmentationError(msg) from None
    if axes.shape != (3, 3) or origin.shape != (3,) or abs(np.linalg.det(axes)) < 1e-12:
        msg = "the NRRD geometry is not a 3D grid; export the file again"
        raise SegmentationError(msg)
    space = fields.get("space", "left-posterior-superior").lower()
    if space in ("right-anterior-superior", "ras"):
        flip = np.diag([-1.0, -1.0, 1.0])
        axes, origin = flip @ axes, flip @ origin
    elif space not in ("left-posterior-superior", "lps"):
        msg = f"NRRD space {space!r} is not supported; use LPS or RAS"
        raise SegmentationError(msg)
    return axes, origin


def _resample_to(array: np.ndarray, axes: np.ndarray, origin: np.ndarray, grid: Grid) -> np.ndarray:
    """Nearest-neighbour resampling of a (k, j, i) label array with this geometry onto ``grid``."""
    import SimpleITK as sitk  # noqa: PLC0415

    spacing = np.linalg.norm(axes, axis=0)
    direction = axes / spacing[None, :]
    source = Grid(array.shape, tuple(origin), tuple(spacing), tuple(direction.ravel()))
    if source.matches(grid):
        return np.ascontiguousarray(array)
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetOrigin(tuple(float(v) for v in origin))
    image.SetSpacing(tuple(float(v) for v in spacing))
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    reference = grid.to_sitk(np.zeros((1, 1, 1), np.uint8))
    reference = sitk.Image(grid.size_ijk, image.GetPixelID())
    reference.SetOrigin(grid.origin)
    reference.SetSpacing(grid.spacing)
    reference.SetDirection(grid.direction)
    out = sitk.Resample(
        image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID()
    )
    return sitk.GetArrayFromImage(out)


def read_seg_nrrd(stream: BinaryIO, grid: Any) -> Segmentation:
    """Import a 3D Slicer .seg.nrrd (or a plain label map .nrrd) onto ``grid``."""
    grid = Grid.of(grid)
    fields, keyvalues, array = _parse_nrrd(stream)
    axes, origin = _nrrd_geometry(fields)
    if array.ndim == 3:
        layers = array[None]
    elif array.ndim == 4:
        layers = np.moveaxis(array, -1, 0)  # the list axis is the fastest one
    else:
        msg = f"a segmentation NRRD is 3D or 4D, this one is {array.ndim}D"
        raise SegmentationError(msg)
    described = _slicer_segments(keyvalues)
    if not described:
        values = sorted(int(v) for v in np.unique(layers[0]) if v != 0)
        described = [
            {"name": f"Label {v}", "layer": 0, "value": v, "color": None, "id": ""} for v in values
        ]
    if len(described) > 64:
        msg = f"the file has {len(described)} segments; MedPrint holds at most 64"
        raise SegmentationError(msg)
    seg = Segmentation(grid)
    resampled = [_resample_to(layer, axes, origin, grid) for layer in layers]
    masks = {}
    for n, entry in enumerate(described):
        if not 0 <= entry["layer"] < len(resampled):
            msg = f"segment {entry['name']!r} refers to a missing layer; the file is inconsistent"
            raise SegmentationError(msg)
        masks[n] = resampled[entry["layer"]] == entry["value"]
    _fill(
        seg, [(e["name"], e["color"]) for e in described], [masks[n] for n in range(len(described))]
    )
    return seg


def _slicer_segments(keyvalues: dict[str, str]) -> list[dict]:
    out = []
    n = 0
    while f"Segment{n}_ID" in keyvalues or f"Segment{n}_Name" in keyvalues:
        color = keyvalues.get(f"Segment{n}_Color")
        out.append(
            {
                "id": keyvalues.get(f"Segment{n}_ID", ""),
                "name": keyvalues.get(f"Segment{n}_Name", f"Segment {n + 1}"),
                "layer": int(keyvalues.get(f"Segment{n}_Layer", "0")),
                "value": int(keyvalues.get(f"Segment{n}_LabelValue", str(n + 1))),
                "color": tuple(float(c) for c in color.split()) if color else None,
            }
        )
        n += 1
    return out


def _fill(seg: Segmentation, described: list[tuple[str, Any]], masks: list[np.ndarray]) -> None:
    """Add the segments and their masks to a fresh segmentation, then clear its history."""
    for (name, color), mask in zip(described, masks, strict=True):
        segment = seg.add_segment(name, _safe_color(color, len(seg.segments)))
        box = mask_box(mask)
        if box is not None:
            seg.modify(
                segment,
                mask[box],
                "add",
                offset=(box[0].start, box[1].start, box[2].start),
                exclusive=False,
            )
    seg.history.clear()


def _safe_color(color: Any, n: int) -> tuple[float, float, float]:
    if color is None or len(color) != 3 or not all(0 <= c <= 1 for c in color):
        return PALETTE[n % len(PALETTE)]
    return tuple(float(c) for c in color)  # type: ignore[return-value]


def export_seg_nrrd(seg: Segmentation, path: str | Path) -> None:
    with open(path, "wb") as stream:
        write_seg_nrrd(seg, stream)


def import_seg_nrrd(path: str | Path, grid: Any) -> Segmentation:
    with open(path, "rb") as stream:
        return read_seg_nrrd(stream, grid)


# ----------------------------------------------------------------- NIfTI
def export_nifti(
    seg: Segmentation, path: str | Path, keys: list[str] | None = None
) -> list[tuple[int, str]]:
    """Write a NIfTI label map (``.nii`` or ``.nii.gz``); returns [(value, segment name)]."""
    import SimpleITK as sitk  # noqa: PLC0415

    if not str(path).endswith((".nii", ".nii.gz")):
        msg = "a NIfTI file name ends with .nii or .nii.gz"
        raise SegmentationError(msg)
    labels, segments = seg.label_map(keys)
    sitk.WriteImage(seg.grid.to_sitk(labels), str(path), True)
    return [(n, s.name) for n, s in enumerate(segments, start=1)]


def import_nifti(path: str | Path, grid: Any, names: dict[int, str] | None = None) -> Segmentation:
    """Read a NIfTI label map onto ``grid``: one segment per label value (named from ``names``)."""
    import SimpleITK as sitk  # noqa: PLC0415

    grid = Grid.of(grid)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        msg = "cannot read the NIfTI file; check it is a .nii/.nii.gz label map"
        raise SegmentationError(msg) from exc
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        msg = "a NIfTI label map must be a 3D single-component image"
        raise SegmentationError(msg)
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.mod(array, 1) == 0):
            msg = "the NIfTI image holds fractional values; it is not a label map"
            raise SegmentationError(msg)
        array = array.astype(np.int32)
    axes = np.asarray(image.GetDirection()).reshape(3, 3) * np.asarray(image.GetSpacing())[None, :]
    labels = _resample_to(array, axes, np.asarray(image.GetOrigin()), grid)
    values = [int(v) for v in np.unique(labels) if v != 0]
    if len(values) > 64:
        msg = f"the label map has {len(values)} labels; MedPrint holds at most 64"
        raise SegmentationError(msg)
    names = names or {}
    seg = Segmentation(grid)
    _fill(seg, [(names.get(v, f"Label {v}"), None) for v in values], [labels == v for v in values])
    return seg


# ------------------------------------------------------------- DICOM SEG
def _sorted_sources(grid: Grid, datasets: list[Any]) -> list[tuple[int, Any]]:
    """(k, dataset) for every source slice, checked against the grid."""
    out = []
    for ds in datasets:
        position = getattr(ds, "ImagePositionPatient", None)
        if position is None:
            msg = "a source dataset has no Image Position (Patient); pass the CT/MR series' slices"
            raise SegmentationError(msg)
        i, j, k = grid.lps_to_index([float(v) for v in position])
        if (
            abs(i) > 0.05
            or abs(j) > 0.05
            or abs(k - round(k)) > 0.05
            or not 0 <= round(k) < grid.shape[0]
        ):
            msg = "the source datasets are not the series the volume was loaded from"
            raise SegmentationError(msg)
        if (int(ds.Rows), int(ds.Columns)) != grid.shape[1:]:
            msg = (
                "the source datasets' image size differs from the volume; pass the matching series"
            )
            raise SegmentationError(msg)
        out.append((round(k), ds))
    if sorted(k for k, _ in out) != list(range(grid.shape[0])):
        msg = "the source datasets must be every slice of the volume, each once"
        raise SegmentationError(msg)
    return out


def write_dicom_seg(
    seg: Segmentation,
    source_datasets: list[Any],
    stream: BinaryIO | str | Path,
    *,
    keys: list[str] | None = None,
    series_number: int = 300,
    series_description: str = "MedPrint segmentation",
) -> None:
    """Write a binary DICOM SEG of the (non-empty) segments referencing the source series."""
    import highdicom as hd  # noqa: PLC0415
    from pydicom.sr.codedict import codes  # noqa: PLC0415

    segments = [seg.segment(k) for k in keys] if keys is not None else seg.segments
    segments = [s for s in segments if not seg.is_empty(s)]
    if not segments:
        msg = "every segment is empty; a DICOM SEG needs at least one segment with voxels"
        raise SegmentationError(msg)
    sources = _sorted_sources(seg.grid, source_datasets)
    pixels = np.zeros((len(sources), *seg.grid.shape[1:], len(segments)), dtype=np.uint8)
    for n, segment in enumerate(segments):
        mask = seg.mask(segment)
        for row, (k, _) in enumerate(sources):
            pixels[row, :, :, n] = mask[k]
    algorithm = hd.AlgorithmIdentificationSequence(
        name="MedPrint segmentation",
        version=__version__,
        family=codes.cid7162.MorphologicalOperations,
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=segment.name[:64],
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Bone
            if "bone" in segment.name.lower()
            else codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC,
            algorithm_identification=algorithm,
            display_color=hd.color.CIELabColor.from_rgb(*(round(c * 255) for c in segment.color)),
        )
        for n, segment in enumerate(segments, start=1)
    ]
    with warnings.catch_warnings():
        # highdicom warns about odd patient names and quotes them: keep PHI out of the logs
        warnings.simplefilter("ignore", UserWarning)
        result = _build_dicom_seg(
            hd, sources, pixels, descriptions, series_number, series_description
        )
    for keyword in _DEID_ATTRIBUTES:
        if keyword in sources[0][1]:
            setattr(result, keyword, sources[0][1].data_element(keyword).value)
    result.save_as(stream)


def _build_dicom_seg(hd, sources, pixels, descriptions, series_number, series_description):  # noqa: PLR0917
    return hd.seg.Segmentation(
        source_images=[ds for _, ds in sources],
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="MedPrint",
        manufacturer_model_name="MedPrint",
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description,
    )


def read_dicom_seg(source: BinaryIO | str | Path, grid: Any) -> Segmentation:
    """Import a DICOM SEG (binary or fractional, thresholded at 0.5) onto ``grid``."""
    import highdicom as hd  # noqa: PLC0415

    grid = Grid.of(grid)
    try:
        dicom_seg = hd.seg.segread(source)
    except Exception as exc:  # pydicom/highdicom raise many types for bad files
        msg = f"cannot read the DICOM SEG ({type(exc).__name__}); check the file is a Segmentation object"
        raise SegmentationError(msg) from exc
    numbers = list(dicom_seg.segment_numbers)
    if len(numbers) > 64:
        msg = f"the DICOM SEG has {len(numbers)} segments; MedPrint holds at most 64"
        raise SegmentationError(msg)
    seg = Segmentation(grid)
    described, masks = [], []
    for number in numbers:
        description = dicom_seg.get_segment_description(number)
        volume = dicom_seg.get_volume(
            segment_numbers=[number], combine_segments=False, dtype=np.float32
        )
        array = np.asarray(volume.array)
        if array.ndim == 4:
            array = array[..., 0]
        affine = np.asarray(volume.affine)  # (slice, row, column) index -> LPS mm
        axes = affine[:3, [2, 1, 0]]
        labels = _resample_to((array >= 0.5).astype(np.uint8), axes, affine[:3, 3], grid)
        color = None
        lab = getattr(description, "RecommendedDisplayCIELabValue", None)
        if lab is not None:
            rgb = hd.color.CIELabColor.from_dicom_value(lab).to_rgb(clip=True)
            color = tuple(c / 255.0 for c in rgb)
        described.append((str(description.SegmentLabel), color))
        masks.append(labels.astype(bool))
    _fill(seg, described, masks)
    return seg


# ------------------------------------------------------------ by file name
def format_of(path: str | Path) -> str:
    """The exchange format a file name asks for: ``seg.nrrd``, ``nifti`` or ``dicom-seg``."""
    name = str(path)
    if name.endswith(".nrrd"):
        return SEG_NRRD
    if name.endswith((".nii", ".nii.gz")):
        return NIFTI
    if name.endswith(".dcm"):
        return DICOM_SEG
    msg = f"'{Path(path).name}' is not a segmentation file name; {_FORMAT_HELP}"
    raise SegmentationError(msg)


def import_file(path: str | Path, grid: Any) -> Segmentation:
    """Read any exchange format (by file name) onto ``grid``."""
    kind = format_of(path)
    if not Path(path).is_file():
        msg = "the segmentation file does not exist; check the path"
        raise SegmentationError(msg)
    if kind == SEG_NRRD:
        return import_seg_nrrd(path, grid)
    if kind == NIFTI:
        return import_nifti(path, grid)
    return read_dicom_seg(path, grid)


def export_file(
    seg: Segmentation, path: str | Path, source_datasets: list[Any] | None = None
) -> str:
    """Write ``seg`` in the format its file name asks for; returns the format.

    A DICOM SEG needs the volume's source datasets (see :func:`write_dicom_seg`).
    """
    kind = format_of(path)
    if kind == SEG_NRRD:
        export_seg_nrrd(seg, path)
    elif kind == NIFTI:
        export_nifti(seg, path)
    elif source_datasets is None:
        msg = "a DICOM SEG export needs the case's original series; export from a case"
        raise SegmentationError(msg)
    else:
        write_dicom_seg(seg, source_datasets, path)
    return kind

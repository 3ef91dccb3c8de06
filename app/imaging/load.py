"""Load a scanned series (or DICOM files) into a :class:`Volume`; read and write NIfTI/NRRD.

What the loader guarantees:

* Slices are sorted by position along the slice normal (``cross(row, column)`` of the
  orientation), never by file name or instance number.
* Values: stored values are masked to Bits Stored (sign-extended when signed), MONOCHROME1 is
  inverted, the rescale slope/intercept (per frame for enhanced objects) or the modality LUT is
  applied. CT comes out int16 Hounsfield units; other modalities keep integers when slope and
  intercept are integers (int16, uint16 or int32, whichever holds the range) and become float32
  when a non-integer slope is present. Work is done slice by slice: there is no float64 copy of
  the volume.
* Geometry: ``origin`` is the first slice's ImagePositionPatient (moved to the new corner
  when a sheared stack is de-sheared onto a larger grid), ``direction`` the columns (row
  direction, column direction, normal) and ``spacing`` (column, row, slice step), in LPS mm.
  Uneven steps and missing slices are resampled to a uniform grid by linear interpolation along
  the normal; sheared stacks (gantry tilt) are de-sheared by shifting each slice in its plane, so
  the direction stays orthonormal; each correction adds a warning to ``Volume.warnings`` that
  states what the original geometry was.
* Safety: uncompressed pixel data is checked against the element length and the file size
  before reading, and compressed frames against the free memory and a sane compression ratio
  (see :func:`app.imaging.guards.check_declared_size`), so a file declaring a 65535×65535 frame
  is refused before anything is allocated. Files whose sequences are nested too deeply for the
  parser are refused with a reason.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.errors import DicomError
from app.imaging import codecs
from app.imaging.grouping import Series
from app.imaging.guards import Reject, check_declared_size
from app.imaging.headers import FileInfo, SliceInfo, quiet
from app.imaging.scan import scan
from app.imaging.sources import SourceOpener
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure

_MODALITY_KEY = "medprint_modality"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


# --------------------------------------------------------------------------- public API


def load_series(
    series_or_paths: Series | str | os.PathLike | Iterable[str | os.PathLike],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Load one series into a Volume with correct LPS geometry.

    Parameters
    ----------
    series_or_paths
        A :class:`~app.imaging.grouping.Series` from :func:`~app.imaging.scan.scan`, or paths
        (files, folders, zip files) that hold exactly one series.
    progress, cancel
        Progress per slice; ``cancel`` is checked per slice.

    Raises
    ------
    DicomError
        The paths hold no series or several, or a slice cannot be decoded.
    """
    progress = ensure(progress)
    series = _resolve(series_or_paths, progress.sub(0.0, 0.1), cancel)
    geometry = plan_geometry(series.slices)
    values = _plan_values([series.slices[i] for i in geometry.order], series.modality)
    nk = len(geometry.order)
    array = np.empty((nk, series.rows, series.columns), dtype=values.dtype)
    ordered = [series.slices[i] for i in geometry.order]
    _fill(ordered, array, values, progress.sub(0.1, 0.9), cancel)
    warnings = list(geometry.warnings) + values.warnings
    if geometry.regular:
        volume = Volume(
            array=array,
            origin=tuple(geometry.origin),
            spacing=(geometry.du, geometry.dv, geometry.step),
            direction=geometry.direction,
            modality=series.modality,
            warnings=warnings,
        )
    else:
        progress.update(0.9, "resampling to a uniform grid")
        volume = _resample(array, geometry, series.modality, warnings, cancel)
    progress.update(1.0, "loaded")
    return volume


def read_slice(info: SliceInfo) -> np.ndarray:
    """One slice decoded and rescaled like :func:`load_series` does (for thumbnails, previews)."""
    values = _plan_values([info], "OT")
    out = np.empty((1, info.file.rows, info.file.columns), dtype=values.dtype)
    _fill([info], out, values, None, None)
    return out[0]


def load_image_file(path: str | os.PathLike) -> Volume:
    """Read a NIfTI / NRRD / MetaImage volume; SimpleITK converts its geometry to LPS."""
    import SimpleITK as sitk  # noqa: PLC0415 (heavy import, only when needed)

    path = Path(path)
    if not path.name.lower().endswith(IMAGE_SUFFIXES):
        msg = f"unsupported volume file type '{path.suffix}'; use .nrrd, .nii or .nii.gz"
        raise DicomError(msg)
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        _check_volume_budget(reader.GetSize(), reader.GetNumberOfComponents())
        image = reader.Execute()
    except RuntimeError:
        msg = "the volume file cannot be read; check that it is a valid NIfTI or NRRD file"
        raise DicomError(msg) from None
    if image.GetPixelID() == sitk.sitkFloat64:
        image = sitk.Cast(image, sitk.sitkFloat32)  # MedPrint volumes are never float64
    if image.GetNumberOfComponentsPerPixel() != 1:
        msg = "the volume has vector or colour pixels; MedPrint needs one value per voxel"
        raise DicomError(msg)
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        msg = f"expected a 3D volume, the file holds {image.GetDimension()}D data"
        raise DicomError(msg)
    return Volume.from_sitk(image, modality=_guess_modality(image))


def _check_volume_budget(size: tuple[int, ...], components: int) -> None:
    """Refuse a header that declares more voxels than half the free memory could hold."""
    import psutil  # noqa: PLC0415 (psutil on first use)

    declared = math.prod(size) * max(components, 1) * 8  # up to 8 bytes per value
    budget = psutil.virtual_memory().available // 2
    if declared > budget:
        dims = "×".join(str(n) for n in size)
        msg = f"the volume declares {dims} voxels, more than the free memory can hold"
        raise DicomError(msg)


def write_image_file(volume: Volume, path: str | os.PathLike) -> None:
    """Write a NIfTI (``.nii``, ``.nii.gz``) or NRRD (``.nrrd``) file, atomically.

    SimpleITK stores the LPS geometry natively in NRRD and converts it to NIfTI's RAS, so any
    reader that honours the header puts the voxels where the DICOM put them.
    """
    import SimpleITK as sitk  # noqa: PLC0415 (heavy import, only when needed)

    path = Path(path)
    name = path.name.lower()
    if not name.endswith(IMAGE_SUFFIXES):
        msg = f"unsupported output type '{path.suffix}'; use .nrrd or .nii.gz"
        raise DicomError(msg)
    suffix = ".nii.gz" if name.endswith(".nii.gz") else path.suffix
    tmp = path.with_name(f".{os.getpid()}.partial{suffix}")
    try:
        image = volume.to_sitk()
        image.SetMetaData(_MODALITY_KEY, volume.modality)  # kept by NRRD; NIfTI has no slot
        sitk.WriteImage(image, str(tmp), useCompression=True)
        os.replace(tmp, path)
    except RuntimeError:
        msg = "the volume file cannot be written; check the folder exists and is writable"
        raise DicomError(msg) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


# --------------------------------------------------------------------------- series lookup


def _resolve(series_or_paths, progress: Progress, cancel: CancelToken | None) -> Series:
    if isinstance(series_or_paths, Series):
        return series_or_paths
    result = scan(series_or_paths, progress=progress, cancel=cancel)
    found = result.series
    if len(found) == 1:
        return found[0]
    if not found:
        reasons = sorted({r.reason for r in result.rejected})
        hint = f" ({reasons[0]})" if len(reasons) == 1 else ""
        msg = f"no loadable image series in the given files{hint}; run `medprint scan` to see why"
        raise DicomError(msg)
    msg = f"the files hold {len(found)} series; pick one by its key (`medprint scan` lists them)"
    raise DicomError(msg)


# --------------------------------------------------------------------------- geometry


@dataclass
class Geometry:
    """Where each sorted slice is, and whether the stack needs resampling."""

    order: list[int]
    u: np.ndarray
    v: np.ndarray
    n: np.ndarray
    du: float
    dv: float
    origin: np.ndarray
    d: np.ndarray  # distance of each sorted slice along the normal, from the first (mm)
    a: np.ndarray  # in-plane offset along the row direction, from the first (mm)
    b: np.ndarray  # in-plane offset along the column direction, from the first (mm)
    step: float
    regular: bool
    sheared: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def direction(self) -> np.ndarray:
        return np.column_stack([self.u, self.v, self.n])


def plan_geometry(slices: list[SliceInfo]) -> Geometry:
    """Sort slices along the normal and work out spacing, gaps and shear (no pixels read)."""
    warnings: list[str] = []
    first = slices[0]
    ps = first.pixel_spacing
    if ps is None or min(ps) <= 0:
        warnings.append("no pixel spacing in the images: 1 mm assumed; do not use for sizing")
        ps = (1.0, 1.0)
    dv, du = float(ps[0]), float(ps[1])
    if first.orientation is None or any(s.position is None for s in slices):
        return _unpositioned(slices, du, dv, warnings)
    u = np.asarray(first.orientation[:3], dtype=float)
    v = np.asarray(first.orientation[3:], dtype=float)
    u /= np.linalg.norm(u)
    v -= np.dot(v, u) * u
    v /= np.linalg.norm(v)
    n = np.cross(u, v)
    positions = np.array([s.position for s in slices], dtype=float)
    dist = positions @ n
    order = list(np.argsort(dist, kind="stable"))
    order, dropped = _drop_duplicates(order, dist, [s.file.rank for s in slices])
    if dropped:
        warnings.append(f"{dropped} slice(s) at an already-used position were skipped")
    pos = positions[order]
    rel = pos - pos[0]
    d, a, b = rel @ n, rel @ u, rel @ v
    geometry = Geometry(order, u, v, n, du, dv, pos[0], d, a, b, step=1.0, regular=True)
    geometry.warnings = warnings
    if len(order) == 1:
        geometry.step = float(first.spacing_between or first.thickness or 1.0)
        return geometry
    _analyse_spacing(geometry)
    _analyse_shear(geometry, slices)
    return geometry


def _unpositioned(slices: list[SliceInfo], du: float, dv: float, warnings: list[str]) -> Geometry:
    order = sorted(
        range(len(slices)), key=lambda i: (slices[i].instance or 0, slices[i].frame or 0)
    )
    step = float(slices[0].spacing_between or slices[0].thickness or 1.0)
    if len(slices) > 1:
        warnings.append(
            f"the images carry no patient position: stacked by instance number {step:g} mm "
            "apart; do not use for sizing"
        )
    else:
        warnings.append("the image carries no patient position or orientation: axes assumed")
    count = len(order)
    return Geometry(
        order,
        np.array([1.0, 0, 0]),
        np.array([0, 1.0, 0]),
        np.array([0, 0, 1.0]),
        du,
        dv,
        np.zeros(3),
        np.arange(count) * step,
        np.zeros(count),
        np.zeros(count),
        step,
        True,
        warnings=warnings,
    )


def _drop_duplicates(order: list[int], dist: np.ndarray, rank: list[int]) -> tuple[list[int], int]:
    """One slice per position: the uncompressed copy before lossless before lossy."""
    kept = [order[0]]
    for i in order[1:]:
        if abs(dist[i] - dist[kept[-1]]) > 1e-3:
            kept.append(i)
        elif rank[i] < rank[kept[-1]]:
            kept[-1] = i
    return kept, len(order) - len(kept)


def _analyse_spacing(g: Geometry) -> None:
    steps = np.diff(g.d)
    median = float(np.median(steps))
    count = len(g.d)
    mean = float(g.d[-1] / (count - 1))
    deviation = float(np.max(np.abs(g.d - np.arange(count) * mean)))
    if deviation <= min(0.1, 0.02 * mean):
        g.step = mean
        return
    g.regular = False
    ratio = steps / median
    multiples = np.round(ratio)
    is_gap = (multiples >= 2) & (np.abs(ratio - multiples) < 0.1)
    others = steps[~is_gap]
    if is_gap.any() and np.max(np.abs(others - median)) <= max(0.02, 0.02 * median):
        missing = int(np.sum(multiples[is_gap] - 1))
        where = ", ".join(f"{g.d[i]:.1f}–{g.d[i + 1]:.1f} mm" for i in np.flatnonzero(is_gap)[:5])
        g.warnings.append(
            f"{missing} slice(s) missing (gaps at {where} from the first slice, expected step "
            f"{median:.3f} mm): filled by interpolation; check the model there before printing"
        )
    else:
        g.warnings.append(
            f"slice spacing was irregular (original steps {_describe_steps(steps)}): resampled to "
            f"a uniform grid"
        )
    target = max(2, round(float(g.d[-1]) / median) + 1)
    g.step = float(g.d[-1]) / (target - 1)
    g.warnings[-1] = g.warnings[-1].replace("a uniform grid", f"a uniform {g.step:.3f} mm grid")


def _describe_steps(steps: np.ndarray) -> str:
    rounded = np.round(steps, 2)
    values, counts = np.unique(rounded, return_counts=True)
    if len(values) <= 6:
        return ", ".join(f"{v:.2f} mm ×{c}" for v, c in zip(values, counts, strict=True))
    return (
        f"{steps.min():.3f}–{steps.max():.3f} mm, median {np.median(steps):.3f} mm, "
        f"{len(steps)} steps"
    )


def _analyse_shear(g: Geometry, slices: list[SliceInfo]) -> None:
    limit = max(0.02, 0.05 * min(g.du, g.dv))
    if max(np.max(np.abs(g.a)), np.max(np.abs(g.b))) <= limit:
        return
    g.sheared = True
    g.regular = False
    extent = float(g.d[-1]) or 1.0
    angle = math.degrees(math.atan(math.hypot(float(g.a[-1]), float(g.b[-1])) / extent))
    declared = slices[0].file.gantry_tilt
    tag = f" (Gantry/Detector Tilt {declared:+.1f}°)" if declared is not None else ""
    g.warnings.append(
        f"gantry tilt of {angle:.1f}°{tag} corrected: slices de-sheared onto an orthogonal grid, "
        f"shifted in-plane by up to {max(np.ptp(g.a), np.ptp(g.b)):.1f} mm"
    )


# --------------------------------------------------------------------------- values


@dataclass
class _Values:
    dtype: np.dtype
    integer: bool
    low: float
    high: float
    warnings: list[str] = field(default_factory=list)


def _stored_range(info: FileInfo) -> tuple[float, float]:
    bits = info.bits_stored if 0 < info.bits_stored <= info.bits_allocated else info.bits_allocated
    if info.signed:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _plan_values(slices: list[SliceInfo], modality: str) -> _Values:
    """Choose the output dtype from the stored range and every slice's rescale."""
    floats = any(
        s.file.pixel_tag in (0x7FE00008, 0x7FE00009) or s.file.modality_lut for s in slices
    )
    integer = not floats and all(
        float(s.slope).is_integer() and float(s.intercept).is_integer() for s in slices
    )
    low, high = math.inf, -math.inf
    for s in slices:
        smin, smax = _stored_range(s.file)
        ends = (s.slope * smin + s.intercept, s.slope * smax + s.intercept)
        low, high = min(low, *ends), max(high, *ends)
    if modality == "CT" and not floats:
        return _Values(np.dtype(np.int16), True, -32768, 32767)
    if not integer:
        return _Values(np.dtype(np.float32), False, -math.inf, math.inf)
    for dtype in (np.int16, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if low >= info.min and high <= info.max:
            return _Values(np.dtype(dtype), True, info.min, info.max)
    return _Values(np.dtype(np.float32), False, -math.inf, math.inf)


def _to_output(raw: np.ndarray, s: SliceInfo, values: _Values, out: np.ndarray) -> None:
    """Mask, invert, rescale and store one slice (work in int32/float32, one slice at a time)."""
    info = s.file
    if raw.dtype.kind in "iu":
        raw = _mask_bits(raw, info)
        work = raw.astype(np.int64 if info.bits_stored > 16 else np.int32)
        if info.photometric == "MONOCHROME1":
            smin, smax = _stored_range(info)
            np.subtract(int(smin + smax), work, out=work)
        if values.integer and float(s.slope).is_integer() and float(s.intercept).is_integer():
            if s.slope != 1:
                work *= int(s.slope)
            if s.intercept:
                work += int(s.intercept)
            np.clip(work, values.low, values.high, out=work)
            out[...] = work
            return
        work = work.astype(np.float32)
    else:
        work = raw.astype(np.float32)
        if info.photometric == "MONOCHROME1":
            np.subtract(float(np.max(work) + np.min(work)), work, out=work)
    if s.slope != 1:
        work *= np.float32(s.slope)
    if s.intercept:
        work += np.float32(s.intercept)
    if values.integer:
        np.rint(work, out=work)
        np.clip(work, values.low, values.high, out=work)
    out[...] = work


def _mask_bits(raw: np.ndarray, info: FileInfo) -> np.ndarray:
    """Keep Bits Stored of each value (sign-extended when signed); unused high bits are junk.

    Only for uncompressed and RLE data: a JPEG-family codestream carries its own precision,
    which pydicom's decoders already honour.
    """
    if raw.dtype.byteorder not in ("=", "|"):
        raw = raw.astype(raw.dtype.newbyteorder("="))
    width = raw.dtype.itemsize * 8
    bits = info.bits_stored
    if not 0 < bits < width or not (info.native or info.transfer_syntax == RLE_LOSSLESS):
        return raw
    unsigned = raw.view(np.dtype(f"u{raw.dtype.itemsize}"))
    shift = max(0, info.high_bit + 1 - bits)
    if shift:
        unsigned = unsigned >> shift
    masked = unsigned & np.array((1 << bits) - 1, dtype=unsigned.dtype)
    if not info.signed:
        return masked
    up = width - bits
    signed = masked.view(np.dtype(f"i{raw.dtype.itemsize}"))
    return (signed << up) >> up


# --------------------------------------------------------------------------- decoding


def _fill(
    slices: list[SliceInfo],
    array: np.ndarray,
    values: _Values,
    progress: Progress | None,
    cancel: CancelToken | None,
) -> None:
    """Decode every slice into its place in ``array``, one source file at a time."""
    by_file: dict[int, list[tuple[int, SliceInfo]]] = {}
    files: dict[int, FileInfo] = {}
    for k, s in enumerate(slices):
        by_file.setdefault(id(s.file), []).append((k, s))
        files[id(s.file)] = s.file
    done, total = 0, len(slices)
    with quiet(), SourceOpener() as opener:
        for key, items in by_file.items():
            check_cancel(cancel)
            info = files[key]
            try:
                _decode_file(info, items, array, values, opener)
            except DicomError:
                raise
            except RecursionError:
                msg = f"slice {items[0][0] + 1} of {total}: sequences nested too deeply to read safely"
                raise DicomError(msg) from None
            except Reject as exc:
                msg = f"slice {items[0][0] + 1} of {total}: {exc}"
                raise DicomError(msg) from None
            except OSError as exc:
                msg = (
                    f"slice {items[0][0] + 1} of {total} cannot be read "
                    f"({exc.strerror or type(exc).__name__}); is the drive still connected?"
                )
                raise DicomError(msg) from None
            except Exception as exc:
                msg = (
                    f"slice {items[0][0] + 1} of {total} cannot be decoded "
                    f"({_ts_label(info)}, {type(exc).__name__}); the file is damaged or its "
                    "compression is not supported"
                )
                raise DicomError(msg) from None
            done += len(items)
            if progress is not None:
                progress.update(done / total, f"reading slices ({done}/{total})")


def _ts_label(info: FileInfo) -> str:
    from pydicom.uid import UID  # noqa: PLC0415 (pydicom on first use)

    return UID(info.transfer_syntax).name or "unknown transfer syntax"


def _native_dtype(info: FileInfo) -> np.dtype | None:
    if info.bits_allocated not in (8, 16, 32):
        return None
    kind = "i" if info.signed else "u"
    order = "<" if info.little_endian else ">"
    return np.dtype(f"{order}{kind}{info.bits_allocated // 8}")


def _decode_file(
    info: FileInfo,
    items: list[tuple[int, SliceInfo]],
    array: np.ndarray,
    values: _Values,
    opener: SourceOpener,
) -> None:
    if info.source.member is None and os.path.getsize(info.source.path) != info.file_size:
        msg = "the file changed since it was scanned; scan the folder again"
        raise Reject(msg)
    dtype = _native_dtype(info)
    fast = (
        info.native
        and info.pixel_tag == 0x7FE00010
        and info.pixel_offset is not None
        and info.pixel_length is not None
        and dtype is not None
    )
    if fast:
        _decode_native(info, items, array, values, opener, dtype)
    else:
        _decode_with_pydicom(info, items, array, values, opener)


def _decode_native(  # noqa: PLR0917 (internal, called once)
    info: FileInfo,
    items: list[tuple[int, SliceInfo]],
    array: np.ndarray,
    values: _Values,
    opener: SourceOpener,
    dtype: np.dtype,
) -> None:
    """Read uncompressed frames straight from the file into a reused buffer."""
    frame_bytes = info.frame_bytes
    if info.pixel_length is None or info.pixel_length < frame_bytes * info.frames:
        msg = "pixel data is shorter than the image size declared in the header"
        raise Reject(msg)
    buffer = np.empty(info.rows * info.columns, dtype=dtype)
    view = memoryview(buffer).cast("B")
    with opener.open(info.source) as handle:
        for k, s in sorted(items, key=lambda item: item[1].frame or 0):
            handle.seek(info.pixel_offset + (s.frame or 0) * frame_bytes)
            if handle.readinto(view) != frame_bytes:
                msg = "pixel data ends before the last frame"
                raise Reject(msg)
            _to_output(buffer.reshape(info.rows, info.columns), s, values, array[k])


def _decode_with_pydicom(
    info: FileInfo,
    items: list[tuple[int, SliceInfo]],
    array: np.ndarray,
    values: _Values,
    opener: SourceOpener,
) -> None:
    """Compressed, deflated, bit-packed or float pixel data: pydicom's decoders, frame by frame."""
    import pydicom  # noqa: PLC0415 (pydicom on first use)
    from pydicom.pixels import apply_modality_lut, iter_pixels  # noqa: PLC0415 (pydicom on first use)

    codecs.register()  # 12-bit JPEG Extended fallback after pydicom's own plugins

    if info.pixel_length is None and info.pixel_offset is not None:
        check_declared_size(
            info.rows,
            info.columns,
            info.frames,
            info.bits_allocated,
            info.file_size - info.pixel_offset,
        )
    with opener.open(info.source) as handle:
        ds = pydicom.dcmread(handle, force=True)
    declared = (ds.get("Rows"), ds.get("Columns"), int(ds.get("NumberOfFrames") or 1))
    if declared != (info.rows, info.columns, info.frames):
        msg = "the file changed since it was scanned; scan the folder again"
        raise Reject(msg)
    if not hasattr(ds, "file_meta") or "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta = getattr(ds, "file_meta", pydicom.dataset.FileMetaDataset())
        ds.file_meta.TransferSyntaxUID = info.transfer_syntax
    ordered = sorted(items, key=lambda item: item[1].frame or 0)
    if info.frames == 1:
        frames = [pydicom.pixels.pixel_array(ds)]
    else:
        frames = iter_pixels(ds, indices=[s.frame or 0 for _, s in ordered])
    for (k, s), decoded in zip(ordered, frames, strict=False):
        frame = np.asarray(decoded)
        if frame.ndim != 2 or frame.shape != (info.rows, info.columns):
            msg = f"decoded frame has shape {frame.shape}, expected {(info.rows, info.columns)}"
            raise Reject(msg)
        target = s
        if info.modality_lut:
            frame = np.asarray(apply_modality_lut(frame, ds), dtype=np.float32)
            target = SliceInfo(s.file, s.frame, s.position, s.orientation, s.pixel_spacing)
        _to_output(frame, target, values, array[k])


# --------------------------------------------------------------------------- resampling


def _resample(
    array: np.ndarray,
    g: Geometry,
    modality: str,
    warnings: list[str],
    cancel: CancelToken | None,
) -> Volume:
    """Put sheared / unevenly spaced slices on an orthogonal, uniform grid (linear)."""
    from scipy import ndimage  # noqa: PLC0415 (scipy on first use)

    nk, nj, ni = array.shape
    fill = array.min()
    u0, v0 = (float(g.a.min()), float(g.b.min())) if g.sheared else (0.0, 0.0)
    if g.sheared:
        ni2 = ni + math.ceil((float(g.a.max()) - u0) / g.du - 1e-6)
        nj2 = nj + math.ceil((float(g.b.max()) - v0) / g.dv - 1e-6)
        planes = np.empty((nk, nj2, ni2), dtype=array.dtype)
        for k in range(nk):
            check_cancel(cancel)
            shifted = ndimage.affine_transform(
                array[k].astype(np.float32),
                np.ones(2),
                offset=((v0 - g.b[k]) / g.dv, (u0 - g.a[k]) / g.du),
                output_shape=(nj2, ni2),
                order=1,
                cval=float(fill),
                output=np.float32,
            )
            _store(shifted, planes[k])
        del array
    else:
        planes = array
    count = round(float(g.d[-1]) / g.step) + 1
    out = np.empty((count, *planes.shape[1:]), dtype=planes.dtype)
    for t in range(count):
        check_cancel(cancel)
        z = t * g.step
        k = int(np.clip(np.searchsorted(g.d, z, side="right") - 1, 0, len(g.d) - 2))
        w = float(np.clip((z - g.d[k]) / (g.d[k + 1] - g.d[k]), 0.0, 1.0))
        if w < 1e-6:
            out[t] = planes[k]
        elif w > 1 - 1e-6:
            out[t] = planes[k + 1]
        else:
            blend = planes[k].astype(np.float32) * np.float32(1 - w)
            blend += planes[k + 1].astype(np.float32) * np.float32(w)
            _store(blend, out[t])
    origin = g.origin + u0 * g.u + v0 * g.v
    return Volume(
        array=out,
        origin=tuple(origin),
        spacing=(g.du, g.dv, g.step),
        direction=g.direction,
        modality=modality,
        warnings=warnings,
    )


def _store(values: np.ndarray, out: np.ndarray) -> None:
    if out.dtype.kind in "iu":
        np.rint(values, out=values)
        info = np.iinfo(out.dtype)
        np.clip(values, info.min, info.max, out=values)
    out[...] = values


def _guess_modality(image) -> str:
    """The modality MedPrint wrote into an NRRD header, else "OT" (unknown)."""
    if image.HasMetaDataKey(_MODALITY_KEY):
        value = image.GetMetaData(_MODALITY_KEY).strip().upper()
        if value.isalnum() and len(value) <= 16:
            return value
    return "OT"


__all__ = [
    "IMAGE_SUFFIXES",
    "Geometry",
    "load_image_file",
    "load_series",
    "plan_geometry",
    "read_slice",
    "write_image_file",
]

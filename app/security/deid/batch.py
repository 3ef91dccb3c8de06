"""De-identification of a folder: read, group, de-identify, mask, deface, write, verify."""

from __future__ import annotations

import io
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import UID

from app.atomic import fsync_dir
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security.deid.deface import deface_stack, is_head_series
from app.security.deid.errors import BurnedInAnnotationBlocked, DeidError
from app.security.deid.header import check_arguments, deidentify, quiet_pydicom
from app.security.deid.pixels import Rect, burned_in_risk, mask_rectangles
from app.security.deid.profile import DeidOptions, profile_for
from app.security.deid.values import date_shift_for
from app.security.deid.verify import Identifiers, collect_identifiers, verify
from app.security.vault import new_pseudonym

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class DeidReport:
    """What :func:`deid_folder` did. ``uid_map`` and ``patients`` hold original identifiers:
    keep them in the vault only, never on disk or in logs."""

    out_dir: Path
    written: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    studies: int = 0
    series: int = 0
    defaced_series: int = 0
    masked_files: int = 0
    pseudonyms: list[str] = field(default_factory=list)
    patients: dict[str, dict[str, str]] = field(default_factory=dict)
    uid_map: dict[str, str] = field(default_factory=dict)
    checked_values: int = 0


@dataclass
class _Header:
    path: Path
    rel: str
    patient: tuple[str, str, str]
    study: str
    series: str
    instance: int
    position: float
    risk: str | None
    head: bool
    modality: str


def deid_folder(
    in_dir: Path,
    out_dir: Path,
    *,
    options: DeidOptions,
    uid_key: bytes,
    pseudonym: str | None = None,
    date_shift_days: int | None = None,
    masks: Mapping[str, Sequence[Rect]] | None = None,
    confirm_burned_in: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``in_dir`` into ``out_dir``, then verify the output.

    Output files get opaque names (``study-01/series-01/0001.dcm``). The output is written to a
    hidden staging folder beside ``out_dir``, re-read, and searched byte for byte for every
    identifying value of the inputs (names, IDs, dates, institution, UIDs); only when none is
    found does the staging folder become ``out_dir``. Unreadable and non-DICOM files are listed in
    the report with a one-line reason; a DICOMDIR is not copied (it lists patient names).

    Parameters
    ----------
    in_dir, out_dir
        Input folder (or one file); output folder, which must not exist or be empty.
    options, uid_key
        As for :func:`deidentify`.
    pseudonym
        Pseudonym of the one patient in ``in_dir``; None gives each patient a new pseudonym
        (the report's ``patients`` maps them to the original identity, for the vault).
    date_shift_days
        Shift for modified dates; None derives one per patient from the key.
    masks
        Rectangles to blank, by original Series Instance UID (``"*"``: every image at risk).
    confirm_burned_in
        The user checked the images at risk and found no identifying text.

    Raises
    ------
    BurnedInAnnotationBlocked
        Images at risk of burned-in text were neither masked nor confirmed; nothing written.
    IdentifierLeak
        The verification found an input identifier in the output; nothing written.
    """
    progress = ensure(progress)
    check_arguments(options, uid_key, pseudonym, date_shift_days)
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        msg = "the input folder does not exist; check the path"
        raise DeidError(msg)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        msg = "the output folder is not empty; choose a new or empty folder"
        raise DeidError(msg)
    with quiet_pydicom():
        return _deid_folder(
            in_dir, out_dir, options=options, uid_key=uid_key, pseudonym=pseudonym,
            date_shift_days=date_shift_days, masks=masks, confirm_burned_in=confirm_burned_in,
            progress=progress, cancel=cancel,
        )  # fmt: skip


def _deid_folder(
    in_dir: Path,
    out_dir: Path,
    *,
    options: DeidOptions,
    uid_key: bytes,
    pseudonym: str | None,
    date_shift_days: int | None,
    masks: Mapping[str, Sequence[Rect]] | None,
    confirm_burned_in: bool,
    progress: Progress,
    cancel: CancelToken | None,
) -> DeidReport:
    report = DeidReport(out_dir=out_dir)
    headers = _scan_headers(in_dir, report, progress.sub(0.0, 0.15), cancel)
    names = _assign_pseudonyms(headers, pseudonym, report)
    masks = dict(masks or {})
    _check_burned_in(headers, masks, confirm_burned_in)
    staging = out_dir.parent / f".deid-{secrets.token_hex(6)}.partial"
    staging.mkdir(parents=True, mode=0o700)
    try:
        found = Identifiers(uid_key, uid_map=report.uid_map)
        job = _Job(staging, report, options, uid_key, names, date_shift_days, masks, found)
        _write_all(job, headers, progress.sub(0.15, 0.85), cancel)
        report.checked_values = verify(
            report.written, found, report.pseudonyms, progress.sub(0.85, 1.0), cancel
        )
        _make_durable(staging, report.written)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.written = [out_dir / p.relative_to(staging) for p in report.written]
    progress.update(1.0, "de-identified and verified")
    return report


def _scan_headers(
    in_dir: Path, report: DeidReport, progress: Progress, cancel: CancelToken | None
) -> list[_Header]:
    if in_dir.is_file():
        files, root = [in_dir], in_dir.parent
    else:
        files, root = sorted(p for p in in_dir.rglob("*") if p.is_file()), in_dir
    headers: list[_Header] = []
    for n, path in enumerate(files):
        check_cancel(cancel)
        progress.update(n / max(len(files), 1), "reading headers")
        rel = str(path.relative_to(root))
        try:
            ds = _read(path, header_only=True)
        except DeidError as exc:
            report.rejected.append((rel, str(exc)))
            continue
        if str(ds.get("SOPClassUID", "")) == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
            report.rejected.append((rel, "DICOMDIR index: not copied (it lists patient names)"))
            continue
        headers.append(_header_of(path, rel, ds))
    return headers


_HEADER_TAGS = [
    Tag(k)
    for k in (
        "SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "PatientName",
        "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber",
        "ImagePositionPatient", "ImageOrientationPatient", "BurnedInAnnotation", "ImageType",
        "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
        "DirectoryRecordSequence", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    )
]  # fmt: skip


def _read(path: Path, *, header_only: bool = False) -> Dataset:
    """Read one file; every failure becomes a :class:`DeidError` with a one-line reason.

    The full read drops private elements (at every level) before their values are decoded and
    parses every other element, so a damaged file fails here and not half-way through.
    """
    try:
        if header_only:
            ds = pydicom.dcmread(path, specific_tags=_HEADER_TAGS, defer_size=256, force=True)
        else:
            ds = pydicom.dcmread(path, force=True)
        if "SOPInstanceUID" not in ds and "DirectoryRecordSequence" not in ds:
            msg = "not a DICOM object (no SOP Instance UID)"
            raise DeidError(msg)
        if not header_only:
            _drop_private_and_parse(ds)
    except DeidError:
        raise
    except RecursionError:
        msg = "sequences nested too deeply to process"
        raise DeidError(msg) from None
    except (InvalidDicomError, EOFError) as exc:
        msg = f"not a readable DICOM file ({type(exc).__name__})"
        raise DeidError(msg) from None
    except MemoryError:
        msg = "declares element sizes larger than memory"
        raise DeidError(msg) from None
    except Exception as exc:  # pydicom raises many types on damaged files
        msg = f"damaged DICOM file ({type(exc).__name__})"
        raise DeidError(msg) from None
    return ds


def _drop_private_and_parse(ds: Dataset) -> None:
    stack = [ds]
    while stack:
        current = stack.pop()
        for tag in [t for t in list(current.keys()) if t.is_private]:
            del current[tag]
        for elem in current:
            if elem.VR == "SQ" and elem.value:
                stack.extend(item for item in elem.value if isinstance(item, Dataset))


def _header_of(path: Path, rel: str, ds: Dataset) -> _Header:
    try:
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ipp = [float(v) for v in ds.ImagePositionPatient]
        position = float(np.dot(ipp, np.cross(iop[:3], iop[3:])))
    except (AttributeError, ValueError, TypeError):
        position = 0.0
    try:
        instance = int(ds.get("InstanceNumber") or 0)
    except (ValueError, TypeError):
        instance = 0
    patient = tuple(
        str(ds.get(k, "") or "") for k in ("PatientID", "PatientName", "PatientBirthDate")
    )
    return _Header(
        path=path,
        rel=rel,
        patient=patient,  # type: ignore[arg-type]
        study=str(ds.get("StudyInstanceUID", "") or ""),
        series=str(ds.get("SeriesInstanceUID", "") or ""),
        instance=instance,
        position=position,
        risk=burned_in_risk(ds),
        head=is_head_series(ds),
        modality=str(ds.get("Modality", "") or "OT"),
    )


def _assign_pseudonyms(
    headers: list[_Header], pseudonym: str | None, report: DeidReport
) -> dict[tuple[str, str, str], str]:
    patients = list(dict.fromkeys(h.patient for h in headers))
    if pseudonym is not None and len(patients) > 1:
        msg = f"the folder holds {len(patients)} patients; give no pseudonym (one per patient)"
        msg += " or de-identify one patient's folder at a time"
        raise DeidError(msg)
    names: dict[tuple[str, str, str], str] = {}
    for patient in patients:
        names[patient] = pseudonym or new_pseudonym(set(names.values()))
        report.patients[names[patient]] = dict(
            zip(("patient_id", "patient_name", "birth_date"), patient, strict=True)
        )
    report.pseudonyms = list(names.values())
    return names


def _check_burned_in(
    headers: list[_Header], masks: Mapping[str, Sequence[Rect]], confirmed: bool
) -> None:
    if confirmed:
        return
    blocked = [h for h in headers if h.risk and not (masks.get(h.series) or masks.get("*"))]
    if blocked:
        kinds = sorted({h.modality for h in blocked})
        msg = f"{len(blocked)} image(s) ({', '.join(kinds)}) may show burned-in patient text: "
        msg += "mask the text rectangles or confirm the images were checked, then export again"
        raise BurnedInAnnotationBlocked(msg)


@dataclass
class _Job:
    """Everything one :func:`deid_folder` run needs while it writes."""

    staging: Path
    report: DeidReport
    options: DeidOptions
    uid_key: bytes
    names: Mapping[tuple[str, str, str], str]
    date_shift_days: int | None
    masks: Mapping[str, Sequence[Rect]]
    found: Identifiers


def _write_all(
    job: _Job, headers: list[_Header], progress: Progress, cancel: CancelToken | None
) -> None:
    """De-identify and write every series, collecting the input identifiers in ``job.found``."""
    studies: dict[str, int] = {}
    series_groups: dict[str, list[_Header]] = {}
    for h in headers:
        series_groups.setdefault(h.series, []).append(h)
    done = 0
    for series_n, (series_uid, group) in enumerate(series_groups.items(), start=1):
        check_cancel(cancel)
        study_n = studies.setdefault(group[0].study, len(studies) + 1)
        folder = job.staging / f"study-{study_n:02d}" / f"series-{series_n:02d}"
        group.sort(key=lambda h: (h.instance, h.position, str(h.path)))
        rects = job.masks.get(series_uid) or job.masks.get("*") or []
        deface = job.options.deface and group[0].head
        if job.options.deface and not deface and group[0].modality in ("CT", "MR"):
            job.report.notes.append(f"series-{series_n:02d}: not a head series, not defaced")
        held: list[tuple[Path, str, Dataset, dict[str, str]]] = []
        for n, h in enumerate(group, start=1):
            check_cancel(cancel)
            done += 1
            progress.update(done / max(len(headers), 1), "de-identifying")
            result = _deidentify_file(job, h, rects)
            if result is None:
                continue
            if deface:
                held.append((folder / f"{n:04d}.dcm", h.rel, *result))
            else:
                _write(job, folder / f"{n:04d}.dcm", h.rel, *result)
        if held:
            deface_stack([ds for _, _, ds, _ in held])
            job.report.defaced_series += 1
            for path, rel, ds, own in held:
                _write(job, path, rel, ds, own)
        job.report.series += 1 if any(folder.glob("*.dcm")) else 0
    job.report.studies = len({p.parent.parent for p in job.report.written})


def _deidentify_file(
    job: _Job, h: _Header, rects: Sequence[Rect]
) -> tuple[Dataset, dict[str, str]] | None:
    """One input file de-identified (and masked) with its identifiers, or None (reason in the
    report)."""
    try:
        ds = _read(h.path)
        own = collect_identifiers(ds, profile_for(job.options), job.found)
        shift = job.date_shift_days
        if job.options.retain_longitudinal_temporal and shift is None:
            shift = date_shift_for(job.uid_key, h.patient[0] or h.patient[1])
        deidentify(
            ds,
            options=job.options,
            uid_key=job.uid_key,
            pseudonym=job.names[h.patient],
            date_shift_days=shift or 0,
            in_place=True,
        )
        if h.risk and rects:
            mask_rectangles(ds, rects)
            job.report.masked_files += 1
    except DeidError as exc:
        job.report.rejected.append((h.rel, str(exc)))
        return None
    except RecursionError:
        job.report.rejected.append((h.rel, "sequences nested too deeply to process"))
        return None
    return ds, own


def _write(job: _Job, path: Path, rel: str, ds: Dataset, own: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except Exception as exc:  # an element pydicom cannot encode
        syntax = ds.file_meta.get("TransferSyntaxUID")
        reason = f"cannot be written ({type(exc).__name__})"
        if syntax is not None and not UID(syntax).is_transfer_syntax:
            reason = "transfer syntax unknown to pydicom; cannot be re-encoded"
        job.report.rejected.append((rel, reason))
        return
    with open(path, "xb") as handle:
        handle.write(buffer.getvalue())
    job.report.written.append(path)
    job.found.per_file[path] = own


def _make_durable(staging: Path, files: Sequence[Path]) -> None:
    """Flush the written files to disk before the staging folder is renamed into place."""
    if hasattr(os, "sync"):
        os.sync()  # one call instead of a fsync per file
    else:  # pragma: no cover - Windows
        for path in files:
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
    for folder in {p.parent for p in files} | {staging}:
        fsync_dir(folder)

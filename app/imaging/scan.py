"""Scan folders, DICOMDIRs and zip files for DICOM images; group them patient → study → series.

Only headers are read (``stop_before_pixels``, ``defer_size`` and only the elements grouping
needs): pixel data is never touched,
but the position and length of its element are noted, so the loader can check a declared frame
size against the bytes really present before it allocates anything, and can read uncompressed
frames straight into the output array.

A *series* here is what a technician picks to print: the images of one ``SeriesInstanceUID``
that form one stack (same orientation, matrix, echo, temporal position and stack).  A DICOM
series holding a scout and an axial stack therefore yields two entries.  Each series knows its
slices (:class:`SliceInfo`: the source file — a plain path or a zip member — the frame number
inside a multi-frame file, position, orientation and rescale).

Everything that is not a grayscale image, or cannot be read, is listed in
:attr:`ScanResult.rejected` with a one-line reason; the scan never raises for a bad file.

JSON (``ScanResult.to_json()``, ``medprint scan --json``), format ``medprint-scan/1``::

    {
      "format": "medprint-scan/1",
      "summary": {"files": 311,         # files looked at (zip members count one each)
                  "images": 240,        # 2D images in all series (frames of multi-frame count)
                  "series": 41, "rejected": 70, "dicomdirs": 3,
                  "models": 1},         # Encapsulated STL series (import adds them as meshes)
      "patients": [
        {
          "key": "P1",                       # order of discovery, stable for the same input
          "identity": {...},                  # identity=True only: patient_name, patient_id,
                                              #   birth_date, sex
          "studies": [
            {
              "key": "P1.S1",
              "identity": {...},              # identity=True only: study_date,
                                              #   study_description, accession_number,
                                              #   institution, uid
              "series": [
                {
                  "key": "3fa9c2d01b7e",      # stable: hash of series UID + stack signature
                  "number": 3,                # SeriesNumber or null
                  "modality": "CT",
                  "body_part": "ABDOMEN",     # or null
                  "slices": 134,              # 2D images in the stack (frames count)
                  "files": 134,
                  "rows": 512, "columns": 512,
                  "spacing": [0.742, 0.742, 3.0],   # mm: column, row, median slice step
                                                    #   (null when unknown)
                  "thickness": 3.0,           # SliceThickness or null
                  "transfer_syntaxes": ["Implicit VR Little Endian"],
                  "notes": ["..."],           # e.g. uneven spacing, gantry tilt
                  "suitability": [{"code": "thickness", "reason": "..."}],  # fit to print?
                                              #   (app.imaging.suitability; informs only)
                  "identity": {...}           # identity=True only: uid, description, date
                }
              ]
            }
          ]
        }
      ],
      "models": [{"key": "m3fa9c2d01b7", "kind": "STL", "parts": 1,   # 3D model objects
                  "identity": {...}}],        # identity=True only: uid, study_uid
      "rejected": [{"file": "path/or/archive.zip!member", "reason": "not an image: ..."}],
      "dicomdirs": ["path/to/DICOMDIR"]
    }

Identity fields (names, IDs, dates, descriptions, institution, UIDs) are left out unless asked
for: they go to the encrypted case index (:attr:`Series.identity`: patient_name, patient_id,
birth_date, sex, study_date, study_description, series_description, series_date, description,
institution, accession_number, study_instance_uid, series_instance_uid), never to logs.
Patient and study keys follow the sorted file paths, series keys are content hashes, and lists
are sorted, so the same input gives byte-identical JSON. New fields may be added to objects;
existing ones keep their meaning while the format string stays ``medprint-scan/1``.

Modules: ``sources`` (folders, zip members, DICOMDIR references, :class:`SourceOpener`),
``headers`` (one file's header: :class:`FileInfo`, :class:`SliceInfo`), ``elements`` (fast element
access), ``guards`` (deflate bombs, absurd declared sizes), ``classify`` (image or rejection),
``grouping`` (:class:`Series`, :class:`ScanResult`, notes), ``thumbnail``; this module ties
them together in :func:`scan`.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from app.imaging.classify import Header, classify, summarise
from app.imaging.elements import get_value, raw_text
from app.imaging.grouping import MODEL_KINDS, ScanResult, dedupe, group
from app.imaging.guards import Reject
from app.imaging.headers import IsZip, quiet, read_header
from app.imaging.sources import (
    Rejected,
    SourceRef,
    follow_dicomdir,
    list_sources,
    open_source,
    zip_members,
)
from app.progress import CancelToken, Progress, check_cancel, ensure

_DIRECTORY_SOP = "1.2.840.10008.1.3.10"


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ScanResult:
    """Scan files, folders (recursively), DICOMDIRs and zip files; group what is found.

    Parameters
    ----------
    paths
        One path or several: files, folders, DICOMDIR files or ``.zip`` archives.
    progress, cancel
        Progress is reported per file; ``cancel`` is checked per file.

    Returns
    -------
    ScanResult
        Patients → studies → series, plus every rejected file with its reason.
    """
    progress = ensure(progress)
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result = ScanResult()
    progress.update(0.0, "listing files")
    sources = list_sources([Path(p) for p in paths], result.rejected, cancel)
    headers: list[Header] = []
    total = max(len(sources), 1)
    identified: set[str] = set()
    with quiet():
        for i, (source, handle_zip) in enumerate(sources):
            check_cancel(cancel)
            if i % 16 == 0:
                progress.update(i / total, f"reading headers ({i}/{len(sources)})")
            header = _read_one(source, handle_zip, result, sources, identified)
            if header is not None:
                headers.append(header)
            total = max(len(sources), 1)
        archives = {s.path for s, _ in sources if s.member is not None}
        result.files = sum(1 for s, _ in sources if s.member is not None or s.path not in archives)
        group(dedupe(headers, result), result)
    progress.update(1.0, f"found {len(result.series)} series")
    return result


def _read_one(
    source: SourceRef,
    archive: zipfile.ZipFile | None,
    result: ScanResult,
    sources: list[tuple[SourceRef, zipfile.ZipFile | None]],
    identified: set[str],
) -> Header | None:
    try:
        with open_source(source, archive) as handle:
            ds, pixel = read_header(handle, source)
            if archive is None:
                size = os.fstat(handle.fileno()).st_size
            else:
                size = archive.getinfo(source.member).file_size
    except IsZip:
        if source.member is None:
            sources.extend(zip_members(source.path, result.rejected))
        else:
            result.rejected.append(
                Rejected(source.label, "zip inside a zip is not followed; extract it first")
            )
        return None
    except Reject as exc:
        result.rejected.append(Rejected(source.label, str(exc)))
        return None
    except RecursionError:
        result.rejected.append(Rejected(source.label, "sequences nested too deeply to read safely"))
        return None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        result.rejected.append(Rejected(source.label, f"cannot be read ({reason})"))
        return None
    except Exception as exc:  # any parse failure of a bad file becomes a rejection
        result.rejected.append(Rejected(source.label, f"unreadable DICOM ({_brief(exc)})"))
        return None
    try:
        sop = str(get_value(ds, "SOPClassUID", ""))
        if sop == _DIRECTORY_SOP or "DirectoryRecordSequence" in ds:
            result.dicomdirs.append(source.label)
            missing = follow_dicomdir(source, archive, ds, sources)
            if missing:
                reason = f"DICOMDIR lists {missing} file(s) that are not on the media"
                result.rejected.append(Rejected(source.label, reason))
            return None
        if sop in MODEL_KINDS:
            keys = ("SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID")
            result.add_model(source, MODEL_KINDS[sop], {k: raw_text(ds, k) for k in keys})
            return None
        header = classify(source, ds, pixel, size)
        summarise(header, ds, identified)
        return header
    except Reject as exc:
        result.rejected.append(Rejected(source.label, str(exc)))
    except RecursionError:
        result.rejected.append(Rejected(source.label, "sequences nested too deeply to read safely"))
    except Exception as exc:  # a header with impossible values is rejected, not fatal
        result.rejected.append(Rejected(source.label, f"invalid image header ({_brief(exc)})"))
    return None


def _brief(exc: BaseException) -> str:
    """Exception class and a short, value-free hint (messages may quote PHI)."""
    return type(exc).__name__


__all__ = ["scan"]

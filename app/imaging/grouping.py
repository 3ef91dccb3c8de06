"""Grouping headers into patient → study → series (one loadable stack each), with notes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from app.errors import DicomError
from app.imaging import suitability
from app.imaging.classify import Header
from app.imaging.headers import SliceInfo, normal_distances, orientation_key
from app.imaging.sources import Rejected, SourceRef

JSON_FORMAT = "medprint-scan/1"


@dataclass
class Series:
    """One loadable stack of slices, with what a technician needs to recognise it."""

    key: str
    series_uid: str
    modality: str
    number: int | None
    body_part: str | None
    rows: int
    columns: int
    slices: list[SliceInfo]
    identity: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    study_key: str = ""
    patient_key: str = ""
    _thumbnail: np.ndarray | None = field(default=None, repr=False)

    @property
    def slice_count(self) -> int:
        return len(self.slices)

    @property
    def sources(self) -> list[SourceRef]:
        """The distinct source files, in slice order of the scan."""
        seen: dict[SourceRef, None] = {}
        for s in self.slices:
            seen.setdefault(s.file.source, None)
        return list(seen)

    @property
    def thickness(self) -> float | None:
        return self.slices[0].thickness

    @property
    def slice_step(self) -> float | None:
        """Median distance between neighbouring slice positions along the normal, in mm."""
        distances = normal_distances(self.slices)
        if distances is None or len(distances) < 2:
            return self.slices[0].spacing_between or self.thickness
        steps = np.diff(np.sort(distances))
        steps = steps[steps > 1e-4]
        return float(np.median(steps)) if len(steps) else None

    @property
    def spacing(self) -> tuple[float | None, float | None, float | None]:
        """(column, row, slice) spacing in mm as declared; the loader may resample."""
        ps = self.slices[0].pixel_spacing
        col, row = (ps[1], ps[0]) if ps else (None, None)
        return (col, row, self.slice_step)

    @property
    def transfer_syntaxes(self) -> list[str]:
        return sorted({_ts_name(s.file.transfer_syntax) for s in self.slices})

    def to_json(self, *, identity: bool = False) -> dict:
        out = {
            "key": self.key,
            "number": self.number,
            "modality": self.modality,
            "body_part": self.body_part,
            "slices": self.slice_count,
            "files": len(self.sources),
            "rows": self.rows,
            "columns": self.columns,
            "spacing": [None if v is None else round(v, 6) for v in self.spacing],
            "thickness": None if self.thickness is None else round(self.thickness, 6),
            "transfer_syntaxes": self.transfer_syntaxes,
            "notes": list(self.notes),
            "suitability": suitability.series_warnings(self),
        }
        if identity:
            out["identity"] = {
                "uid": self.series_uid,
                "description": self.identity.get("series_description", ""),
                "date": self.identity.get("series_date", ""),
            }
        return out


@dataclass
class Study:
    key: str
    study_uid: str
    identity: dict[str, str]
    series: list[Series] = field(default_factory=list)


@dataclass
class Patient:
    key: str
    identity: dict[str, str]
    studies: list[Study] = field(default_factory=list)


# 3D model objects a scan lists apart from the image series (DICOM Supplement 205).
MODEL_KINDS = {"1.2.840.10008.5.1.4.1.1.104.3": "STL"}


@dataclass
class Model:
    """A 3D model series found by a scan (Encapsulated STL, one instance per part): not an
    image series; ``medprint import`` adds it to its case as a mesh version."""

    series_uid: str
    study_uid: str
    frame_of_reference: str
    kind: str
    sources: list[SourceRef] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Stable: ``m`` and a hash of the series UID (no UID shown)."""
        return "m" + hashlib.sha256(self.series_uid.encode()).hexdigest()[:11]

    def to_json(self, *, identity: bool = False) -> dict:
        out: dict = {"key": self.key, "kind": self.kind, "parts": len(self.sources)}
        if identity:
            out["identity"] = {"uid": self.series_uid, "study_uid": self.study_uid}
        return out


@dataclass
class ScanResult:
    patients: list[Patient] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    dicomdirs: list[str] = field(default_factory=list)
    files: int = 0
    models: list[Model] = field(default_factory=list)

    def add_model(self, source: SourceRef, kind: str, keys: dict[str, str]) -> None:
        """Note one model instance (``keys``: its series, study and frame of reference UIDs)."""
        series = keys["SeriesInstanceUID"]
        found = next((m for m in self.models if m.series_uid == series), None)
        if found is None:
            study, frame = keys["StudyInstanceUID"], keys["FrameOfReferenceUID"]
            found = Model(series, study, frame, kind)
            self.models.append(found)
        found.sources.append(source)

    def find_model(self, key_or_uid: str) -> Model | None:
        return next((m for m in self.models if key_or_uid in (m.key, m.series_uid)), None)

    @property
    def series(self) -> list[Series]:
        """Every series, patient by patient, study by study."""
        return [s for p in self.patients for st in p.studies for s in st.series]

    @property
    def image_count(self) -> int:
        return sum(s.slice_count for s in self.series)

    def find(self, key_or_uid: str) -> Series:
        """The series with this key or SeriesInstanceUID; DicomError when absent or ambiguous."""
        matches = [s for s in self.series if key_or_uid in (s.key, s.series_uid)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            msg = "no series with that key or UID in the scanned files; run `medprint scan` to list them"
        else:
            msg = "that UID names several stacks; pick one by its key from `medprint scan`"
        raise DicomError(msg)

    def to_json(self, *, identity: bool = False) -> dict:
        patients = []
        for p in self.patients:
            studies = []
            for st in p.studies:
                entry: dict = {"key": st.key}
                if identity:
                    entry["identity"] = dict(st.identity, uid=st.study_uid)
                entry["series"] = [s.to_json(identity=identity) for s in st.series]
                studies.append(entry)
            pat: dict = {"key": p.key}
            if identity:
                pat["identity"] = dict(p.identity)
            pat["studies"] = studies
            patients.append(pat)
        return {
            "format": JSON_FORMAT,
            "summary": {
                "files": self.files,
                "images": self.image_count,
                "series": len(self.series),
                "rejected": len(self.rejected),
                "dicomdirs": len(self.dicomdirs),
                "models": len(self.models),
            },
            "patients": patients,
            "models": [m.to_json(identity=identity) for m in self.models],
            "rejected": [{"file": r.file, "reason": r.reason} for r in self.rejected],
            "dicomdirs": list(self.dicomdirs),
        }


def dedupe(headers: list[Header], result: ScanResult) -> list[Header]:
    """Keep one file per image when the same instance is present in several encodings."""
    best: dict[tuple, Header] = {}
    order: list[tuple] = []
    for h in headers:
        key = (
            h.keys["SOPInstanceUID"] or id(h),
            h.slices[0].position,
            h.info.rows,
            h.info.columns,
            h.info.frames,
        )
        if key not in best:
            best[key] = h
            order.append(key)
            continue
        keep, drop = (h, best[key]) if h.rank < best[key].rank else (best[key], h)
        keep.identity = keep.identity or drop.identity
        best[key] = keep
        result.rejected.append(
            Rejected(
                drop.info.source.label,
                f"duplicate of the same image in {keep.info.source.label} (that one is used)",
            )
        )
    return [best[k] for k in order]


def group(headers: list[Header], result: ScanResult) -> None:
    patients: dict[tuple, Patient] = {}
    studies: dict[str, Study] = {}
    stacks: dict[tuple, Series] = {}
    series_ident: dict[str, dict[str, str]] = {}
    for h in headers:
        keys = h.keys
        pkey = (keys["PatientID"], keys["PatientName"], keys["PatientBirthDate"])
        patient = patients.get(pkey)
        series_ident.setdefault(keys["SeriesInstanceUID"], h.identity or {})
        ident = series_ident[keys["SeriesInstanceUID"]]
        if patient is None:
            patient = Patient(
                f"P{len(patients) + 1}",
                {k: ident.get(k, "") for k in ("patient_name", "patient_id", "birth_date", "sex")},
            )
            patients[pkey] = patient
            result.patients.append(patient)
        study_uid = keys["StudyInstanceUID"] or f"no-study:{h.info.source.label}"
        study = studies.get(study_uid)
        if study is None:
            study = Study(
                f"{patient.key}.S{len(patient.studies) + 1}",
                study_uid,
                {
                    k: ident.get(k, "")
                    for k in ("study_date", "study_description", "accession_number", "institution")
                },
            )
            studies[study_uid] = study
            patient.studies.append(study)
        series_uid = keys["SeriesInstanceUID"] or f"no-series:{h.info.source.label}"
        for sub, sub_slices in _split_frames(h).items():
            skey = (study_uid, series_uid, h.signature, sub)
            series = stacks.get(skey)
            if series is None:
                digest = hashlib.sha256(repr((series_uid, h.signature, sub)).encode())
                series = Series(
                    key=digest.hexdigest()[:12],
                    series_uid=series_uid,
                    modality=h.modality,
                    number=h.number,
                    body_part=h.body_part,
                    rows=h.info.rows,
                    columns=h.info.columns,
                    slices=[],
                    identity=dict(ident),
                    study_key=study.key,
                    patient_key=patient.key,
                )
                stacks[skey] = series
                study.series.append(series)
            series.slices.extend(sub_slices)
    for study in studies.values():
        study.series.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.key))
        for series in study.series:
            series.notes.extend(_notes(series))


def _split_frames(h: Header) -> dict[tuple, list[SliceInfo]]:
    """Split a multi-frame file by frame orientation and stack/temporal position."""
    groups: dict[tuple, list[SliceInfo]] = {}
    for s in h.slices:
        key = (orientation_key(s.orientation), s.stack)
        if len(h.slices) == 1:
            key = ((), ("", ""))
        groups.setdefault(key, []).append(s)
    return groups


def _notes(series: Series) -> list[str]:
    """Facts worth seeing before import (the loader warns about the same and fixes them)."""
    notes = []
    distances = normal_distances(series.slices)
    if distances is None:
        notes.append("no slice positions: geometry will be assumed")
        return notes
    steps = np.diff(np.sort(distances))
    if len(steps) and (steps < 1e-3).any():
        notes.append(f"{int((steps < 1e-3).sum())} slice(s) share a position with another")
    steps = steps[steps >= 1e-3]
    if len(steps) > 1 and steps.max() - steps.min() > max(0.01, 0.01 * np.median(steps)):
        notes.append(f"uneven slice spacing {steps.min():.2f}–{steps.max():.2f} mm")
    first = series.slices[0]
    if len(series.slices) > 1 and first.orientation is not None:
        pos = np.array([s.position for s in series.slices], dtype=float)
        order = np.argsort(distances)
        axis = pos[order[-1]] - pos[order[0]]
        normal = np.cross(first.orientation[:3], first.orientation[3:])
        if np.linalg.norm(axis) > 0:
            cos = abs(float(np.dot(axis, normal))) / float(np.linalg.norm(axis))
            angle = float(np.degrees(np.arccos(min(1.0, cos))))
            if angle > 0.05:
                notes.append(f"slices sheared by {angle:.1f}° (gantry tilt)")
    return notes


def _ts_name(uid: str) -> str:
    from pydicom.uid import UID  # noqa: PLC0415 (pydicom on first use)

    name = UID(uid).name
    return name or uid

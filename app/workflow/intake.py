"""Intake: scan folders, convert a series to NIfTI/NRRD, import a series as a case, open cases,
the case list, de-identify.

A case's patient identity lives only in the vault's encrypted index. The case list shows
pseudonyms; the identity is shown on request only (audited with a count, never the values).
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from app.case import Case
from app.errors import DicomError, MedPrintError
from app.imaging import suitability
from app.imaging.sources import SourceOpener
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.resources import resource_path
from app.security.vault import CaseEntry  # front ends get case entries from here
from app.workflow import policy, segment
from app.workflow.actor import Actor

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from app.imaging.grouping import ScanResult, Series
    from app.security.deid.batch import DeidReport
    from app.security.deid.pixels import Rect
    from app.security.deid.profile import DeidOptions
    from app.tools.segmentation.model import Segmentation

SAMPLE_MARK = "MedPrint sample"
UID_MAP_RECORD = "deid-uid-map"


# --- scanning -----------------------------------------------------------------------------------


def scan(
    actor: Actor,
    paths: list[str],
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ScanResult:
    """Patients, studies and series (and rejected files) under ``paths``: headers only.

    Reads folders the user already holds; needs no vault and stores nothing.
    """
    from app.imaging.scan import scan as scan_folders  # noqa: PLC0415 (pydicom on demand)

    return scan_folders(paths, progress=progress, cancel=cancel)


@dataclass
class Preview:
    """A scan with a thumbnail per series key (absent when the middle slice cannot be read)."""

    result: ScanResult
    thumbnails: dict[str, np.ndarray]


def preview(
    actor: Actor,
    paths: list[str],
    *,
    size: int = 96,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Preview:
    """:func:`scan` plus a small image of each series' middle slice (the import dialog)."""
    from app.imaging.thumbnail import thumbnail  # noqa: PLC0415 (pydicom on demand)

    progress = ensure(progress)
    result = scan(actor, paths, progress=progress.sub(0.0, 0.8), cancel=cancel)
    thumbs = {}
    for n, series in enumerate(result.series):
        check_cancel(cancel)
        try:
            thumbs[series.key] = thumbnail(series, size)
        except Exception:  # a thumbnail is a convenience; the series stays listed
            continue
        progress.sub(0.8, 1.0).update((n + 1) / len(result.series), "making thumbnails")
    return Preview(result, thumbs)


def convert(
    actor: Actor,
    source: Path,
    out: Path,
    series_key: str | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Volume:
    """Write one series (``series_key``, or the only one under ``source``), or a NRRD/NIfTI
    volume, to ``out`` (.nrrd, .nii, .nii.gz) with its corrected geometry, like dcm2niix.

    Reads files the user already holds and writes where they ask; needs no vault and stores
    nothing (the written volume carries no header identity).
    """
    from app.imaging.load import (  # noqa: PLC0415 (pydicom on demand)
        IMAGE_SUFFIXES,
        load_image_file,
        load_series,
        write_image_file,
    )

    if not out.name.lower().endswith((".nrrd", ".nii", ".nii.gz")):
        msg = "the output must end in .nrrd, .nii or .nii.gz"
        raise DicomError(msg)
    progress = ensure(progress)
    if source.is_file() and source.name.lower().endswith(IMAGE_SUFFIXES):
        volume = load_image_file(source)
    else:
        result = scan(actor, [str(source)], progress=progress.sub(0.0, 0.2), cancel=cancel)
        series = result.find(series_key) if series_key else _only(result.series)
        volume = load_series(series, progress=progress.sub(0.2, 0.95), cancel=cancel)
    write_image_file(volume, out)
    return volume


def _only(series: list[Series]) -> Series:
    if len(series) == 1:
        return series[0]
    if not series:
        msg = "no image series found there; 'medprint scan PATH' lists what was found and why"
        raise DicomError(msg)
    keys = ", ".join(s.key for s in series)
    msg = f"several series found ({keys}); choose one with --series"
    raise DicomError(msg)


# --- importing ----------------------------------------------------------------------------------


def import_series(
    actor: Actor,
    series: Series,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Case:
    """Load ``series`` and store it as a new case: original DICOM, volume and series facts.

    The identity goes only into the vault's encrypted index. Cancelling or failing at any
    point removes the half-made case, so importing again gives exactly one case.
    """
    from app.imaging.load import load_series  # noqa: PLC0415 (pydicom on demand)

    policy.allow(actor, "case.import")
    progress = ensure(progress)
    volume = load_series(series, progress=progress.sub(0.0, 0.6), cancel=cancel)
    check_cancel(cancel)
    vault = actor.vault
    case = Case(vault, vault.create_case(dict(series.identity)))
    try:
        _store_originals(case, series, progress.sub(0.6, 0.9), cancel)
        progress.update(0.9, "storing the volume")
        case.save_volume(volume)
        facts = series.to_json() | {
            "warnings": list(volume.warnings),
            "geometry": volume.geometry(),
            "suitability": _suitability(case, series, volume),
        }
        case.save_series_facts(facts)
    except BaseException:
        vault.delete_case(case.pseudonym)
        raise
    progress.update(1.0, "imported")
    policy.record(
        actor,
        "case.import",
        case.pseudonym,
        modality=volume.modality,
        slices=series.slice_count,
        shape=list(volume.shape),
        warnings=len(volume.warnings),
        series_sha256=case.originals_sha256(),  # the trace's source link (app.workflow.trace)
    )
    return case


def _suitability(case: Case, series: Series, volume: Volume) -> list[dict[str, str]]:
    """Is the series fit to print: warnings with reasons (they inform, never block)."""
    names = case.original_names()
    header = suitability.header_warnings(case.load_original(names[0])) if names else []
    found = [*suitability.series_warnings(series), *header, *suitability.image_warnings(volume)]
    return suitability.unique(found)


def _store_originals(
    case: Case, series: Series, progress: Progress, cancel: CancelToken | None
) -> None:
    sources = series.sources
    with SourceOpener() as opener:
        for number, source in enumerate(sources):
            check_cancel(cancel)
            with opener.open(source) as src, case.write_original(number) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            progress.update((number + 1) / len(sources), "storing the original DICOM (encrypted)")


def import_path(
    actor: Actor,
    path: str,
    series_key: str | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Case:
    """Scan ``path`` and import one series: ``series_key`` (key or UID), or the only / largest CT."""
    policy.allow(actor, "case.import")
    progress = ensure(progress)
    result = scan(actor, [path], progress=progress.sub(0.0, 0.2), cancel=cancel)
    series = choose_series(result, series_key)
    return import_series(actor, series, progress=progress.sub(0.2, 1.0), cancel=cancel)


def choose_series(result: ScanResult, series_key: str | None) -> Series:
    """The series ``series_key`` (key or UID) of a scan, or its only / largest CT."""
    return result.find(series_key) if series_key else _default_series(result.series)


def _default_series(candidates: list[Series]) -> Series:
    if not candidates:
        msg = "no image series found there; 'medprint scan PATH' lists what was found and why"
        raise DicomError(msg)
    if len(candidates) == 1:
        return candidates[0]
    ct = [s for s in candidates if s.modality == "CT"]
    if ct:
        return max(ct, key=lambda s: s.slice_count)
    keys = ", ".join(s.key for s in candidates)
    msg = f"several series found ({keys}); choose one with --series"
    raise DicomError(msg)


# --- opening ------------------------------------------------------------------------------------


def open_case(actor: Actor, pseudonym: str) -> Case:
    """Open case ``pseudonym`` for work (any role; audited as ``case.open``)."""
    policy.allow(actor, "case.open", pseudonym)
    case = actor.case(pseudonym)
    policy.record(actor, "case.open", case.pseudonym)
    return case


class LoadedCase(NamedTuple):
    """An opened case with its image and saved segmentation (what the window shows)."""

    case: Case
    volume: Volume
    segmentation: Segmentation | None


def load_case(
    actor: Actor,
    pseudonym: str,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    preview: Callable[[Volume], None] | None = None,
) -> LoadedCase:
    """Open case ``pseudonym`` and read its volume and segmentation (audited ``case.open``).

    ``preview(volume)`` is first given the case's reduced image (≤ 256 voxels a side) to show
    while the full one is read: only to look at, never to segment or measure on.
    """
    policy.allow(actor, "case.open", pseudonym)
    progress = ensure(progress)
    progress.update(0.05, f"opening case {pseudonym}")
    case = actor.case(pseudonym)
    reduced = case.load_preview() if preview is not None else None
    if reduced is not None:
        preview(reduced)
    loaded = _load(actor, case, progress, cancel)
    policy.record(actor, "case.open", pseudonym, shape=list(loaded.volume.shape))
    return loaded


def _load(actor: Actor, case: Case, progress: Progress, cancel: CancelToken | None) -> LoadedCase:
    check_cancel(cancel)
    progress.update(0.1, "decrypting the image")

    def read(fraction: float) -> None:
        check_cancel(cancel)
        progress.update(0.1 + 0.7 * fraction, "decrypting the image")

    volume = case.load_volume(read)
    if not case.has_preview():  # a case stored before previews: give it one for next time
        case.save_preview(volume)
    check_cancel(cancel)
    progress.update(0.8, "reading the segmentation")
    segmentation = segment.load(actor, case, volume)
    progress.update(1.0, "case open")
    return LoadedCase(case, volume, segmentation)


def sample_folder() -> Path:
    """The bundled sample series (a downsampled public CT; see its ATTRIBUTION.md)."""
    return resource_path("sample", "ct-abdomen")


def sample_available() -> bool:
    try:
        return sample_folder().is_dir()
    except MedPrintError:
        return False


def open_sample(
    actor: Actor, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Case:
    """The bundled sample case, imported into the vault the first time (audited ``case.open``)."""
    case = _sample_case(actor, ensure(progress), cancel)
    policy.record(actor, "case.open", case.pseudonym, sample=True)
    return case


def load_sample(
    actor: Actor, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> LoadedCase:
    """:func:`open_sample` with its image and segmentation read (what the window shows)."""
    progress = ensure(progress)
    case = _sample_case(actor, progress.sub(0.0, 0.8), cancel)
    loaded = _load(actor, case, progress.sub(0.8, 1.0), cancel)
    policy.record(actor, "case.open", case.pseudonym, shape=list(loaded.volume.shape), sample=True)
    return loaded


def _sample_case(actor: Actor, progress: Progress, cancel: CancelToken | None) -> Case:
    policy.allow(actor, "case.open")
    vault = actor.vault
    found = [e for e in vault.list_cases() if e.identity.get("sample") == SAMPLE_MARK]
    if found:
        return Case(vault, found[0].pseudonym)
    case = import_path(actor, str(sample_folder()), progress=progress, cancel=cancel)
    identity = vault.case_entry(case.pseudonym).identity
    vault.set_identity(case.pseudonym, {**identity, "sample": SAMPLE_MARK})
    return case


def save_view(actor: Actor, case: Case, state: dict) -> None:
    """Keep the window's view state (window, layout, crosshair) with the case."""
    policy.allow(actor, "case.open", case.pseudonym)
    case.save_view_state(state)


# --- the case list ------------------------------------------------------------------------------


def list_cases(
    actor: Actor, search: str | None = None, *, with_identity: bool = False
) -> list[CaseEntry]:
    """The vault's cases, oldest first; ``search`` matches the pseudonym or any patient field.

    Entries carry the patient fields only ``with_identity`` (audited ``cases.identity_shown``
    with the number of cases shown); otherwise only pseudonyms and dates leave the vault.
    """
    policy.allow(actor, "case.list")
    vault = actor.vault
    entries = vault.search_cases(search) if search else vault.list_cases()
    if not with_identity:
        return [replace(e, identity={}) for e in entries]
    policy.allow(actor, "case.identity")
    policy.record(actor, "cases.identity_shown", count=len(entries))
    return entries


def case_suitability(actor: Actor, pseudonym: str) -> list[dict[str, str]]:
    """The import's fit-to-print warnings of a case (codes and reasons, no identity)."""
    policy.allow(actor, "case.list")
    return list(Case(actor.vault, pseudonym).series_facts().get("suitability") or [])


def delete_case(actor: Actor, pseudonym: str) -> None:
    """Delete a case for good (administrators): its original UIDs leave the de-identification
    UID map, then the vault destroys its data key, re-keys the index and the records (old
    copies of them open nothing) and deletes its files."""
    policy.allow(actor, "case.delete", pseudonym)
    forgotten = _forget_uids(actor, Case(actor.vault, pseudonym))
    actor.vault.delete_case(pseudonym)
    policy.record(actor, "case.delete", pseudonym, uids_forgotten=forgotten)


def _forget_uids(actor: Actor, case: Case) -> int:
    """Take the UIDs of the case's original DICOM out of the UID map; how many went."""
    raw = actor.vault.get_record(UID_MAP_RECORD)
    if raw is None:
        return 0
    uids: set[str] = set()
    for name in case.original_names():
        uids |= _uids_of(case.load_original(name))
    known = json.loads(raw)
    kept = {k: v for k, v in known.items() if k not in uids}
    if len(kept) != len(known):
        actor.vault.put_record(UID_MAP_RECORD, json.dumps(kept, sort_keys=True).encode())
    return len(known) - len(kept)


def _uids_of(data: bytes) -> set[str]:
    """Every UID value in a DICOM file (study, series, instance, frame of reference, ...)."""
    import pydicom  # noqa: PLC0415 (pydicom on demand)

    dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    found: set[str] = set()
    for element in dataset.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            found |= {str(v) for v in values}
    return found


# --- de-identification --------------------------------------------------------------------------


@dataclass
class Deidentified:
    """What :func:`deidentify` did: the report, the method codes, whether the UID map is kept."""

    report: DeidReport
    codes: list[str]
    uid_map_in_vault: bool


def deidentify(
    actor: Actor,
    in_dir: Path,
    out_dir: Path,
    options: DeidOptions,
    *,
    pseudonym: str | None = None,
    date_shift_days: int | None = None,
    masks: list[Rect] | None = None,
    confirm_burned_in: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Deidentified:
    """Write de-identified, verified copies of the DICOM under ``in_dir`` into ``out_dir``.

    The UID key comes from the OS keystore (same input UID, same output UID on this
    installation); the map of original to new UIDs is merged into the vault's encrypted record
    only. Audited per output pseudonym as ``deid.export``.
    """
    from app.security.deid.batch import deid_folder  # noqa: PLC0415 (pydicom on demand)
    from app.security.deid.keys import uid_key_from_keystore  # noqa: PLC0415

    policy.allow(actor, "deid")
    if date_shift_days is not None and not options.retain_longitudinal_temporal:
        msg = "a date shift only applies when dates are retained (--retain-dates)"
        raise MedPrintError(msg)
    report = deid_folder(
        Path(in_dir),
        Path(out_dir),
        options=options,
        uid_key=uid_key_from_keystore(),
        pseudonym=pseudonym,
        date_shift_days=date_shift_days,
        masks={"*": masks} if masks else None,
        confirm_burned_in=confirm_burned_in,
        progress=progress,
        cancel=cancel,
    )
    stored = _keep_uid_map(actor, report.uid_map)
    codes = options.method_codes() + (["113102"] if options.deface else [])
    for name in report.pseudonyms:
        policy.record(
            actor,
            "deid.export",
            name,
            files=len(report.written),
            options=",".join(codes),
            checked_values=report.checked_values,
            masked_files=report.masked_files,
            defaced_series=report.defaced_series,
            burned_in_confirmed=bool(confirm_burned_in),
            uid_map_in_vault=stored,
        )
    return Deidentified(report, codes, stored)


def _keep_uid_map(actor: Actor, uid_map: dict[str, str]) -> bool:
    """Merge the original-to-new UID map into the vault's encrypted record."""
    if not uid_map:
        return False
    vault = actor.vault
    known = json.loads(vault.get_record(UID_MAP_RECORD) or b"{}")
    known.update(uid_map)
    vault.put_record(UID_MAP_RECORD, json.dumps(known, sort_keys=True).encode())
    return True

"""Case: one patient's work in the vault, known everywhere outside it by its pseudonym.

A case holds the imported series (original DICOM, encrypted, for traceability, and the loaded
volume), the segmentation, mesh versions, QA reports, approvals and print jobs. Every file
goes through the vault; nothing of a case is ever written to disk in the clear.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import DicomError, VaultError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security import audit
from app.security.vault import Vault

if TYPE_CHECKING:
    from app.imaging.scan import Series

VOLUME_FILE = "volume.mpvol"
SERIES_FILE = "series.json"


@dataclass
class Case:
    vault: Vault
    pseudonym: str

    # ----- generic content ------------------------------------------------------------------
    def save_bytes(self, name: str, data: bytes) -> None:
        self.vault.write_bytes(self.pseudonym, name, data)

    def load_bytes(self, name: str) -> bytes:
        return self.vault.read_bytes(self.pseudonym, name)

    def has(self, name: str) -> bool:
        return self.vault.has_file(self.pseudonym, name)

    def files(self) -> list[str]:
        return self.vault.list_files(self.pseudonym)

    def save_json(self, name: str, obj: Any) -> None:
        self.save_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def load_json(self, name: str) -> Any:
        try:
            return json.loads(self.load_bytes(name))
        except ValueError:
            msg = f"{name} of case {self.pseudonym} is not valid JSON; restore it from a backup"
            raise VaultError(msg) from None

    # ----- the image ------------------------------------------------------------------------
    def save_volume(self, volume: Volume) -> None:
        with self.vault.write_file(self.pseudonym, VOLUME_FILE) as out:
            volume.write(out)
        audit.record("case.save_volume", case=self.pseudonym, shape=list(volume.shape))

    def load_volume(self) -> Volume:
        if not self.has(VOLUME_FILE):
            msg = f"case {self.pseudonym} has no image yet; import a series first"
            raise VaultError(msg)
        with self.vault.read_file(self.pseudonym, VOLUME_FILE) as src:
            return Volume.read(src)


def open_case(pseudonym: str, vault: Vault | None = None) -> Case:
    """The case ``pseudonym`` of the (opened) vault; a clear error when it does not exist."""
    vault = vault or Vault.open()
    vault.case_entry(pseudonym)
    return Case(vault, pseudonym)


def import_series(
    series: Series,
    *,
    vault: Vault | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Case:
    """Load ``series`` and store it as a new case: original DICOM, volume and series facts.

    The patient's identity goes only into the encrypted case index. Cancelling or failing at any
    point removes the half-made case, so a repeated import yields exactly one case.
    """
    from app.imaging.load import load_series  # noqa: PLC0415 (pydicom only when importing)

    vault = vault or Vault.open()
    progress = ensure(progress)
    volume = load_series(series, progress=progress.sub(0.0, 0.6), cancel=cancel)
    check_cancel(cancel)
    pseudonym = vault.create_case(dict(series.identity))
    case = Case(vault, pseudonym)
    try:
        _store_originals(case, series, progress.sub(0.6, 0.9), cancel)
        progress.update(0.9, "storing the volume")
        case.save_volume(volume)
        facts = series.to_json() | {
            "warnings": list(volume.warnings),
            "geometry": volume.geometry(),
        }
        case.save_json(SERIES_FILE, facts)
    except BaseException:
        vault.delete_case(pseudonym)
        raise
    progress.update(1.0, "imported")
    audit.record(
        "case.import",
        case=pseudonym,
        modality=volume.modality,
        slices=series.slice_count,
        shape=list(volume.shape),
        warnings=len(volume.warnings),
    )
    return case


def _store_originals(
    case: Case, series: Series, progress: Progress, cancel: CancelToken | None
) -> None:
    from app.imaging.scan import SourceOpener  # noqa: PLC0415 (opens each zip archive once)

    sources = series.sources
    with SourceOpener() as opener:
        for number, source in enumerate(sources):
            check_cancel(cancel)
            name = f"dicom/{number:05d}.dcm"
            with opener.open(source) as src, case.vault.write_file(case.pseudonym, name) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            progress.update((number + 1) / len(sources), "storing the original DICOM (encrypted)")


def import_path(
    path: str,
    series_key: str | None = None,
    *,
    vault: Vault | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Case:
    """Scan ``path`` and import one series: ``series_key`` (key or UID), or the only / largest CT."""
    from app.imaging.scan import scan  # noqa: PLC0415

    progress = ensure(progress)
    result = scan([path], progress=progress.sub(0.0, 0.2), cancel=cancel)
    series = result.find(series_key) if series_key else _default_series(result.series)
    return import_series(series, vault=vault, progress=progress.sub(0.2, 1.0), cancel=cancel)


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

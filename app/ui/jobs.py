"""Jobs the window runs through the worker adapter: plain functions, no Qt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security import audit


@dataclass
class Loaded:
    """What a load job hands back to the window."""

    volume: Volume
    title: str
    case: Any = None  # app.case.Case, or None for a volume outside the vault
    segmentation: Any = None  # the case's saved Segmentation, if any


SEGMENTATION_FILE = "segmentation.seg"


def _saved_segmentation(case: Any) -> Any:
    if not case.has(SEGMENTATION_FILE):
        return None
    from app.tools.segmentation import Segmentation  # noqa: PLC0415

    return Segmentation.from_bytes(case.load_bytes(SEGMENTATION_FILE))


def load_case(
    inputs: tuple[Any, str], *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Loaded:
    """Open case ``pseudonym`` of ``vault`` and read its volume."""
    from app.case import open_case  # noqa: PLC0415 (keeps the window importable without a vault)

    vault, pseudonym = inputs
    progress = ensure(progress)
    progress.update(0.05, f"opening case {pseudonym}")
    case = open_case(pseudonym, vault)
    check_cancel(cancel)
    progress.update(0.2, "decrypting the image")
    volume = case.load_volume()
    check_cancel(cancel)
    progress.update(0.8, "reading the segmentation")
    segmentation = _saved_segmentation(case)
    audit.record("case.open", case=pseudonym, shape=list(volume.shape))
    progress.update(1.0, "case open")
    return Loaded(volume, pseudonym, case, segmentation)


def load_sample(
    vault: Any, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Loaded:
    """Open the bundled sample case, importing it into the vault the first time."""
    from app.sample import open_or_import_sample  # noqa: PLC0415

    progress = ensure(progress)
    case = open_or_import_sample(vault, progress=progress.sub(0.0, 0.8), cancel=cancel)
    check_cancel(cancel)
    progress.update(0.85, "decrypting the image")
    volume = case.load_volume()
    segmentation = _saved_segmentation(case)
    audit.record("case.open", case=case.pseudonym, shape=list(volume.shape), sample=True)
    progress.update(1.0, "sample case open")
    return Loaded(volume, f"{case.pseudonym} (sample)", case, segmentation)


@dataclass
class Scanned:
    """A scan with a thumbnail per series key (absent when the middle slice cannot be read)."""

    result: Any  # app.imaging.scan.ScanResult
    thumbnails: dict[str, Any]


def scan_with_thumbnails(
    paths: list[str], *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Scanned:
    """Scan folders/zips for DICOM series and make one thumbnail per series."""
    from app.imaging.scan import scan, thumbnail  # noqa: PLC0415

    progress = ensure(progress)
    result = scan(paths, progress=progress.sub(0.0, 0.8), cancel=cancel)
    thumbs: dict[str, Any] = {}
    series = result.series
    for n, item in enumerate(series):
        check_cancel(cancel)
        try:
            thumbs[item.key] = thumbnail(item, 96)
        except Exception:  # a thumbnail is a convenience; the series is still listed
            continue
        progress.sub(0.8, 1.0).update((n + 1) / max(len(series), 1), "making thumbnails")
    return Scanned(result, thumbs)


def import_one_series(
    inputs: tuple[Any, Any], *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> str:
    """Import ``series`` into ``vault`` as a new case; returns its pseudonym."""
    from app.case import import_series  # noqa: PLC0415

    vault, series = inputs
    case = import_series(series, vault=vault, progress=progress, cancel=cancel)
    return case.pseudonym

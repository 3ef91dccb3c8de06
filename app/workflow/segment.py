"""Segment: run tools, paint, add derived segments, save, import and export a segmentation.

Every applied tool and every brush stroke on a case is checked (``segment``) and audited as
``segmentation.apply`` with the tool's name and parameters; saving is ``segmentation.save``,
importing ``segmentation.import``, exporting ``segmentation.export`` (format and SHA-256 of the
file, never its path). A DICOM SEG export carries a de-identified header (the case pseudonym
as patient name and ID) unless an administrator asks for the identified one.

Without a case (``case=None``: a plain image file the user holds, outside the vault) the same
functions run the tools and write files; nothing of the vault is touched and nothing is audited.
Live previews (the threshold overlay) stay in the domain: they change nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.atomic import fsync_dir
from app.case import Case
from app.errors import SegmentationError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress
from app.tools.segmentation import Segment, Segmentation, ToolResult, exchange, get_tool
from app.tools.segmentation.grid import mask_box
from app.tools.segmentation.storage import read_segmentation, write_segmentation
from app.workflow import names, policy
from app.workflow.actor import Actor


@dataclass(frozen=True)
class Exported:
    """A written export: its format, the file's SHA-256, and whether it names the patient."""

    path: Path
    format: str
    sha256: str
    segments: int
    identified: bool = False


def new(volume: Volume) -> Segmentation:
    """An empty segmentation on ``volume``'s grid."""
    return Segmentation(volume)


def load(actor: Actor, case: Case, volume: Volume | None = None) -> Segmentation | None:
    """The case's saved segmentation, or None when it has none yet.

    With ``volume`` the grid is checked, so a segmentation never lands on another image.
    """
    policy.allow(actor, "case.open", case.pseudonym)
    if not case.has_segmentation():
        return None
    with case.read_segmentation() as src:
        seg = read_segmentation(src)
    if volume is not None and not seg.grid.matches(volume):
        msg = f"the saved segmentation of {case.pseudonym} is not on its image grid; use --new"
        raise SegmentationError(msg)
    return seg


def run_tool(  # noqa: PLR0917 (callers pass the params positionally)
    actor: Actor | None,
    case: Case | None,
    seg: Segmentation,
    volume: Volume,
    tool_name: str,
    params: Any = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> ToolResult:
    """Apply tool ``tool_name`` with ``params`` (its dataclass, or a mapping of values).

    On a case: permission ``segment``, audited ``segmentation.apply`` once the tool changed
    the segmentation (an error or a cancel changes nothing and records nothing).
    """
    tool = get_tool(tool_name)
    if params is None or isinstance(params, Mapping):
        params = tool.default_params(**dict(params or {}))
    if case is not None:
        policy.allow(_who(actor), "segment", case.pseudonym)
    result = tool.apply(seg, volume, params, progress=progress, cancel=cancel)
    if case is not None:
        policy.record(
            _who(actor),
            "segmentation.apply",
            case.pseudonym,
            tool=tool.name,
            params=_audited(actor, case, params),
            changed_voxels=int(result.changed_voxels),
            segments=len(seg.segments),
        )
    return result


def params_json(params: Any) -> str:
    """A tool's parameters as sorted JSON (what the audit log keeps)."""
    values = asdict(params) if is_dataclass(params) else dict(params)
    return json.dumps(values, default=str, sort_keys=True)


def _audited(actor: Actor | None, case: Case, params: Any) -> str:
    """The parameters as the audit log keeps them: text that may not leave the vault (a segment
    named after the patient) is withheld."""
    values = json.loads(params_json(params))
    safe = {
        key: names.for_audit(_who(actor), case, value) if isinstance(value, str) else value
        for key, value in values.items()
    }
    return json.dumps(safe, sort_keys=True)


def begin_stroke(
    actor: Actor | None, case: Case | None, seg: Segmentation, *, erase: bool = False
) -> None:
    """Start a brush stroke (one undo step); on a case the actor must be allowed to segment.

    The dabs of the stroke are the domain's paint tool (live, per mouse move);
    :func:`end_stroke` closes the stroke and records it.
    """
    if case is not None:
        policy.allow(_who(actor), "segment", case.pseudonym)
    seg.begin_stroke("erase" if erase else "paint")


def end_stroke(actor: Actor | None, case: Case | None, seg: Segmentation, **params: Any) -> None:
    """Close the stroke begun by :func:`begin_stroke`; on a case audited ``segmentation.apply``
    (tool ``paint``) with the brush ``params`` (segment, radius, shape, erase)."""
    seg.end_stroke()
    if case is not None:
        policy.record(
            _who(actor),
            "segmentation.apply",
            case.pseudonym,
            tool="paint",
            params=_audited(actor, case, params),
            segments=len(seg.segments),
        )


def add_segment_from_mask(
    actor: Actor | None,
    case: Case | None,
    seg: Segmentation,
    name: str,
    mask: np.ndarray,
    *,
    colour: tuple[float, float, float] | None = None,
) -> Segment:
    """Store a derived segment ``name`` holding exactly ``mask`` (a boolean array on the grid).

    On a case: permission ``segment``, audited ``segmentation.apply`` (tool ``mask``).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != seg.grid.shape:
        msg = f"the mask {mask.shape} is not on the segmentation's grid {seg.grid.shape}"
        raise SegmentationError(msg)
    if case is not None:
        policy.allow(_who(actor), "segment", case.pseudonym)
    segment = seg.add_segment(name, colour)
    box = mask_box(mask)
    if box is not None:
        offset = (box[0].start, box[1].start, box[2].start)
        seg.modify(segment, mask[box], "add", offset=offset, exclusive=False)
    if case is not None:
        policy.record(
            _who(actor),
            "segmentation.apply",
            case.pseudonym,
            tool="mask",
            params=_audited(actor, case, {"segment": segment.name}),
            changed_voxels=seg.voxel_count(segment),
            segments=len(seg.segments),
        )
    return segment


def save(actor: Actor, case: Case, seg: Segmentation) -> None:
    """Store ``seg`` as the case's segmentation (encrypted, atomic); audited with its size."""
    policy.allow(actor, "segment", case.pseudonym)
    with case.write_segmentation() as out:
        write_segmentation(seg, out)
    case.add_segmentation_author(actor.user)
    policy.record(
        actor,
        "segmentation.save",
        case.pseudonym,
        segments=len(seg.segments),
        voxels=int(sum(seg.voxel_count(s) for s in seg.segments)),
        sha256=case.segmentation_sha256(),  # the trace's segmentation link
    )


def import_file(
    actor: Actor | None, case: Case | None, path: str | Path, volume: Volume
) -> Segmentation:
    """Read a .seg.nrrd/.nrrd, .nii/.nii.gz or DICOM SEG (.dcm) file onto ``volume``'s grid.

    On a case: permission ``segment``, audited ``segmentation.import`` with the format and the
    file's SHA-256. The result is not saved: :func:`save` does that.
    """
    if case is not None:
        policy.allow(_who(actor), "segment", case.pseudonym)
    seg = exchange.import_file(path, volume)
    if case is not None:
        policy.record(
            _who(actor),
            "segmentation.import",
            case.pseudonym,
            format=exchange.format_of(path),
            sha256=_sha256(Path(path)),
            segments=len(seg.segments),
        )
    return seg


def export_file(
    actor: Actor | None,
    case: Case | None,
    seg: Segmentation,
    path: str | Path,
    *,
    identified: bool = False,
) -> Exported:
    """Write ``seg`` to ``path`` in the format its name asks for (atomic).

    A DICOM SEG (.dcm) is built from the case's original series, de-identified: the pseudonym
    replaces the patient's name and ID, birth date and the like are removed, UIDs are remapped
    as ``medprint deid`` does on this installation. ``identified=True`` keeps the originals'
    header (administrators; permission ``segment.export_identified``). On a case audited
    ``segmentation.export`` with the format and SHA-256 of the file, never its path.
    """
    path = Path(path)
    kind = exchange.format_of(path)
    if case is not None:
        policy.allow(_who(actor), "segment.export", case.pseudonym)
        _check_export_names(_who(actor), case, seg, path)
        if identified:
            policy.allow(_who(actor), "segment.export_identified", case.pseudonym)
    elif identified:
        msg = "an identified export is of a case's original series; export from a case"
        raise SegmentationError(msg)
    sources, identity = None, {}
    if kind == exchange.DICOM_SEG and case is not None:
        sources = _source_datasets(case, identified=identified)
        identity = {} if identified else _identity(_who(actor), case)
    digest = _write_atomic(path, lambda tmp: _export_checked(seg, tmp, sources, identity))
    exported = Exported(path, kind, digest, len(seg.segments), identified)
    if case is not None:
        policy.record(
            _who(actor),
            "segmentation.export",
            case.pseudonym,
            format=kind,
            sha256=digest,
            segments=exported.segments,
            identified=identified,
        )
    return exported


def _check_export_names(actor: Actor, case: Case, seg: Segmentation, path: Path) -> None:
    """The file name and every segment name (labels in the file) may leave the vault."""
    action = "segment.export"
    names.check_outgoing(actor, case, path.name, what="file name", action=action)
    labels = [s.name for s in seg.segments]
    names.check_all(actor, case, labels, what="segment name", action=action)


def _source_datasets(case: Case, *, identified: bool) -> list[Any]:
    """The case's original DICOM, de-identified to the pseudonym unless ``identified``."""
    import pydicom  # noqa: PLC0415 (pydicom on demand)

    from app.security.deid import (  # noqa: PLC0415 (pydicom on demand)
        DeidOptions,
        deidentify,
        uid_key_from_keystore,
    )

    names = case.original_names()
    if not names:
        msg = f"case {case.pseudonym} keeps no original DICOM; export .seg.nrrd or .nii.gz instead"
        raise SegmentationError(msg)
    datasets = [pydicom.dcmread(io.BytesIO(case.load_original(n))) for n in names]
    if identified:
        return datasets
    key, options = uid_key_from_keystore(), DeidOptions()
    for ds in datasets:
        deidentify(ds, options=options, uid_key=key, pseudonym=case.pseudonym, in_place=True)
    return datasets


# Identity fields (as the vault's case index keeps them) that must not appear in an export.
_IDENTIFYING = (
    "patient_name",
    "patient_id",
    "birth_date",
    "accession_number",
    "study_instance_uid",
    "series_instance_uid",
)


def _identity(actor: Actor, case: Case) -> dict[str, str]:
    """The case's identifying values from the vault's index (checked against, never shown)."""
    identity = actor.vault.case_entry(case.pseudonym).identity
    return {k: str(identity[k]) for k in _IDENTIFYING if len(str(identity.get(k) or "")) >= 3}


def _export_checked(
    seg: Segmentation, tmp: Path, sources: list[Any] | None, identity: dict[str, str]
) -> None:
    """Write the export; a DICOM SEG header naming the patient is refused (nothing written)."""
    exchange.export_file(seg, tmp, sources)
    if not identity:
        return
    import pydicom  # noqa: PLC0415 (pydicom on demand)

    header = pydicom.dcmread(tmp, stop_before_pixels=True)
    texts = [str(e.value) for e in header.iterall() if e.VR not in ("SQ", "OB", "OW", "UN")]
    leaked = sorted(k for k, v in identity.items() if any(v in t for t in texts))
    if leaked:
        msg = f"the DICOM SEG header still holds {', '.join(leaked)}; nothing was exported"
        raise SegmentationError(msg)


def _write_atomic(path: Path, write: Any) -> str:
    """Let ``write`` fill a temporary file next to ``path`` (same suffix), then rename it into
    place; the SHA-256 of what was written."""
    if not path.parent.is_dir():
        msg = "the target folder does not exist; create it or choose another"
        raise SegmentationError(msg)
    tmp = path.with_name(f".{secrets.token_hex(6)}.{path.name}")
    try:
        write(tmp)
        digest = _sha256(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _who(actor: Actor | None) -> Actor:
    if actor is None:
        msg = "working on a case needs the acting user; open the case through the workflow"
        raise SegmentationError(msg)
    return actor


def dicom_seg(actor: Actor, case: Case, *, identified: bool) -> bytes | None:
    """The case's saved segmentation as a DICOM SEG referencing its original series (same
    frame of reference), or None when it has none or every segment is empty. De-identified
    (pseudonym, remapped UIDs, checked segment names) unless ``identified``. Not audited: the
    caller records where it goes."""
    seg = load(actor, case)
    if seg is None or all(seg.is_empty(s) for s in seg.segments):
        return None
    if not identified:
        labels = [s.name for s in seg.segments]
        names.check_all(actor, case, labels, what="segment name", action="pacs.store")
    out = io.BytesIO()
    exchange.write_dicom_seg(seg, _source_datasets(case, identified=identified), out)
    return out.getvalue()

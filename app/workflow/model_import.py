"""Import back: a 3D model object found by a folder scan (an Encapsulated STL series, e.g. a
model stored to the PACS and retrieved, or on a CD) becomes a new mesh version of the case it
belongs to, its STL bytes unchanged (same SHA-256).

The case is found inside the vault by the model's Study Instance UID (in the encrypted case
index) and Frame of Reference UID (in the case's original DICOM). When no case holds it and
the scan also found the study's images, they are imported as a new case first. A folder with
images only is imported as before (:func:`app.workflow.intake.import_series`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.case import Case, check_part
from app.errors import DicomError, MedPrintError
from app.imaging.sources import SourceOpener
from app.progress import CancelToken, Progress, ensure
from app.workflow import intake, policy
from app.workflow.actor import Actor

if TYPE_CHECKING:  # pydicom and numpy on demand: every command module is imported for --help
    from app.imaging.grouping import Model, ScanResult
    from app.imaging.pacs.model3d import ModelObject


@dataclass
class Imported:
    """What an import made: the case, whether it is new, and the mesh version added (if a
    model was imported) with each part's SHA-256."""

    case: Case
    new_case: bool
    mesh_version: int | None = None
    parts: dict[str, str] = field(default_factory=dict)


def import_path(
    actor: Actor,
    path: str,
    key: str | None = None,
    *,
    case: str | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Imported:
    """Scan ``path`` and import what it holds: the model ``key`` (or its only model) into its
    case (``case``: a pseudonym, when several cases hold the model's study), or else the image
    series ``key`` (or the only / largest CT) as a new case."""
    policy.allow(actor, "case.import")
    progress = ensure(progress)
    result = intake.scan(actor, [path], progress=progress.sub(0.0, 0.2), cancel=cancel)
    model = _chosen_model(result, key)
    if model is None:
        series = intake.choose_series(result, key)
        made = intake.import_series(actor, series, progress=progress.sub(0.2, 1.0), cancel=cancel)
        return Imported(made, new_case=True)
    target = actor.case(case) if case else _owner(actor, model)
    new_case = target is None
    if target is None:
        target = _case_from_images(actor, result, model, progress.sub(0.2, 0.9), cancel)
    version = add_model(actor, target, _read(model), origin="import")
    parts = {p["name"]: p["sha256"] for p in target.mesh_manifest(version)["parts"]}
    return Imported(target, new_case, version, parts)


def _chosen_model(result: ScanResult, key: str | None) -> Model | None:
    if key:
        return result.find_model(key)
    if len(result.models) > 1:
        keys = ", ".join(m.key for m in result.models)
        msg = f"several 3D models found ({keys}); choose one with --series"
        raise DicomError(msg)
    return result.models[0] if result.models else None


def _read(model: Model) -> list[ModelObject]:
    from app.imaging.pacs.model3d import read_stl_object  # noqa: PLC0415 (pydicom on demand)

    with SourceOpener() as opener:
        objects = []
        for source in model.sources:
            with opener.open(source) as stream:
                objects.append(read_stl_object(stream.read()))
    return objects


# --- the case a model belongs to ----------------------------------------------------------------


def _owner(actor: Actor, model: Model) -> Case | None:
    """The one case of the model's study and frame of reference, if the vault holds it."""
    study = [
        e.pseudonym
        for e in actor.vault.list_cases()
        if e.identity.get("study_instance_uid") == model.study_uid
    ]
    same = [p for p in study if _frame_of(actor.case(p)) == model.frame_of_reference]
    if len(same) > 1:
        msg = f"cases {', '.join(same)} all hold this model's study; choose one with --case"
        raise MedPrintError(msg)
    return actor.case(same[0]) if same else None


def _frame_of(case: Case) -> str:
    import pydicom  # noqa: PLC0415 (on demand)

    names = case.original_names()
    if not names:
        return ""
    header = pydicom.dcmread(
        io.BytesIO(case.load_original(names[0])),
        stop_before_pixels=True,
        specific_tags=["FrameOfReferenceUID"],
    )
    return str(header.get("FrameOfReferenceUID", ""))


def _case_from_images(
    actor: Actor, result: ScanResult, model: Model, progress: Progress, cancel: CancelToken | None
) -> Case:
    """A new case from the scan's images of the model's study (the largest CT, else the
    largest series), which must share the model's frame of reference."""
    mine = [s for s in result.series if s.identity.get("study_instance_uid") == model.study_uid]
    if not mine:
        msg = "no case in the vault holds this model's study, and its images are not here; "
        msg += "import the images first (or retrieve them from the PACS)"
        raise MedPrintError(msg)
    series = max(mine, key=lambda s: (s.modality == "CT", s.slice_count))
    case = intake.import_series(actor, series, progress=progress, cancel=cancel)
    if _frame_of(case) != model.frame_of_reference:
        actor.vault.delete_case(case.pseudonym)
        msg = "the model's frame of reference is not that of its study's images; nothing imported"
        raise MedPrintError(msg)
    return case


# --- the mesh version ---------------------------------------------------------------------------


def add_model(actor: Actor, case: Case, objects: list[ModelObject], *, origin: str) -> int:
    """Store model ``objects`` (one per part) as a new mesh version of ``case``, the STL bytes
    unchanged and checked by QA; audited ``mesh.import`` with each part's SHA-256."""
    from app.tools.mesh.core import make_mesh  # noqa: PLC0415 (trimesh on demand)
    from app.tools.mesh.meshio import read_mesh_bytes  # noqa: PLC0415
    from app.tools.mesh.pipeline import check_parts  # noqa: PLC0415

    policy.allow(actor, "mesh.edit", case.pseudonym)
    parts: dict[str, bytes] = {}
    for n, model in enumerate(objects, start=1):
        name = part_name(model.title, n)
        parts[name if name not in parts else f"part{n}"] = model.stl
    qa = check_parts([make_mesh(*read_mesh_bytes(data, "stl")) for data in parts.values()])
    info = {"author": actor.user, "operation": f"model-{origin}", "parts": list(parts)}
    number = case.save_mesh_version(parts, qa=_plain(qa.to_dict()), info=info)
    hashes = {p["name"]: p["sha256"] for p in case.mesh_manifest(number)["parts"]}
    policy.record(
        actor, "mesh.import", case.pseudonym, version=number, origin=origin,
        sha256=case.mesh_sha256(number), parts=hashes,
    )  # fmt: skip
    return number


def part_name(title: str, number: int) -> str:
    """A part name from a model's Document Title (``sphere (mesh v2)`` -> ``sphere``)."""
    head = title.split(" (", maxsplit=1)[0]
    candidate = "".join(c if c.isalnum() or c in "-_" else "_" for c in head)[:40]
    try:
        return check_part(candidate.strip("_") or f"part{number}")
    except MedPrintError:
        return f"part{number}"


def _plain(facts: dict) -> dict:
    """QA facts as plain JSON (numpy scalars become numbers)."""
    text = json.dumps(facts, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    return json.loads(text)

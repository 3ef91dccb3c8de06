"""PACS: nodes, query, retrieve into a case, store an approved model back, open a model found.

Query results carry identity for the screen only; the audit log gets the acts with ATNA event
types (DICOM PS3.15 A.5: Query 110112, Begin Transferring DICOM Instances 110102, DICOM
Instances Transferred 110104), node names, pseudonyms, counts and hashes, never names, IDs or
UIDs. Retrieved instances stay in memory until the import stores them in the vault (encrypted);
a cancelled or failed retrieve leaves no case. Storing back is the one exit of identity, by
design, to a configured archive: reviewers and administrators, approved mesh versions only.
"""

from __future__ import annotations

import hashlib
import io
import socket
from dataclasses import dataclass, field

import pydicom
from pydicom.uid import generate_uid

from app.case import Case, check_part
from app.errors import MedPrintError
from app.imaging.grouping import ScanResult, Series
from app.imaging.pacs import dicomweb, dimse
from app.imaging.pacs.model3d import (
    SourceSeries,
    encapsulated_stl,
    read_stl_object,
)
from app.imaging.pacs.model_obj import (
    MTL_SOP_CLASS,
    OBJ_SOP_CLASS,
    encapsulated_obj_mtl,
    mtl_colours,
    obj_and_mtl,
    read_document,
)
from app.imaging.pacs.nodes import Node, PacsError, load_nodes, save_nodes
from app.imaging.pacs.query import STL_SOP_CLASS, FindPage, Query, uid_hash
from app.imaging.pacs.received import ReceivedInstances
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.workflow import intake, policy, review, segment
from app.workflow.actor import Actor

NODES_FILE = "pacs-nodes.json"
METHODS = ("get", "move", "wado")
# IHE ATNA / DICOM PS3.15 A.5 audit event IDs (DCM code values).
ATNA_QUERY = "110112"
ATNA_BEGIN_TRANSFER = "110102"
ATNA_INSTANCES_TRANSFERRED = "110104"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
OBJECT_KINDS = {
    STL_SOP_CLASS: "STL",
    MTL_SOP_CLASS: "MTL",
    OBJ_SOP_CLASS: "OBJ",
    SEG_SOP_CLASS: "SEG",
}


# --- nodes --------------------------------------------------------------------------------------


def nodes(actor: Actor) -> list[Node]:
    """The configured archives (anyone may see them: no PHI)."""
    policy.allow(actor, "pacs.nodes")
    return list(load_nodes(_nodes_path(actor)).values())


def _nodes_path(actor: Actor):
    return actor.paths.config / NODES_FILE


def node(actor: Actor, name: str) -> Node:
    found = load_nodes(_nodes_path(actor))
    if name not in found:
        known = ", ".join(sorted(found)) or "none yet"
        msg = f"no PACS node named '{name}' (configured: {known}); add it with 'medprint pacs add'"
        raise PacsError(msg)
    return found[name]


def add_node(actor: Actor, new: Node) -> Node:
    """Add or replace a node (administrators; audited ``pacs.node_set``)."""
    policy.allow(actor, "pacs.manage")
    found = load_nodes(_nodes_path(actor))
    found[new.name] = new
    save_nodes(_nodes_path(actor), found)
    policy.record(actor, "pacs.node_set", node=new.name, aet=new.aet, host=new.host, port=new.port)
    return new


def remove_node(actor: Actor, name: str) -> None:
    """Remove node ``name`` (administrators; audited ``pacs.node_removed``)."""
    policy.allow(actor, "pacs.manage")
    node(actor, name)
    found = load_nodes(_nodes_path(actor))
    del found[name]
    save_nodes(_nodes_path(actor), found)
    policy.record(actor, "pacs.node_removed", node=name)


def echo(actor: Actor, name: str, *, timeout: float = dimse.TIMEOUT) -> float:
    """C-ECHO a node: the round trip in seconds (a clear error when it does not answer)."""
    policy.allow(actor, "pacs.nodes")
    return dimse.echo(node(actor, name), timeout=timeout)


# --- query --------------------------------------------------------------------------------------


def find(
    actor: Actor,
    name: str,
    query: Query,
    *,
    limit: int = 100,
    offset: int = 0,
    method: str = "dimse",
    timeout: float = dimse.TIMEOUT,
) -> FindPage:
    """Studies matching ``query`` on node ``name`` with their series (C-FIND or QIDO-RS).

    Audited ``pacs.query`` (ATNA Query) with a hash of the keys and the number of matches."""
    policy.allow(actor, "pacs.query")
    target = node(actor, name)
    if method == "dicomweb":
        page = dicomweb.find(target, query, limit=limit, offset=offset)
    else:
        page = dimse.find(target, query, limit=limit, offset=offset, timeout=timeout)
    policy.record(
        actor, "pacs.query", atna=ATNA_QUERY, node=name, method=method,
        query_sha256=query.fingerprint(), matches=len(page.studies), more=page.more,
    )  # fmt: skip
    return page


# --- retrieve -----------------------------------------------------------------------------------


@dataclass
class Retrieved:
    """A retrieve's new case, how many instances came, and the ones not usable (with why)."""

    case: Case
    instances: int
    rejected: list[str]
    failed: int


def _fetch(
    target: Node,
    study_uid: str,
    series_uid: str | None,
    method: str,
    received: ReceivedInstances,
    *,
    progress: Progress,
    cancel: CancelToken | None,
    timeout: float,
) -> int:
    if method not in METHODS:
        msg = f"unknown retrieve method '{method}'; choose one of {', '.join(METHODS)}"
        raise MedPrintError(msg)
    common = {"progress": progress, "cancel": cancel}
    if method == "wado":
        return dicomweb.retrieve(target, study_uid, series_uid, received.add, **common)
    fetch = dimse.get if method == "get" else dimse.move
    return fetch(target, study_uid, series_uid, received.add, timeout=timeout, **common)


def retrieve(
    actor: Actor,
    name: str,
    study_uid: str,
    series_uid: str | None = None,
    *,
    method: str = "get",
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = dimse.TIMEOUT,
) -> Retrieved:
    """Retrieve a series (or a study's largest CT) from node ``name`` into a new case.

    The instances are held in memory, scanned and imported as a folder would be (the originals
    go to the vault encrypted); cancelling or failing at any point leaves no case behind.
    """
    policy.allow(actor, "pacs.retrieve")
    target = node(actor, name)
    progress = ensure(progress)
    policy.record(
        actor, "pacs.retrieve_begin", atna=ATNA_BEGIN_TRANSFER, node=name, method=method,
        study_sha256=uid_hash(study_uid),
    )  # fmt: skip
    with ReceivedInstances() as received:
        part = progress.sub(0.0, 0.5)
        failed = _fetch(
            target, study_uid, series_uid, method, received,
            progress=part, cancel=cancel, timeout=timeout,
        )  # fmt: skip
        check_cancel(cancel)
        if received.count == 0:
            msg = f"PACS '{name}' sent no instances for that study or series"
            raise PacsError(msg)
        result = intake.scan(actor, [received.finish()], cancel=cancel)
        series = _choose(result, series_uid)
        case = intake.import_series(actor, series, progress=progress.sub(0.5, 1.0), cancel=cancel)
    case.save_origin(
        {"pacs_node": name, "aet": target.aet, "host": target.host, "port": target.port}
    )
    rejected = [r.reason for r in result.rejected]
    policy.record(
        actor, "pacs.retrieve", case.pseudonym, atna=ATNA_INSTANCES_TRANSFERRED, node=name,
        method=method, instances=received.count, rejected=len(rejected), failed=failed,
    )  # fmt: skip
    return Retrieved(case, received.count, rejected, failed)


def _choose(result: ScanResult, series_uid: str | None) -> Series:
    candidates = [s for s in result.series if series_uid in (None, s.series_uid)]
    if not candidates:
        msg = "the retrieved instances hold no image series MedPrint can load"
        if result.rejected:
            msg += f" ({len(result.rejected)} rejected: {result.rejected[0].reason})"
        raise PacsError(msg)
    ct = [s for s in candidates if s.modality == "CT"] or candidates
    return max(ct, key=lambda s: s.slice_count)


# --- store back ---------------------------------------------------------------------------------


@dataclass
class Stored:
    """What a store sent: instances, the model series (hashed), part SHA-256s, de-identified;
    the number of objects of each kind (STL, MTL, OBJ, SEG), of series, and the SHA-256 of
    the OBJ and MTL documents and of the SEG's pixel data."""

    node: str
    instances: int
    series_sha256: str
    parts: dict[str, str]
    deidentified: bool
    objects: dict[str, int] = field(default_factory=dict)
    series: int = 1
    documents: dict[str, str] = field(default_factory=dict)


def store(
    actor: Actor,
    case: Case,
    name: str,
    version: int,
    *,
    deidentified: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = dimse.TIMEOUT,
) -> Stored:
    """Store approved mesh ``version`` to node ``name``: an Encapsulated STL per part, an
    Encapsulated OBJ + MTL when its parts carry colours (one new series: the source series'
    patient and study, the same frame of reference, the source instances referenced), and the
    case's segmentation as a DICOM SEG (its own series). ``deidentified`` applies the PS3.15
    Basic Profile; identified objects go only to the node the case was retrieved from or a
    node marked clinical. Reviewers and administrators; audited begin and transferred.

    ``cancel`` stops it while the objects are made, before anything is sent; once sending has
    begun the series is completed (an archive should not keep half a model series)."""
    release = review.release_mesh(actor, case, version, "pacs.store")
    target = node(actor, name)
    _check_destination(actor, case, target, deidentified)
    progress = ensure(progress)
    progress.update(0.0, "making the DICOM objects")
    datasets = _model_objects(actor, case, version, deidentified)
    check_cancel(cancel)
    progress.update(0.4, f"sending {len(datasets)} objects to {name}")
    policy.record(
        actor, "pacs.store_begin", case.pseudonym, atna=ATNA_BEGIN_TRANSFER, node=name,
        version=version, mesh_sha256=release.mesh_sha256, deidentified=deidentified,
    )  # fmt: skip
    sent = dimse.store(target, datasets, progress=progress.sub(0.4, 1.0), timeout=timeout)
    mesh = case.load_mesh_version(version)
    parts = {p["name"]: p["sha256"] for p in mesh.part_facts}
    series = uid_hash(str(datasets[0].SeriesInstanceUID))
    kinds = _kinds(datasets)
    count = len({str(ds.SeriesInstanceUID) for ds in datasets})
    documents = _documents(datasets)
    policy.record(
        actor, "pacs.store", case.pseudonym, atna=ATNA_INSTANCES_TRANSFERRED, node=name,
        version=version, instances=sent, series_sha256=series, parts=parts,
        deidentified=deidentified, objects=kinds, series=count, documents=documents,
    )  # fmt: skip
    return Stored(name, sent, series, parts, deidentified, kinds, count, documents)


def stored_summary(stored: Stored, version: int) -> str:
    """One line saying what a store sent, e.g. "stored 4 objects (1 STL, 1 MTL, 1 OBJ, 1 SEG)
    of mesh v2 in 2 series to PACS 'pacs'"."""
    kinds = ", ".join(f"{n} {kind}" for kind, n in stored.objects.items())
    what = "de-identified objects" if stored.deidentified else "objects"
    return (
        f"stored {stored.instances} {what} ({kinds}) of mesh v{version} in {stored.series} "
        f"series to PACS '{stored.node}'"
    )


def _check_destination(actor: Actor, case: Case, target: Node, deidentified: bool) -> None:
    """Identity leaves only to the archive the case came from or a clinical archive."""
    if deidentified:
        return
    if target.research:
        msg = f"PACS '{target.name}' is a research archive: it takes de-identified objects only "
        msg += "(--deidentified)"
        policy.refuse(actor, "pacs.store", case.pseudonym, reason="research", message=msg)
    if target.clinical or is_origin(case, target):
        return
    msg = f"PACS '{target.name}' is neither the archive case {case.pseudonym} came from nor a "
    msg += "clinical archive: identified objects go only there; store de-identified "
    msg += "(--deidentified) or have an administrator mark the node clinical (--clinical)"
    policy.refuse(
        actor, "pacs.store", case.pseudonym, reason="not-origin", message=msg, node=target.name
    )


def is_origin(case: Case, target: Node) -> bool:
    """Whether ``case`` was retrieved from ``target``'s address (AE title, host, port)."""
    origin = case.origin()
    return bool(origin) and (origin.get("aet"), origin.get("host"), origin.get("port")) == (
        target.aet,
        target.host,
        target.port,
    )


def _model_objects(actor: Actor, case: Case, version: int, deidentified: bool) -> list:
    source = SourceSeries.of(case.load_original(n) for n in case.original_names())
    mesh = case.load_mesh_version(version)
    series_uid = generate_uid()
    serial = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:16]
    datasets = [
        encapsulated_stl(
            mesh.parts[part["name"]],
            source,
            series_uid=series_uid,
            number=n,
            title=f"{part['name']} (mesh v{version})",
            serial=serial,
        )
        for n, part in enumerate(mesh.part_facts, start=1)
    ]
    colours = {p["name"]: p.get("colour") for p in mesh.part_facts}
    if any(colours.values()):
        obj, mtl = obj_and_mtl(mesh.parts, colours)
        datasets += encapsulated_obj_mtl(
            obj, mtl, source, series_uid=series_uid, first_number=len(datasets) + 1,
            title=f"mesh v{version}", serial=serial,
        )  # fmt: skip
    if deidentified:
        datasets = [_deidentify(ds, case.pseudonym) for ds in datasets]
    seg = segment.dicom_seg(actor, case, identified=not deidentified)
    if seg is not None:
        datasets.append(pydicom.dcmread(io.BytesIO(seg)))
    return datasets


def _kinds(datasets: list) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for ds in datasets:
        kind = OBJECT_KINDS.get(str(ds.SOPClassUID), "other")
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def _documents(datasets: list) -> dict[str, str]:
    out = {}
    for ds in datasets:
        kind = OBJECT_KINDS.get(str(ds.SOPClassUID), "other")
        if kind in ("OBJ", "MTL"):
            data = bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]
            out[kind] = hashlib.sha256(data).hexdigest()
        elif kind == "SEG":
            out[kind] = hashlib.sha256(bytes(ds.PixelData)).hexdigest()
    return out


def _deidentify(ds, pseudonym: str):
    from app.security.deid.header import deidentify  # noqa: PLC0415
    from app.security.deid.keys import uid_key_from_keystore  # noqa: PLC0415
    from app.security.deid.profile import DeidOptions  # noqa: PLC0415

    out = deidentify(
        ds, options=DeidOptions(), uid_key=uid_key_from_keystore(), pseudonym=pseudonym
    )
    # The profile blanks Encapsulated Document (a PDF may hold anything); ours is the model:
    # a binary STL whose 80-byte header MedPrint wrote, or an OBJ/MTL of vertices, faces,
    # colours and part names (checked when the version was made): geometry only.
    out.EncapsulatedDocument = ds.EncapsulatedDocument
    out.EncapsulatedDocumentLength = len(ds.EncapsulatedDocument)
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


# --- import back --------------------------------------------------------------------------------


def open_model(
    actor: Actor,
    case: Case,
    name: str,
    study_uid: str,
    series_uid: str,
    *,
    timeout: float = dimse.TIMEOUT,
) -> int:
    """Retrieve an Encapsulated STL series (C-GET) and store it as a new mesh version of
    ``case`` (the STL bytes unchanged, checked by QA; part colours from an Encapsulated MTL in
    the series); its number."""
    from app.tools.mesh.core import make_mesh  # noqa: PLC0415 (trimesh on demand)
    from app.tools.mesh.meshio import read_mesh_bytes  # noqa: PLC0415
    from app.tools.mesh.pipeline import check_parts  # noqa: PLC0415

    policy.allow(actor, "pacs.retrieve", case.pseudonym)
    policy.allow(actor, "mesh.edit", case.pseudonym)
    target = node(actor, name)
    with ReceivedInstances() as received:
        dimse.get(target, study_uid, series_uid, received.add, timeout=timeout)
        instances = {data: _sop_class(data) for data in received.instances()}
    models = [read_stl_object(d) for d, sop in instances.items() if sop == STL_SOP_CLASS]
    colours = {}
    for data in (d for d, sop in instances.items() if sop == MTL_SOP_CLASS):
        colours.update(mtl_colours(read_document(data)))
    if not models:
        msg = f"PACS '{name}' sent no Encapsulated STL for that series"
        raise PacsError(msg)
    parts: dict[str, bytes] = {}
    for n, model in enumerate(models, start=1):
        title = _part_name(model.title, n)
        parts[title if title not in parts else f"part{n}"] = model.stl
    meshes = [make_mesh(*read_mesh_bytes(data, "stl")) for data in parts.values()]
    qa = check_parts(meshes)
    info = {"author": actor.user, "operation": "pacs-import", "node": name, "parts": list(parts)}
    styles = {p: {"colour": colours[p]} for p in parts if p in colours}
    number = case.save_mesh_version(parts, qa=_plain(qa.to_dict()), info=info, styles=styles)
    policy.record(
        actor, "pacs.open_model", case.pseudonym, atna=ATNA_INSTANCES_TRANSFERRED, node=name,
        version=number, sha256=case.mesh_sha256(number), parts=len(parts),
    )  # fmt: skip
    return number


def _sop_class(data: bytes) -> str:
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    return str(header.get("SOPClassUID", ""))


def _part_name(title: str, number: int) -> str:
    candidate = "".join(
        c if c.isalnum() or c in "-_" else "_" for c in title.split(" (", maxsplit=1)[0]
    )[:40]
    try:
        return check_part(candidate.strip("_") or f"part{number}")
    except MedPrintError:
        return f"part{number}"


def _plain(facts: dict) -> dict:
    import json  # noqa: PLC0415

    return json.loads(
        json.dumps(facts, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )

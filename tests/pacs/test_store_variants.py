"""Store-back variants against a real Orthanc: a coloured two-part version goes as Encapsulated
STL + MTL + OBJ (Supplement 208) and the case's segmentation as a DICOM SEG, all on the source's
frame of reference, with the right references and byte hashes; de-identified to a research
node; identified objects refused to a node that is neither the origin nor clinical."""

from __future__ import annotations

import hashlib
import io
import json
import logging

import numpy as np
import pydicom
import pytest
import trimesh
from pynetdicom import AE, evt
from pynetdicom.sop_class import CTImageStorage

from app.case import Case
from app.cli import main
from app.errors import AccessDenied, Cancelled
from app.imaging.pacs.model_obj import MTL_SOP_CLASS, OBJ_SOP_CLASS
from app.imaging.pacs.nodes import Node, PacsError
from app.imaging.pacs.query import STL_SOP_CLASS
from app.progress import CancelToken, Progress
from app.security import audit
from app.workflow import pacs
from app.workflow.pacs import SEG_SOP_CLASS
from tests.pacs.conftest import CANARY, CANARY_ID, node_for, study_of
from tests.pacs.orthanc import free_port
from tests.pacs.stores import COLOURS, coloured_version, delete_new
from tests.workflow.conftest import ADMIN, REVIEWER
from tests.workflow.mesh_versions import sphere_stl


@pytest.fixture
def ct_case(people, pacs_node, orthanc):
    """The canary CT retrieved into a case; what the test stores is deleted from Orthanc after
    (the session's other tests expect the study as uploaded)."""
    study, series = study_of(orthanc, CANARY_ID)
    before = set(orthanc.get("/instances"))
    yield pacs.retrieve(people[ADMIN], "pacs", study, series).case
    delete_new(orthanc, before)


def _study_instances(orthanc, study_uid: str) -> set[str]:
    query = {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}
    return set(orthanc.post("/tools/find", json.dumps(query).encode(), "application/json"))


def _sources(case: Case) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(io.BytesIO(case.load_original(n))) for n in case.original_names()]


def _stored(orthanc, ids: set[str]) -> dict[str, list[tuple[bytes, pydicom.Dataset]]]:
    by_class: dict[str, list] = {}
    for instance in ids:
        data = orthanc.get(f"/instances/{instance}/file")
        ds = pydicom.dcmread(io.BytesIO(data))
        by_class.setdefault(str(ds.SOPClassUID), []).append((data, ds))
    return by_class


def _document(ds: pydicom.Dataset) -> bytes:
    return bytes(ds.EncapsulatedDocument)[: int(ds.EncapsulatedDocumentLength)]


def test_coloured_version_and_segmentation_reach_orthanc(people, ct_case, orthanc, caplog):
    caplog.set_level(logging.DEBUG)
    version = coloured_version(people, ct_case)
    source = _sources(ct_case)
    study_uid = str(source[0].StudyInstanceUID)
    before = _study_instances(orthanc, study_uid)
    stored = pacs.store(people[REVIEWER], ct_case, "pacs", version)
    assert stored.objects == {"STL": 2, "MTL": 1, "OBJ": 1, "SEG": 1}
    assert (stored.instances, stored.series) == (5, 2)
    line = pacs.stored_summary(stored, version)
    assert line == (
        f"stored 5 objects (2 STL, 1 MTL, 1 OBJ, 1 SEG) of mesh v{version} in 2 series "
        "to PACS 'pacs'"
    )
    found = _stored(orthanc, _study_instances(orthanc, study_uid) - before)
    assert {k: len(v) for k, v in found.items()} == {
        STL_SOP_CLASS: 2, MTL_SOP_CLASS: 1, OBJ_SOP_CLASS: 1, SEG_SOP_CLASS: 1,
    }  # fmt: skip
    frame = source[0].FrameOfReferenceUID
    for items in found.values():
        for _data, ds in items:
            assert ds.FrameOfReferenceUID == frame and str(ds.StudyInstanceUID) == study_uid
            assert str(ds.PatientName) == CANARY  # identity back to its own archive
            assert ds.SeriesInstanceUID != source[0].SeriesInstanceUID
    [(_, mtl)] = found[MTL_SOP_CLASS]
    [(_, obj)] = found[OBJ_SOP_CLASS]
    assert obj.MIMETypeOfEncapsulatedDocument == "model/obj"
    assert mtl.MIMETypeOfEncapsulatedDocument == "model/mtl"
    assert obj.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == mtl.SOPInstanceUID
    assert obj.ReferencedInstanceSequence[0].ReferencedSOPClassUID == MTL_SOP_CLASS
    assert (
        obj.SeriesInstanceUID
        == mtl.SeriesInstanceUID
        == found[STL_SOP_CLASS][0][1].SeriesInstanceUID
    )
    assert {r.ReferencedSOPInstanceUID for r in obj.SourceInstanceSequence} == {
        s.SOPInstanceUID for s in source
    }
    assert hashlib.sha256(_document(obj)).hexdigest() == stored.documents["OBJ"]
    assert hashlib.sha256(_document(mtl)).hexdigest() == stored.documents["MTL"]
    _check_obj_geometry(_document(obj), _document(mtl))
    stl_hashes = {hashlib.sha256(_document(ds)).hexdigest() for _, ds in found[STL_SOP_CLASS]}
    assert stl_hashes == set(stored.parts.values())
    [(_, seg)] = found[SEG_SOP_CLASS]
    _check_seg(seg, source, stored)
    # Opened back: the STL parts, coloured from the MTL (the OBJ is not a second copy).
    series = str(obj.SeriesInstanceUID)
    number = pacs.open_model(people[ADMIN], ct_case, "pacs", study_uid, series)
    parts = ct_case.load_mesh_version(number).part_facts
    assert {p["name"]: (p["sha256"], p["colour"]) for p in parts} == {
        name: (stored.parts[name], colour) for name, colour in COLOURS.items()
    }
    record = next(
        r for r in audit.read_records(people[REVIEWER].paths) if r["action"] == "pacs.store"
    )
    assert record["facts"]["objects"] == stored.objects and record["facts"]["series"] == 2
    assert CANARY not in caplog.text and CANARY_ID not in caplog.text


def _check_obj_geometry(obj: bytes, mtl: bytes) -> None:
    """The OBJ holds both spheres, welded, in mm; the MTL their colours."""
    text = obj.decode("ascii")
    assert "mtllib model.mtl" in text and "usemtl bone" in text and "usemtl vessel" in text
    vertices = np.array(
        [line.split()[1:] for line in text.splitlines() if line.startswith("v ")], float
    )
    faces = [line for line in text.splitlines() if line.startswith("f ")]
    bone = trimesh.load(io.BytesIO(sphere_stl(10.0)), file_type="stl")
    assert len(faces) == 2 * len(bone.faces) and len(vertices) == 2 * len(bone.vertices)
    assert np.abs(vertices).max() == pytest.approx(10.0, abs=1e-4)
    materials = mtl.decode("ascii")
    assert "newmtl bone\nKa 0 0 0\nKd 0.9020 0.8627 0.7843" in materials
    assert "newmtl vessel\nKa 0 0 0\nKd 0.7843 0.1961 0.1961" in materials


def _check_seg(seg: pydicom.Dataset, source: list[pydicom.Dataset], stored) -> None:
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == "liver"
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in referenced.ReferencedInstanceSequence} <= {
        s.SOPInstanceUID for s in source
    }
    assert hashlib.sha256(bytes(seg.PixelData)).hexdigest() == stored.documents["SEG"]
    assert int(seg.NumberOfFrames) == 10  # the ten slices the mask covers
    assert int(np.unpackbits(np.frombuffer(seg.PixelData, np.uint8)).sum()) == 10 * 60 * 80


def test_deidentified_variants_to_a_research_node(people, ct_case, orthanc):
    pacs.add_node(people[ADMIN], node_for(orthanc, "research", research=True))
    version = coloured_version(people, ct_case)
    query = {"Level": "Instance", "Query": {"PatientID": ct_case.pseudonym}}
    before = set(orthanc.post("/tools/find", json.dumps(query).encode(), "application/json"))
    stored = pacs.store(people[ADMIN], ct_case, "research", version, deidentified=True)
    after = set(orthanc.post("/tools/find", json.dumps(query).encode(), "application/json"))
    assert stored.objects == {"STL": 2, "MTL": 1, "OBJ": 1, "SEG": 1}
    found = _stored(orthanc, after - before)
    for items in found.values():
        for data, ds in items:
            assert CANARY.encode() not in data and CANARY_ID.encode() not in data
            assert ds.PatientIdentityRemoved == "YES"
    frames = {ds.FrameOfReferenceUID for items in found.values() for _, ds in items}
    assert len(frames) == 1 and _sources(ct_case)[0].FrameOfReferenceUID not in frames
    [(_, mtl)] = found[MTL_SOP_CLASS]
    [(_, obj)] = found[OBJ_SOP_CLASS]
    assert obj.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == mtl.SOPInstanceUID
    assert hashlib.sha256(_document(obj)).hexdigest() == stored.documents["OBJ"]


def test_cancelled_store_sends_nothing_and_progress_reaches_the_end(people, ct_case, orthanc):
    version = coloured_version(people, ct_case, segmentation=False)
    before = set(orthanc.get("/instances"))
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        pacs.store(people[REVIEWER], ct_case, "pacs", version, cancel=cancel)
    assert set(orthanc.get("/instances")) == before
    actions = [r["action"] for r in audit.read_records(people[REVIEWER].paths)]
    assert "pacs.store_begin" not in actions
    seen: list[tuple[float, str]] = []
    progress = Progress(lambda f, m: seen.append((f, m)))
    assert pacs.store(people[REVIEWER], ct_case, "pacs", version, progress=progress).instances == 4
    assert seen[-1] == (pytest.approx(1.0), "stored 4 of 4 objects")
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)


def test_identified_store_only_to_the_origin_or_a_clinical_node(people, ct_case, orthanc):
    admin, reviewer = people[ADMIN], people[REVIEWER]
    pacs.add_node(admin, node_for(orthanc, "other", host="localhost"))
    version = coloured_version(people, ct_case)
    with pytest.raises(AccessDenied, match=r"neither the archive case .* came from nor a clinical"):
        pacs.store(reviewer, ct_case, "other", version)
    denied = audit.read_records(admin.paths)[-1]
    assert denied["action"] == "access.denied" and denied["facts"]["reason"] == "not-origin"
    assert pacs.store(reviewer, ct_case, "other", version, deidentified=True).deidentified
    pacs.add_node(admin, node_for(orthanc, "other", host="localhost", clinical=True))
    assert pacs.store(reviewer, ct_case, "other", version).instances == 5
    pacs.remove_node(admin, "other")
    assert [n.name for n in pacs.nodes(admin)] == ["pacs"]


def test_cli_clinical_node_remove_and_store_line(people, ct_case, orthanc, capsys):
    version = coloured_version(people, ct_case, segmentation=False)
    argv = ["pacs", "add", "clinic", "--aet", "ORTHANC", "--host", "localhost"]
    assert main([*argv, "--port", str(orthanc.dicom_port), "--clinical"]) == 0
    assert main(["pacs", "nodes"]) == 0
    assert "clinic: ORTHANC@localhost" in capsys.readouterr().out.split("[clinical]")[0]
    argv = ["pacs", "store", "clinic", ct_case.pseudonym, "--version", str(version)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        f"stored 4 objects (2 STL, 1 MTL, 1 OBJ) of mesh v{version} in 1 series to PACS 'clinic'"
    )
    assert main(["pacs", "remove", "clinic"]) == 0
    assert main(["pacs", "store", "clinic", ct_case.pseudonym, "--version", str(version)]) == 2
    captured = capsys.readouterr()
    assert "no PACS node named 'clinic'" in captured.out + captured.err
    assert CANARY not in out


def test_an_archive_that_refuses_the_model_classes_gets_nothing(people, ct_case):
    """A storage SCP (pynetdicom) that takes CT and Encapsulated STL but not OBJ/MTL: the store
    is refused before the first object, with the classes named."""
    received: list[str] = []
    scp = AE(ae_title="STRICT")
    scp.add_supported_context(CTImageStorage)
    scp.add_supported_context(STL_SOP_CLASS)
    handler = (evt.EVT_C_STORE, lambda event: received.append("x") or 0x0000)
    port = free_port()
    server = scp.start_server(("127.0.0.1", port), block=False, evt_handlers=[handler])
    try:
        node = Node("strict", "STRICT", "127.0.0.1", port, clinical=True)
        pacs.add_node(people[ADMIN], node)
        version = coloured_version(people, ct_case, segmentation=False)
        with pytest.raises(PacsError, match="PACS 'strict' does not accept") as refused:
            pacs.store(people[REVIEWER], ct_case, "strict", version)
    finally:
        server.shutdown()
    assert str(refused.value).endswith(
        "does not accept Encapsulated OBJ Storage, Encapsulated MTL Storage; nothing was sent"
    )
    assert received == []

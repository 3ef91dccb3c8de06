"""PACS against a real Orthanc: echo, C-FIND and QIDO queries, C-GET / C-MOVE / WADO-RS
retrieves into the vault, the approved model stored back as Encapsulated STL and read back
(REST and C-GET), roles, and the audit trail."""

from __future__ import annotations

import hashlib
import io
import json

import pydicom
import pytest

from app.case import Case
from app.errors import AccessDenied
from app.imaging.pacs.model3d import read_stl_object
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import STL_SOP_CLASS, Query
from app.progress import Progress
from app.security import audit
from app.workflow import pacs, review
from app.workflow.actor import Actor
from tests.conftest import SHARED_DATA
from tests.pacs.conftest import CANARY, CANARY_ID, MR, node_for, study_of
from tests.workflow.conftest import ADMIN, REVIEWER, TECH
from tests.workflow.mesh_versions import store_version


def audit_records(actor: Actor) -> list[dict]:
    return audit.read_records(actor.paths)


def test_echo_and_find_by_patient_id(admin, pacs_node, orthanc):
    assert pacs.echo(admin, "pacs") < 5
    page = pacs.find(admin, "pacs", Query(patient_id=CANARY_ID))
    assert [s.patient_name for s in page.studies] == [CANARY]
    [series] = page.studies[0].series
    assert (series.modality, series.instances, page.more) == ("CT", 134, False)
    by_modality = pacs.find(admin, "pacs", Query(modality="MR"))
    assert {s.modalities[0] for s in by_modality.studies} == {"MR"}
    web = pacs.find(admin, "pacs", Query(patient_id=CANARY_ID), method="dicomweb")
    assert web.studies[0].uid == page.studies[0].uid
    assert web.studies[0].series[0].uid == series.uid
    assert pacs.find(admin, "pacs", Query(name="NOBODY*")).studies == []


@pytest.mark.parametrize("method", ["get", "move", "wado"])
def test_retrieve_makes_a_normal_case(admin, pacs_node, orthanc, method):
    patient = pydicom.dcmread(next((orthanc_dir := _mr_dir()).glob("*.dcm"))).PatientID
    study, series = study_of(orthanc, str(patient))
    progress_seen: list[float] = []
    progress = Progress(lambda f, _m: progress_seen.append(f))
    got = pacs.retrieve(admin, "pacs", study, series, method=method, progress=progress)
    facts = got.case.series_facts()
    assert got.instances == len(list(orthanc_dir.glob("*.dcm")))
    assert facts["modality"] == "MR" and got.rejected == [] and got.failed == 0
    assert len(got.case.original_names()) == got.instances
    assert got.case.load_volume().shape[0] == facts["geometry"]["shape"][0]
    assert progress_seen and max(progress_seen) == pytest.approx(1.0)
    entry = admin.vault.case_entry(got.case.pseudonym)
    assert entry.identity["series_instance_uid"] == series
    actions = [r["action"] for r in audit_records(admin)]
    assert actions[-2:] == ["case.import", "pacs.retrieve"] and "pacs.retrieve_begin" in actions


def _mr_dir():
    return SHARED_DATA / "dicom" / MR


@pytest.fixture
def ct_case(admin, pacs_node, orthanc) -> Case:
    study, series = study_of(orthanc, CANARY_ID)
    return pacs.retrieve(admin, "pacs", study, series).case


def _approved(people, case: Case) -> int:
    version = store_version(case, TECH)
    review.approve(people[REVIEWER], case, version)
    return version


def test_store_back_and_read_back(people, ct_case, orthanc):
    reviewer = people[REVIEWER]
    version = _approved(people, ct_case)
    stored = pacs.store(reviewer, ct_case, "pacs", version)
    assert stored.instances == 1
    source = [
        pydicom.dcmread(io.BytesIO(ct_case.load_original(n))) for n in ct_case.original_names()
    ]
    study_uid = str(source[0].StudyInstanceUID)
    found = orthanc.post(
        "/tools/find",
        json.dumps(
            {"Level": "Instance", "Query": {"Modality": "M3D", "StudyInstanceUID": study_uid}}
        ).encode(),
        "application/json",
    )
    [instance] = found  # type: ignore[misc]
    data = orthanc.get(f"/instances/{instance}/file")
    ds = pydicom.dcmread(io.BytesIO(data))  # type: ignore[arg-type]
    assert str(ds.SOPClassUID) == STL_SOP_CLASS and ds.Modality == "M3D"
    assert ds.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert ds.SeriesInstanceUID != source[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in ds.SourceInstanceSequence} == {
        s.SOPInstanceUID for s in source
    }
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    assert ds.Manufacturer == "MedPrint" and ds.SoftwareVersions
    assert str(ds.PatientName) == CANARY  # identity goes back to the archive it came from
    part_sha = ct_case.load_mesh_version(version).part_facts[0]["sha256"]
    assert read_stl_object(data).sha256 == part_sha  # type: ignore[arg-type]
    # Read back over C-GET and opened as a mesh version of the case (import back).
    number = pacs.open_model(people[ADMIN], ct_case, "pacs", study_uid, str(ds.SeriesInstanceUID))
    assert ct_case.load_mesh_version(number).part_facts[0]["sha256"] == part_sha
    store_record = next(r for r in audit_records(reviewer) if r["action"] == "pacs.store")
    assert store_record["facts"]["atna"] == "110104"
    assert store_record["facts"]["parts"] == {"sphere": part_sha}


def test_store_refusals(people, ct_case, orthanc):
    version = store_version(ct_case, TECH)
    with pytest.raises(AccessDenied, match=r"not approved|cannot be"):
        pacs.store(people[REVIEWER], ct_case, "pacs", version)
    review.approve(people[REVIEWER], ct_case, version)
    with pytest.raises(AccessDenied, match="pacs store"):
        pacs.store(people[TECH], ct_case, "pacs", version)
    with pytest.raises(PacsError, match="no PACS node named 'elsewhere'"):
        pacs.store(people[REVIEWER], ct_case, "elsewhere", version)
    with pytest.raises(AccessDenied, match="pacs manage"):
        pacs.add_node(people[TECH], node_for(orthanc, "mine"))


def test_deidentified_store_to_a_research_node(people, ct_case, orthanc):
    admin = people[ADMIN]
    pacs.add_node(admin, node_for(orthanc, "research", research=True))
    version = _approved(people, ct_case)
    with pytest.raises(AccessDenied, match="research archive"):
        pacs.store(admin, ct_case, "research", version)
    stored = pacs.store(admin, ct_case, "research", version, deidentified=True)
    assert stored.deidentified
    found = orthanc.post(
        "/tools/find",
        json.dumps({"Level": "Instance", "Query": {"PatientID": ct_case.pseudonym}}).encode(),
        "application/json",
    )
    [instance] = found  # type: ignore[misc]
    data = orthanc.get(f"/instances/{instance}/file")
    assert CANARY.encode() not in data and CANARY_ID.encode() not in data  # type: ignore[operator]
    ds = pydicom.dcmread(io.BytesIO(data))  # type: ignore[arg-type]
    assert ds.PatientIdentityRemoved == "YES" and str(ds.SOPClassUID) == STL_SOP_CLASS
    part_sha = ct_case.load_mesh_version(version).part_facts[0]["sha256"]
    assert hashlib.sha256(read_stl_object(data).stl).hexdigest() == part_sha  # type: ignore[arg-type]

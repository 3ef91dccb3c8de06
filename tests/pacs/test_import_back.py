"""Import back, round trip through a real Orthanc: an approved mesh version stored as
Encapsulated STL, the study retrieved (C-GET, into memory) and scanned: the scan lists the
model apart from the image series, and importing it adds a mesh version with the same part
and mesh SHA-256 to the case of its study and frame of reference, or to a new case made from
the study's images when the vault has none."""

from __future__ import annotations

import io
import json
import urllib.request

import pydicom
import pytest
from pydicom.uid import generate_uid

from app.cli import main
from app.errors import MedPrintError
from app.imaging.pacs import dimse
from app.imaging.pacs.received import ReceivedInstances
from app.security import audit
from app.workflow import intake, model_import, pacs, review, trace
from tests.conftest import SHARED_DATA
from tests.pacs.conftest import MR, study_of
from tests.workflow.conftest import ADMIN, REVIEWER, TECH
from tests.workflow.mesh_versions import store_version

PATIENT = "IMPORT-BACK-{}"


@pytest.fixture
def study(orthanc, request):
    """Twelve MR slices under new UIDs and a patient ID of their own, deleted from Orthanc
    after the test (the models stored back join no study another test counts)."""
    patient = PATIENT.format(request.node.name[-12:])
    study_uid, series_uid, frame = generate_uid(), generate_uid(), generate_uid()
    for file in sorted((SHARED_DATA / "dicom" / MR).glob("*.dcm"))[60:72]:
        ds = pydicom.dcmread(file)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study_uid, series_uid
        ds.FrameOfReferenceUID = frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out)
        orthanc.upload_bytes(out.getvalue())
    uids = study_of(orthanc, patient)
    yield uids
    [found] = orthanc.post("/tools/lookup", uids[0].encode(), "text/plain")  # type: ignore[misc]
    delete = urllib.request.Request(f"{orthanc.url}/studies/{found['ID']}", method="DELETE")
    urllib.request.urlopen(delete, timeout=10).close()


@pytest.fixture
def stored(people, pacs_node, study):
    """A case retrieved from Orthanc whose approved mesh version went back as Encapsulated STL."""
    case = pacs.retrieve(people[ADMIN], "pacs", *study).case
    version = store_version(case, TECH)
    review.approve(people[REVIEWER], case, version)
    pacs.store(people[REVIEWER], case, "pacs", version)
    return case, version


def test_model_round_trip_into_its_case(people, stored, pacs_node, study, capsys):
    case, version = stored
    admin = people[ADMIN]
    with ReceivedInstances() as received:  # the whole study: images and the model
        dimse.get(pacs_node, study[0], None, received.add)
        path = received.finish()
        assert main(["scan", path, "--json"]) == 0
        listing = json.loads(capsys.readouterr().out)
        assert listing["summary"]["models"] == 1 and listing["summary"]["series"] == 1
        assert listing["models"][0]["kind"] == "STL"
        assert main(["import", path, "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
    assert out["case"] == case.pseudonym and not out["new_case"]
    number = out["mesh_version"]
    original = case.load_mesh_version(version)
    assert out["parts"] == {p["name"]: p["sha256"] for p in original.part_facts}
    assert case.mesh_sha256(number) == case.mesh_sha256(version)
    assert case.load_mesh_version(number).parts == original.parts
    record = [r for r in audit.read_records(admin.paths) if r["action"] == "mesh.import"][-1]
    assert record["facts"]["sha256"] == case.mesh_sha256(version)
    [link] = [x for x in trace.build(admin, case, version=number).links if x.name == "mesh"]
    assert link.status == trace.OK  # the imported version is checked against mesh.import


def test_model_without_its_case_makes_a_new_case(people, stored, pacs_node, study):
    case, version = stored
    admin = people[ADMIN]
    expected = case.mesh_sha256(version)
    intake.delete_case(admin, case.pseudonym)
    with ReceivedInstances() as received:
        dimse.get(pacs_node, study[0], None, received.add)
        got = model_import.import_path(admin, received.finish())
    assert got.new_case and got.case.pseudonym != case.pseudonym
    assert got.case.series_facts()["slices"] == 12
    assert got.case.mesh_sha256(got.mesh_version) == expected


def test_model_alone_without_its_case_is_one_line(people, stored, pacs_node, study, orthanc):
    case, _version = stored
    admin = people[ADMIN]
    intake.delete_case(admin, case.pseudonym)
    found = orthanc.post(
        "/tools/find",
        json.dumps({"Level": "Series", "Query": {"StudyInstanceUID": study[0]}}).encode(),
        "application/json",
    )
    [model_series] = [
        orthanc.get(f"/series/{s}")["MainDicomTags"]["SeriesInstanceUID"]
        for s in found
        if orthanc.get(f"/series/{s}")["MainDicomTags"].get("Modality") == "M3D"
    ]
    with ReceivedInstances() as received, pytest.raises(MedPrintError) as caught:
        dimse.get(pacs_node, study[0], model_series, received.add)
        model_import.import_path(admin, received.finish())
    assert "no case in the vault holds this model's study" in str(caught.value)
    assert admin.vault.list_cases() == []

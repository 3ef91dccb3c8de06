"""10,000 study-level C-FIND matches on a real Orthanc of their own (10,000 one-instance
studies of 10,000 patients, made from one template by changing fixed-width digits and
uploaded as one zip over REST; storage in /dev/shm when there is one): a page holds at most
the limit and says there are more, pages do not overlap, the last page ends the list, over
DIMSE and QIDO-RS, in bounded time and memory."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from app.cli import main
from app.imaging.pacs.nodes import PacsError
from app.imaging.pacs.query import Query
from app.workflow import pacs
from tests.conftest import REPO
from tests.pacs.conftest import node_for
from tests.pacs.orthanc import Orthanc

MANY = 10_000
ROOT = "1.2.826.0.1.3680043.10.1017.17"  # test UIDs; each ends in 1 + five digits


def _template() -> bytes:
    """One tiny CT instance whose patient and UIDs end in ``00000`` (the only such digits)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = f"{ROOT}.1.100000", f"{ROOT}.2.100000"
    ds.SOPInstanceUID, ds.FrameOfReferenceUID = f"{ROOT}.3.100000", f"{ROOT}.4.100000"
    ds.PatientName, ds.PatientID = "MANY^00000", "MANY-00000"
    ds.Modality, ds.StudyDate = "CT", "20200101"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.zeros((4, 4), "<i2").tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _studies_zip(count: int) -> bytes:
    template = _template()
    assert template.count(b"00000") == 7  # name, ID, 4 UIDs, the SOP instance in the meta
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(count):
            archive.writestr(f"{n}.dcm", template.replace(b"00000", b"%05d" % n))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory: pytest.TempPathFactory):
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path_factory.mktemp("many")
    server = Orthanc(folder).start()
    try:
        started = time.monotonic()
        server.post("/instances", _studies_zip(MANY), "application/zip")
        assert server.get("/statistics")["CountStudies"] == MANY  # type: ignore[index]
        print(f"\n{MANY} studies into Orthanc in {time.monotonic() - started:.1f} s")
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def _page(admin, method: str, offset: int):
    """A page of the 10,000 through the workflow, and the seconds it took."""
    started = time.monotonic()
    page = pacs.find(admin, "crowded", Query(patient_id="MANY-*"), offset=offset, method=method)
    return page, time.monotonic() - started


# The last page in a fresh process, whose peak resident memory (reset through
# /proc/self/clear_refs once warm) is not blurred by the garbage of a long test session.
_LAST_PAGE = """
import json, sys, time
from pathlib import Path
from app.imaging.pacs import dicomweb, dimse
from app.imaging.pacs.nodes import Node
from app.imaging.pacs.query import Query

def kib(field):
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
    return int(line.split()[1])

method, port, web, offset = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
find = dimse.find if method == "dimse" else dicomweb.find
node = Node("crowded", "ORTHANC", "127.0.0.1", port, dicomweb=web)
find(node, Query(patient_id="NOBODY"))
Path("/proc/self/clear_refs").write_text("5")
before, started = kib("VmRSS"), time.monotonic()
page = find(node, Query(patient_id="MANY-*"), offset=offset)
print(json.dumps({
    "ids": [s.patient_id for s in page.studies], "more": page.more,
    "series": [len(s.series) for s in page.studies], "seconds": time.monotonic() - started,
    "rise": (kib("VmHWM") - before) / 1024,
}))
"""


def _last_page(server: Orthanc, method: str, offset: int) -> dict:
    argv = [sys.executable, "-c", _LAST_PAGE, method, str(server.dicom_port)]
    argv += [f"{server.url}/dicom-web", str(offset)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize("method", ["dimse", "dicomweb"])
def test_ten_thousand_matches_are_limited_and_paged(admin, crowded, method):
    pacs.add_node(admin, node_for(crowded, "crowded"))
    first, first_s = _page(admin, method, 0)
    assert len(first.studies) == 100 and first.more
    second, _ = _page(admin, method, 100)
    assert len(second.studies) == 100 and second.more
    last = _last_page(crowded, method, MANY - 40)
    assert len(last["ids"]) == 40 and not last["more"] and set(last["series"]) == {1}
    ids = [s.patient_id for page in (first, second) for s in page.studies] + last["ids"]
    assert len(set(ids)) == 240  # the pages do not overlap
    assert all(len(s.series) == 1 for s in first.studies)
    print(f"{method}: first page {first_s:.1f} s; last page {last['seconds']:.1f} s, "
          f"resident memory +{last['rise']:.1f} MiB")  # fmt: skip
    assert first_s < 15 and last["seconds"] < 60
    assert last["rise"] < 3  # MiB; keeping the 9,960 matches before the page would add ~5


def test_the_cli_says_there_are_more_and_the_limit_is_bounded(admin, crowded, capsys):
    pacs.add_node(admin, node_for(crowded, "crowded"))
    assert main(["pacs", "find", "crowded", "--patient-id", "MANY-*", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert out.count(" study ") == 5
    assert "more than 5 matches: narrow the query, or see the next 5 with --offset 5" in out
    with pytest.raises(PacsError, match="limit must be 1 to 1000"):
        pacs.find(admin, "crowded", Query(), limit=100_000)

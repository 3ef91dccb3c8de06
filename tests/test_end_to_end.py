"""The whole pipeline through the CLI on a real series with planted identifiers: no marker may
appear in any byte written outside the vault, nor in the vault's raw files.

Markers go into every identifying attribute of the tilted GE head CT (names, IDs, dates,
institution, physicians, descriptions, UIDs), a private block and nested sequences. The
pipeline is ``medprint demo --input`` (import, bone, labelled mesh with QA, approval, slicing,
signed package, verify), then the package's G-code is uploaded to a real OctoPrint.

The series is cut to eight of its 28 slices, where its spacing changes (4.2 mm, a 1.1 mm gap,
then 7.4 mm), tilt and all: a ring of skull. The whole head made a 500k-triangle part, 840
layers and a 200 MB G-code (about 3 minutes of demo and 700 MB to scan); the identifiers, not
the size, are under test here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

pytest_plugins = ["tests.printing.peers.fixtures"]

TEXT_MARKERS = {
    "PatientName": "ZQXFAMILY^ZQXGIVEN",
    "PatientID": "ZQXPID4711",
    "OtherPatientIDs": "ZQXOTHERID",
    "PatientAddress": "ZQXSTREET 12",
    "InstitutionName": "ZQXINSTITUTE",
    "InstitutionAddress": "ZQXINSTADDR",
    "ReferringPhysicianName": "ZQXREFDOC",
    "PerformingPhysicianName": "ZQXPERFDOC",
    "OperatorsName": "ZQXOPERATOR",
    "StudyDescription": "ZQXSTUDYDESC",
    "SeriesDescription": "ZQXSERIESDESC",
    "AccessionNumber": "ZQXACC8812",
    "StudyID": "ZQXSTUDYID",
    "StationName": "ZQXSTATION",
}
DATE_MARKERS = {"PatientBirthDate": "19230817", "StudyDate": "19870523", "SeriesDate": "19870524"}
UID_ROOT = "1.2.826.0.1.3680043.10.54321"
RING_OF_SKULL = slice(10, 18)  # slices 11 to 18 of the head CT: across its change of spacing


def _plant(src: Path, out: Path) -> list[str]:
    """Copy the ring of the series with markers in every identifying place; returns every
    marker string."""
    out.mkdir()
    markers = [*TEXT_MARKERS.values(), *DATE_MARKERS.values()]
    study_uid, series_uid, frame_uid = (f"{UID_ROOT}.{n}" for n in (1, 2, 3))
    markers += [study_uid, series_uid, frame_uid]
    paths = sorted(p for p in src.iterdir() if p.suffix == ".dcm")[RING_OF_SKULL]
    for number, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        for keyword, value in {**TEXT_MARKERS, **DATE_MARKERS}.items():
            setattr(ds, keyword, value)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = (
            study_uid,
            series_uid,
            frame_uid,
        )
        sop = f"{UID_ROOT}.100.{number}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        markers.append(sop)
        block = ds.private_block(0x0011, "ZQXCREATOR", create=True)
        block.add_new(0x01, "LO", "ZQXPRIVATEVALUE")
        inner = Dataset()
        inner.ReferencedSOPInstanceUID = f"{UID_ROOT}.200"
        inner.PatientName = "ZQXNESTEDNAME"
        item = Dataset()
        item.RequestedProcedureDescription = "ZQXNESTEDPROC"
        item.ReferencedStudySequence = Sequence([inner])
        ds.RequestAttributesSequence = Sequence([item])
        ds.save_as(out / f"{number:03d}.dcm")
    markers += [
        "ZQXCREATOR",
        "ZQXPRIVATEVALUE",
        f"{UID_ROOT}.200",
        "ZQXNESTEDNAME",
        "ZQXNESTEDPROC",
    ]
    return markers


def _medprint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "app", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _files(*folders: Path) -> list[Path]:
    return [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]


@pytest.mark.slow
def test_pipeline_leaves_no_identifier_anywhere(
    dicom_dir, tmp_path, keystore_service, octoprint_server
):
    markers = _plant(dicom_dir / "ct-head-ge-gantry-tilt-28", tmp_path / "incoming")
    data, out, private_tmp = tmp_path / "data", tmp_path / "usb", tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "MEDPRINT_DATA_DIR": str(data), "TMPDIR": str(private_tmp)}
    demo = _medprint("demo", str(out), "--input", str(tmp_path / "incoming"), env=env)
    # The demo works in its own data folder under the output folder.
    env["MEDPRINT_DATA_DIR"] = str(out / "demo-data")
    packages = [str(p) for p in out.iterdir() if p.name != "demo-data"]
    verify = _medprint("verify", *packages, env=env)
    audit = _medprint("audit", "export", "--format", "json", env=env)
    assert "verified" in verify.stdout and '"case.import"' in audit.stdout

    from app.printing.backends.octoprint import OctoPrintClient

    # the package's G-code (the demo's vault under the same folder holds its encrypted copy)
    gcode = next(p for package in packages for p in Path(package).rglob("*.gcode"))
    client = OctoPrintClient(octoprint_server.url, octoprint_server.api_key, connect_printer=False)
    client.upload(gcode.name, gcode.read_bytes())
    uploaded = octoprint_server.basedir / "uploads" / gcode.name
    assert uploaded.read_bytes() == gcode.read_bytes()
    assert gcode.name.startswith("C-") and "ZQX" not in gcode.name

    written = _files(data, out, private_tmp, octoprint_server.basedir)
    assert any(p.suffix == ".enc" or "vault" in p.parts for p in written)
    outputs = {
        "demo stdout": demo.stdout + demo.stderr,
        "verify stdout": verify.stdout + verify.stderr,
        "audit export": audit.stdout,
    }
    for path in written:
        outputs[str(path)] = path.read_bytes().decode("latin-1")
    leaks = [
        (where, marker)
        for where, text in outputs.items()
        for marker in _found(markers, f"{where}\n{text}")
    ]
    assert leaks == [], f"identifiers found outside the vault: {leaks[:10]}"


def _found(markers: list[str], text: str) -> list[str]:
    """The markers in ``text``, in any mix of upper and lower case."""
    text = text.lower()
    return [marker for marker in markers if marker.lower() in text]

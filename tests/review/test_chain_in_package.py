"""Issue 19: the package and the review report carry the case's chain as far as it exists when
they are made; the package's chain is signed with it and must name its own mesh, approval and
G-code; nothing identifying (no PHI canary, no UID in the clear) goes with it."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from pathlib import Path

import pydicom
import pytest

from app.case import Case
from app.security.package import format as fmt
from app.workflow import package, review, review_report, trace
from tests.review.conftest import CANARY, SAMPLE, store_lineage
from tests.workflow.mesh_versions import store_gcode
from tests.workflow.test_package import _resign


def _pdf_text(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    text = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout
    return " ".join(text.split())


def _uids() -> list[str]:
    ds = pydicom.dcmread(sorted(SAMPLE.iterdir())[0], stop_before_pixels=True)
    return [str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)]


@pytest.fixture
def packaged(people, canary_case, tmp_path) -> tuple[Case, Path, int]:
    """The canary case's v2 approved, sliced (G-code g1) and packaged: case, folder, g1."""
    version = store_lineage(canary_case, "tess")
    review.approve(people["rafael"], canary_case, version, comment=f"ok {CANARY}")
    number = store_gcode(canary_case, canary_case.mesh_sha256(version))
    drive = tmp_path / "drive"
    drive.mkdir()
    return canary_case, package.build(people["tess"], canary_case, out_dir=drive).path, number


def _chain(folder: Path) -> dict:
    return json.loads((folder / fmt.CHAIN_FILE).read_bytes())


def test_the_package_carries_its_chain_signed_and_verified(people, packaged, tmp_path):
    case, folder, number = packaged
    manifest = json.loads((folder / fmt.MANIFEST).read_bytes())
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    data = (folder / fmt.CHAIN_FILE).read_bytes()
    assert listed[fmt.CHAIN_FILE] == hashlib.sha256(data).hexdigest()  # under the signature
    chain = _chain(folder)
    assert chain["format"] == trace.CHAIN_FORMAT and chain["case"] == case.pseudonym
    links = {link["name"]: link for link in chain["links"]}
    assert [link["name"] for link in chain["links"]][:6] == [
        "series", "segmentation", "mesh", "approval", "gcode", "print",
    ]  # fmt: skip
    assert links["series"]["status"] == "ok" and links["series"]["facts"]["files"] > 0
    assert links["mesh"]["sha256"] == manifest["mesh"]["sha256"] == case.mesh_sha256(2)
    assert links["mesh"]["facts"]["version"] == 2
    approval = json.loads((folder / fmt.APPROVAL_FILE).read_bytes())
    assert links["approval"]["status"] == "ok"
    assert links["approval"]["facts"]["decision_id"] == approval["id"]
    assert links["approval"]["facts"]["role"] == "reviewer"
    assert links["gcode"]["sha256"] == listed[f"gcode/{case.pseudonym}_g{number}.gcode"]
    assert links["segmentation"]["status"] == links["print"]["status"] == "pending"
    report = package.verify(people["tess"], folder)
    assert report.ok, report.message

    for file in folder.rglob("*"):  # no identity and no UID in the clear, anywhere
        if file.is_file():
            raw = file.read_bytes()
            assert CANARY.encode() not in raw, file.name
            assert all(uid.encode() not in raw for uid in _uids()), file.name
    text = _pdf_text((folder / fmt.REVIEW_REPORT_PDF).read_bytes(), tmp_path)
    assert "Traceability chain" in text and f"Case {case.pseudonym}, chain made" in text
    assert f"3. mesh: unverified | sha256 {case.mesh_sha256(2)[:12]}" in text
    assert f"4. approval: OK | sha256 {links['approval']['sha256'][:12]}" in text
    assert f"5. gcode: unverified | sha256 {links['gcode']['sha256'][:12]}" in text
    assert "1. series: OK" in text and "6. print: pending" in text
    assert CANARY not in text


def test_an_altered_chain_breaks_verify(people, packaged):
    _, folder, _ = packaged
    chain = _chain(folder)
    chain["links"][2]["sha256"] = "f" * 64  # the mesh link, same size
    (folder / fmt.CHAIN_FILE).write_bytes(fmt.canonical_json(chain))
    assert package.verify(people["tess"], folder).codes == [fmt.HASH_MISMATCH]


@pytest.mark.parametrize("link", ["mesh", "approval", "gcode"])
def test_a_signed_chain_of_another_mesh_approval_or_gcode_fails_verify(people, packaged, link):
    _, folder, _ = packaged
    chain = _chain(folder)
    changed = next(x for x in chain["links"] if x["name"] == link)
    if link == "approval":
        changed["facts"]["decision_id"] = "another-decision"
    else:
        changed["sha256"] = "0" * 64
    _resign(people["tess"], folder, lambda m: None, {fmt.CHAIN_FILE: fmt.canonical_json(chain)})
    report = package.verify(people["tess"], folder)
    assert report.codes == [fmt.CHAIN_MISMATCH]
    named = {"mesh": "mesh", "approval": "approval", "gcode": "G-code"}[link]
    assert f"names another {named} than the package carries" in report.message


def test_the_review_report_shows_the_chain_as_far_as_it_exists(people, canary_case, tmp_path):
    version = store_lineage(canary_case, "tess")
    text = _pdf_text(review_report.make(people["rafael"], canary_case, version), tmp_path)
    assert "1. series: OK" in text and "2. segmentation: pending" in text
    assert f"3. mesh: unverified | sha256 {canary_case.mesh_sha256(version)[:12]}" in text
    assert "4. approval: pending" in text and "5. gcode: pending" in text
    assert "version=2, author=tess, operation=smooth, parent=1, parts=['bone']" in text
    series = pydicom.dcmread(io.BytesIO(canary_case.load_original(canary_case.original_names()[0])))
    assert str(series.SeriesInstanceUID) not in text and CANARY not in text

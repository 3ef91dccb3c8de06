"""``medprint pacs`` end to end, with the PHI canary: the planted PatientName reaches the
query's screen output only, never the retrieve/store output, logs, audit log or any file of
the data folder outside the vault."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import main
from tests.pacs.conftest import CANARY, CANARY_ID, study_of
from tests.pacs.orthanc import OUR_AET, PACS_AET


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_pacs_cli_and_phi_canary(admin, orthanc, data_dir: Path, capsys):
    code, out = run(
        capsys, "pacs", "add", "pacs", "--aet", PACS_AET, "--host", "127.0.0.1",
        "--port", str(orthanc.dicom_port), "--our-aet", OUR_AET,
        "--our-port", str(orthanc.our_port), "--dicomweb", f"{orthanc.url}/dicom-web",
    )  # fmt: skip
    assert code == 0
    code, out = run(capsys, "pacs", "nodes", "--json")
    assert json.loads(out)[0]["aet"] == PACS_AET
    assert "C-ECHO ok" in run(capsys, "pacs", "echo", "pacs")[1]
    code, out = run(capsys, "pacs", "find", "pacs", "--patient-id", CANARY_ID, "--json")
    study = json.loads(out)["studies"][0]
    assert study["patient_name"] == CANARY  # identity on the screen, inside the app
    series = study["series"][0]["uid"]
    code, out = run(
        capsys, "pacs", "retrieve", "pacs", "--study", study["uid"], "--series", series, "--json"
    )
    retrieved = json.loads(out)
    assert code == 0 and retrieved["shape"][0] == 134 and CANARY not in out
    code, out = run(capsys, "pacs", "echo", "nowhere")
    assert code == 2 and "no PACS node named 'nowhere'" in out
    assert study_of(orthanc, CANARY_ID)[0] == study["uid"]
    marks = (CANARY.encode(), CANARY.split("^")[0].encode(), CANARY_ID.encode())
    for file in data_dir.rglob("*"):
        if file.is_file() and "vault" not in file.relative_to(data_dir).parts:
            data = file.read_bytes()
            assert not any(m in data for m in marks), file.relative_to(data_dir)
    vault_bytes = b"".join(f.read_bytes() for f in (data_dir / "vault").rglob("*") if f.is_file())
    assert not any(m in vault_bytes for m in marks)  # encrypted there too

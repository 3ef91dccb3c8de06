"""``medprint mesh`` headless: on an image file and on a case in the vault."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from app.imaging.volume import Volume
from app.security.strip import check_clean, read_mesh_file


def block_phantom() -> Volume:
    """A 96 x 48 x 32 mm block of 700 HU in air, on an oblique grid."""
    array = np.full((50, 80, 140), -1000, dtype=np.int16)
    array[9:41, 16:64, 22:118] = 700
    angle = np.deg2rad(10)
    direction = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    return Volume(
        array,
        origin=(-60.0, 10.0, 200.0),
        spacing=(1.0, 1.0, 1.0),
        direction=direction,
        modality="CT",
    )


@pytest.fixture
def phantom_nrrd(tmp_path):
    import SimpleITK as sitk

    path = tmp_path / "phantom.nrrd"
    sitk.WriteImage(block_phantom().to_sitk(), str(path))
    return path


def test_mesh_from_image_file_prints_qa_json(phantom_nrrd, tmp_path, capsys):
    out = tmp_path / "block.3mf"
    code = main(["mesh", "--volume", str(phantom_nrrd), "--threshold", "226", "--decimate", "0.5",
                 "--out", str(out), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report["qa"]
    assert report["qa"]["passed"] and report["qa"]["units"] == "mm"
    assert report["qa"]["volume_mm3"] == pytest.approx(96 * 48 * 32, rel=0.02)
    assert check_clean(out) == []
    vertices, _ = read_mesh_file(out)
    lo = block_phantom().index_to_lps(np.array([[22, 16, 9], [117, 63, 40]]) - 0.5)
    assert vertices[:, 2].min() == pytest.approx(lo[:, 2].min(), abs=0.3)


def test_mesh_errors_are_one_line(phantom_nrrd, tmp_path, capsys):
    assert main(["mesh", "--volume", str(phantom_nrrd), "--out", str(tmp_path / "x.stl")]) == 2
    assert "threshold" in capsys.readouterr().err
    code = main(["mesh", "--volume", str(phantom_nrrd), "--threshold", "226", "--label",
                 "--out", str(tmp_path / "x.stl")])  # fmt: skip
    assert code == 2 and "pseudonym" in capsys.readouterr().err


def test_mesh_of_a_case_segment_is_labelled_stored_and_clean(
    data_dir, keystore_service, tmp_path, capsys
):
    from app.case import Case, open_case
    from app.security.vault import Vault
    from app.tools.mesh.store import load_mesh_version, mesh_versions

    vault = Vault.init()[0]
    pseudonym = vault.create_case({"patient_name": "Doe^Jane", "patient_id": "MRN-77"})
    Case(vault, pseudonym).save_volume(block_phantom())
    assert main(["segment", pseudonym, "--preset", "bone"]) == 0
    capsys.readouterr()
    folder = tmp_path / "exports"
    folder.mkdir()
    code = main(["mesh", pseudonym, "--segment", "bone", "--label", "--out", str(folder)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "QA PASS" in printed and pseudonym in printed
    assert "Doe" not in printed and "MRN" not in printed
    [exported] = list(folder.iterdir())
    assert exported.name == f"{pseudonym}_bone.stl" and check_clean(exported) == []
    case = open_case(pseudonym, vault)
    assert mesh_versions(case) == [1]
    mesh, qa = load_mesh_version(case, 1)
    assert qa.passed and len(mesh.faces) > 1000
    info = case.load_json("mesh/v1.json")
    assert info["label"]["text"] == pseudonym

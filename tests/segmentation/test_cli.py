"""``medprint segment`` headless: on a case in the vault (saved back, audited) and on a file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from app.tools.segmentation import Segmentation

from .conftest import phantom


@pytest.fixture
def case_with_volume(data_dir, keystore_service):
    from app.case import Case
    from app.security.vault import Vault

    vault = Vault.init()[0]
    pseudonym = vault.create_case({"patient_name": "Test^Phantom", "patient_id": "P-0"})
    Case(vault, pseudonym).save_volume(phantom())
    return vault, pseudonym


def test_segment_case_saves_into_the_vault_and_prints_statistics(case_with_volume, capsys):
    from app.case import open_case
    from app.security import audit

    vault, pseudonym = case_with_volume
    code = main(["segment", pseudonym, "--preset", "bone", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    [stats] = report["segments"]
    assert stats["name"] == "bone" and stats["hu_min"] == 700 and stats["voxels"] > 1000
    case = open_case(pseudonym, vault)
    seg = Segmentation.from_bytes(case.load_bytes("segmentation.seg"))
    assert np.array_equal(seg.mask("bone"), phantom().array == 700)
    # a second run works on the saved segmentation and adds to it
    assert (
        main(
            [
                "segment",
                pseudonym,
                "--tool",
                "margin",
                "--param",
                "segment=bone",
                "--param",
                "margin_mm=2",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "bone" in table and "Test" not in table
    grown = Segmentation.from_bytes(case.load_bytes("segmentation.seg"))
    assert grown.voxel_count("bone") > seg.voxel_count("bone")
    actions = [r for r in audit.read_records() if r["action"] == "segmentation.apply"]
    assert [r["facts"]["tool"] for r in actions] == ["threshold", "margin"]
    assert all(r["case"] == pseudonym for r in actions)
    saves = [r for r in audit.read_records() if r["action"] == "segmentation.save"]
    assert len(saves) == 2 and saves[-1]["facts"]["segments"] == 1


def test_segment_errors_are_one_line(case_with_volume, capsys):
    _, pseudonym = case_with_volume
    assert main(["segment", pseudonym, "--tool", "margin", "--param", "segment=nothing"]) == 2
    err = capsys.readouterr().err
    assert "no segment named" in err and len(err.strip().splitlines()) == 1
    assert main(["segment", pseudonym, "--tool", "bone", "--param", "keep_largest=0"]) == 2
    assert "outside" in capsys.readouterr().err


def test_segment_volume_file_and_export(tmp_path, capsys):
    import SimpleITK as sitk

    volume = phantom()
    path = tmp_path / "phantom.nrrd"
    sitk.WriteImage(volume.to_sitk(), str(path))
    out = tmp_path / "bone.seg.nrrd"
    assert (
        main(
            [
                "segment",
                "--volume",
                str(path),
                "--tool",
                "bone",
                "--param",
                "remove_couch=false",
                "--export",
                str(out),
            ]
        )
        == 0
    )
    assert "bone" in capsys.readouterr().out
    assert out.read_bytes().startswith(b"NRRD0004")
    again = tmp_path / "again.nii.gz"
    assert (
        main(
            [
                "segment",
                "--volume",
                str(path),
                "--import",
                str(out),
                "--export",
                str(again),
                "--json",
            ]
        )
        == 0
    )
    [stats] = json.loads(capsys.readouterr().out)["segments"]
    assert stats["name"] == "bone" and stats["hu_min"] == 700
    assert main(["segment", "--list-tools"]) == 0
    listing = capsys.readouterr().out
    assert "hollow" in listing and "thickness_mm" in listing

"""``medprint segment`` headless: on a case in the vault (saved back, audited) and on a file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.case import Case
from app.cli import main
from app.security import audit
from app.settings import resolve_paths
from app.tools.segmentation import Segmentation, storage
from app.workflow import users
from app.workflow.actor import Actor

from .conftest import phantom


@pytest.fixture
def case_with_volume(data_dir, keystore_service):
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    pseudonym = actor.vault.create_case({"patient_name": "Test^Phantom", "patient_id": "P-0"})
    Case(actor.vault, pseudonym).save_volume(phantom())
    return actor, pseudonym


def saved(actor, pseudonym) -> Segmentation:
    with actor.case(pseudonym).read_segmentation() as src:
        return storage.read_segmentation(src)


def test_segment_case_saves_into_the_vault_and_prints_statistics(case_with_volume, capsys):
    actor, pseudonym = case_with_volume
    code = main(["segment", pseudonym, "--preset", "bone", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    report = json.loads(out)
    [stats] = report["segments"]
    assert stats["name"] == "bone" and stats["hu_min"] == 700 and stats["voxels"] > 1000
    assert report["saved"] is True
    seg = saved(actor, pseudonym)
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
    grown = saved(actor, pseudonym)
    assert grown.voxel_count("bone") > seg.voxel_count("bone")
    records = audit.read_records(actor.paths)
    actions = [r for r in records if r["action"] == "segmentation.apply"]
    assert [r["facts"]["tool"] for r in actions] == ["threshold", "margin"]
    assert all(r["case"] == pseudonym and r["user"] == actor.user for r in actions)
    saves = [r for r in records if r["action"] == "segmentation.save"]
    assert len(saves) == 2 and saves[-1]["facts"]["segments"] == 1
    assert [r["case"] for r in records if r["action"] == "case.open"] == [pseudonym] * 2


def test_segment_export_from_a_case_is_audited_and_no_save_stores_nothing(
    case_with_volume, tmp_path, capsys
):
    actor, pseudonym = case_with_volume
    out = tmp_path / "bone.nii.gz"
    args = ["segment", pseudonym, "--preset", "bone", "--no-save", "--export", str(out), "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["saved"] is False and report["export"]["format"] == "nifti"
    assert out.is_file() and not actor.case(pseudonym).has_segmentation()
    [export] = [r for r in audit.read_records(actor.paths) if r["action"] == "segmentation.export"]
    assert export["facts"]["sha256"] == report["export"]["sha256"]
    assert main(["segment", pseudonym, "--export", str(tmp_path / "x.dcm")]) == 2
    assert "original DICOM" in capsys.readouterr().err


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

"""Is this scan fit to print? Warnings at import, in scan/import/cases JSON and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app import cli
from app.imaging import suitability
from app.imaging.scan import scan
from app.imaging.volume import Volume
from app.workflow import intake
from app.workflow.actor import Actor
from tests.review.conftest import SAMPLE

TILTED = "ct-head-ge-gantry-tilt-28"
TCIA = "ct-abdomen-tcia-pancreas-134"


def _codes(warnings: list[dict]) -> set[str]:
    return {w["code"] for w in warnings}


def test_the_tilted_head_ct_warns_of_tilt_and_gaps(people, dicom_dir):
    case = intake.import_path(people["tess"], str(dicom_dir / TILTED))
    found = case.series_facts()["suitability"]
    assert {"tilt", "gaps"} <= _codes(found) and "motion" not in _codes(found)
    gaps = next(w for w in found if w["code"] == "gaps")
    assert "13 gap(s)" in gaps["reason"] and "up to 7.00 mm" in gaps["reason"]
    assert any("18.5" in w["reason"] for w in found if w["code"] == "tilt")


@pytest.mark.parametrize("which", ["sample", TCIA])
def test_thick_slices_warn_of_thickness_and_nothing_else(people, dicom_dir, which):
    folder = SAMPLE if which == "sample" else dicom_dir / TCIA
    case = intake.import_path(people["tess"], str(folder))
    found = case.series_facts()["suitability"]
    assert _codes(found) == {"thickness"}
    assert "slice thickness 3.00 mm" in found[0]["reason"]
    assert intake.case_suitability(people["rafael"], case.pseudonym) == found


def test_scan_json_import_json_and_cases_json_show_it(people, monkeypatch, capsys):
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["tess"]))
    assert cli.main(["scan", str(SAMPLE), "--json"]) == 0
    scanned = json.loads(capsys.readouterr().out)
    series = scanned["patients"][0]["studies"][0]["series"][0]
    assert _codes(series["suitability"]) == {"thickness"}
    assert cli.main(["import", str(SAMPLE), "--json"]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert _codes(imported["suitability"]) == {"thickness"}
    assert cli.main(["cases", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    row = next(r for r in rows if r["pseudonym"] == imported["case"])
    assert row["suitability"] == imported["suitability"]


def _ct(array: np.ndarray) -> Volume:
    return Volume(array.astype(np.int16), modality="CT")


def test_image_checks_find_metal_and_a_truncated_field_of_view():
    body = np.full((10, 64, 64), -1000)
    body[:, 10:54, 10:54] = 40
    assert suitability.image_warnings(_ct(body)) == []
    metal = body.copy()
    metal[4:6, 30:35, 30:35] = 3500
    assert _codes(suitability.image_warnings(_ct(metal))) == {"metal"}
    cut = body.copy()
    cut[:, 10:54, 0:54] = 40  # the body runs off the left edge
    found = suitability.image_warnings(_ct(cut))
    assert _codes(found) == {"truncated"} and "100%" in found[0]["reason"]


def _load(folder) -> Volume:
    from app.imaging.load import load_series

    return load_series(scan([str(folder)]).series[0])


@pytest.mark.parametrize("which", [TCIA, TILTED, "mr-brain-t1-sagittal-philips-170"])
def test_real_series_show_no_motion(dicom_dir, which):
    assert suitability.motion_warnings(_load(dicom_dir / which)) == []


@pytest.mark.parametrize(("shift_mm", "axis"), [(5.0, 2), (3.0, 1)])
def test_a_slab_shifted_by_motion_is_named(shift_mm, axis):
    volume = _load(SAMPLE)
    assert suitability.motion_warnings(volume) == []
    pixels = round(shift_mm / volume.spacing[0])
    volume.array[30:] = np.roll(volume.array[30:], pixels, axis=axis)  # moved before slice 31
    found = suitability.image_warnings(volume)
    (motion,) = found  # the image checks: no metal, no truncation, one motion hint
    assert motion["reason"].startswith("slices 30 and 31 are displaced against each other")
    assert f"by about {pixels * volume.spacing[0]:.0f} mm" in motion["reason"]


def test_sharp_kernels_warn_and_smooth_ones_do_not(tmp_path):
    import pydicom

    path = sorted(SAMPLE.iterdir())[0]
    for kernel, warns in (("B70f", True), ("BONE", True), ("B30f", False), ("STD+", False)):
        ds = pydicom.dcmread(path)
        ds.ConvolutionKernel = kernel
        ds.save_as(tmp_path / "k.dcm")
        found = suitability.header_warnings((tmp_path / "k.dcm").read_bytes())
        assert ("kernel" in _codes(found)) is warns, kernel


def test_scan_warnings_need_no_image():
    series = scan([str(SAMPLE)]).series[0]
    assert _codes(suitability.series_warnings(series)) == {"thickness"}

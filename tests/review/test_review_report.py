"""The review report PDF: renders, names the case by pseudonym only, carries the signed
decision exactly, and draws the mesh's true cross-section over the image."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from app.errors import AccessDenied
from app.imaging.volume import Volume
from app.tools.mesh.review_report import (
    SIGNATURE_FIELDS,
    contour_segments,
    key_slices,
    plane_name,
    slice_normal,
)
from app.workflow import mesh, review, review_report
from tests.review.conftest import CANARY, store_lineage
from tests.workflow.test_mesh import bone_case  # noqa: F401 (fixture)


def _pdf_text(path: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True
    ).stdout


def _pages(path: Path, tmp_path: Path) -> list[Path]:
    prefix = tmp_path / "page"
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(path), str(prefix)], check=True)
    return sorted(tmp_path.glob("page-*.png"))


def test_report_renders_names_the_pseudonym_and_matches_the_signature(
    people, canary_case, tmp_path
):
    version = store_lineage(canary_case, "tess")
    decision = review.approve(people["rafael"], canary_case, version, comment=f"ok {CANARY}")
    out = tmp_path / "report.pdf"
    review_report.write(people["rafael"], canary_case, version, out)
    pages = _pages(out, tmp_path)
    assert len(pages) == 6
    for page in pages:
        pixels = np.asarray(Image.open(page).convert("L"), dtype=float)
        assert pixels.std() > 5, f"{page.name} is blank"
    text = _pdf_text(out)
    assert canary_case.pseudonym in text
    assert CANARY not in text and CANARY not in out.read_bytes().decode("latin-1")
    for label, key in SIGNATURE_FIELDS:
        assert f"{label}: {decision[key]}" in text
    assert decision["mesh_sha256"] == canary_case.mesh_sha256(version)
    assert "v1: build by tess at 2026-01-02T03:04:05Z" in text
    assert "v2: smooth by tess at 2026-01-02T04:05:06Z" in text
    assert "iterations=12" in text
    assert "Slice thickness (mm): 3.0" in text and "Spacing (mm): 2.15 x 2.15 x 6" in text
    assert "Reconstruction kernel: B" in text and "Gantry tilt (deg): 0.0" in text
    assert "- slice thickness 3.00 mm, column spacing 2.15 mm" in text  # fit to print?


def test_a_report_file_named_after_the_patient_is_refused(people, canary_case, tmp_path):
    version = store_lineage(canary_case, "tess")
    with pytest.raises(AccessDenied):
        review_report.write(people["rafael"], canary_case, version, tmp_path / f"{CANARY}.pdf")
    assert not (tmp_path / f"{CANARY}.pdf").exists()


def test_report_without_a_decision_says_so(people, sphere_case, tmp_path):
    from tests.workflow.mesh_versions import store_version

    version = store_version(sphere_case, "tess")
    data = review_report.make(people["rafael"], sphere_case, version)
    out = tmp_path / "r.pdf"
    out.write_bytes(data)
    text = _pdf_text(out)
    assert "Not yet decided" in text and sphere_case.pseudonym in text
    assert "DOE" not in text


def test_a_self_approved_report_says_so(admin, sphere_case, tmp_path):
    """Alone in the vault, the administrator's own mesh is approved only as an override, and
    the review report marks it self-approved."""
    from tests.workflow.mesh_versions import store_version

    version = store_version(sphere_case, admin.user)
    review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    out = tmp_path / "self.pdf"
    review_report.write(admin, sphere_case, version, out)
    text = _pdf_text(out)
    assert f"Meaning: {review.SELF_APPROVED}" in text and review.SELF_APPROVED == "self-approved"


def test_cli_writes_the_report(people, canary_case, tmp_path, capsys, monkeypatch):
    from app import cli
    from app.workflow.actor import Actor

    version = store_lineage(canary_case, "tess")
    review.approve(people["rafael"], canary_case, version, comment="fine")
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["rafael"]))
    out = tmp_path / "cli.pdf"
    argv = ["review", "report", canary_case.pseudonym, "--version", str(version), "--out", str(out)]
    assert cli.main(argv) == 0
    assert out.read_bytes().startswith(b"%PDF")
    assert str(out) in capsys.readouterr().out


def _oblique_mirrored_grid() -> Volume:
    angle = np.radians(25)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]]
    )
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    direction = rot @ tilt @ np.diag([1.0, -1.0, 1.0])  # mirrored: a left-handed grid
    return Volume(
        np.zeros((40, 60, 60), np.int16),
        origin=(-20.0, 25.0, -18.0),
        spacing=(0.7, 0.8, 1.0),
        direction=direction,
    )


@pytest.mark.parametrize("axis", [2, 1, 0])
@pytest.mark.parametrize("k", [12.0, 18.5, 20.0, 27.0])
def test_contour_equals_the_analytic_circle(k, axis):
    volume = _oblique_mirrored_grid()
    centre = volume.index_to_lps(np.array([30.0, 30.0, 20.0]))
    k = k + (30.0 - 20.0) * (axis != 2)  # the same offsets from the centre on every axis
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=15.0)
    sphere.apply_translation(centre)
    segs = contour_segments(sphere, volume, k, axis)
    assert len(segs) > 100
    column_row = segs.reshape(-1, 2)
    ijk = np.full((len(column_row), 3), k)
    row, column = {2: (1, 0), 1: (2, 0), 0: (2, 1)}[axis]
    ijk[:, column], ijk[:, row] = column_row[:, 0], column_row[:, 1]
    lps = volume.index_to_lps(ijk)
    corner = np.zeros(3)
    corner[axis] = k
    plane = volume.index_to_lps(corner)
    normal = slice_normal(volume, axis)
    offset = float((centre - plane) @ normal)
    assert np.allclose((lps - plane) @ normal, 0, atol=1e-6)  # on the slice plane
    expected = np.sqrt(15.0**2 - offset**2)
    foot = centre - offset * normal
    radii = np.linalg.norm(lps - foot, axis=1)
    assert np.abs(radii - expected).max() < 0.1


def test_key_slices_lie_within_the_mesh():
    volume = _oblique_mirrored_grid()
    centre = volume.index_to_lps(np.array([30.0, 30.0, 20.0]))
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    sphere.apply_translation(centre)
    picks = key_slices(sphere, volume)
    assert len(picks) == 3 and all(11 <= k <= 29 for k in picks)
    assert all(len(contour_segments(sphere, volume, float(k))) for k in picks)


def test_plane_names_follow_the_grid():
    volume = _oblique_mirrored_grid()
    assert [plane_name(volume, axis) for axis in (2, 1, 0)] == ["axial", "coronal", "sagittal"]


def _p95(text: str) -> float:
    return float(re.search(r"95th percentile ([0-9.]+) mm", " ".join(text.split())).group(1))


def test_the_deviation_histogram_and_three_planes_of_a_built_mesh(
    people,
    bone_case,  # noqa: F811 (the imported fixture)
    tmp_path,
):
    made = mesh.build(people["tess"], bone_case, settings="review")
    deviation = made.qa.deviation
    assert sum(deviation["histogram"]["counts"]) == deviation["samples"]
    out = tmp_path / "built.pdf"
    out.write_bytes(review_report.make(people["rafael"], bone_case, made.number))
    text = " ".join(_pdf_text(out).split())
    assert _p95(text) == pytest.approx(deviation["p95_mm"], abs=5e-4)
    assert "tolerance 0.5 mm" in text and f"{deviation['samples']} points" in text
    for plane in ("axial", "coronal", "sagittal"):
        assert f"{plane} " in text and " of 48" in text

    # a version whose QA kept no histogram: measured again against the saved segmentation
    stored = bone_case.load_mesh_version(made.number)
    qa = dict(stored.qa) | {"deviation": {k: v for k, v in deviation.items() if k != "histogram"}}
    info = bone_case.mesh_info(made.number)
    older = bone_case.save_mesh_version(dict(stored.parts), qa=qa, info=info)
    out.write_bytes(review_report.make(people["rafael"], bone_case, older))
    text = _pdf_text(out)
    assert "20000 points" in text and _p95(text) == pytest.approx(deviation["p95_mm"], abs=0.05)

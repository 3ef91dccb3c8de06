"""QA report: numbers behind every check, JSON round trip, failures where they belong."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from app.tools.mesh import edit
from app.tools.mesh.core import make_mesh
from app.tools.mesh.label import add_label, label_region
from app.tools.mesh.qa import QAReport, qa_report, wall_thickness


def cube(size=40.0):
    b = trimesh.creation.box((size, size, size))
    return make_mesh(b.vertices, b.faces)


def test_qa_passes_a_good_mesh_and_round_trips_json():
    mesh = cube()
    report = qa_report(mesh, reference=cube(), build_volume_mm=(250, 210, 210), wall_samples=200)
    assert report.passed, report.lines()
    assert report.volume_mm3 == pytest.approx(64000)
    assert report.size_mm == pytest.approx([40, 40, 40])
    assert report.wall["median_mm"] == pytest.approx(40.0, abs=1e-3)
    assert report.deviation["max_mm"] < 1e-6
    assert "LPS" in report.orientation and report.units == "mm"
    again = QAReport.from_dict(json.loads(report.to_json()))
    assert again.to_dict() == report.to_dict()


def test_qa_fails_with_numbers():
    mesh = cube()
    open_mesh = make_mesh(mesh.vertices, mesh.faces[1:])
    report = qa_report(open_mesh, build_volume_mm=(30, 30, 30), wall_samples=50)
    assert not report.passed
    assert {"watertight", "fits build volume", "minimum wall thickness"} <= set(report.failed)
    assert "1 open" not in report.check("watertight").detail  # counts edges, not faces
    assert report.check("watertight").detail.startswith("3 open edges")


def test_qa_thin_wall_and_deviation_fail():
    outer = trimesh.creation.icosphere(4, radius=10.0)
    sphere = make_mesh(outer.vertices, outer.faces)
    thin = edit.hollow(sphere, 0.6)
    report = qa_report(thin, wall_samples=300, min_wall_mm=1.0)
    assert not report.check("minimum wall thickness").passed
    assert report.wall["median_mm"] == pytest.approx(0.6, abs=0.15)
    moved = make_mesh(sphere.vertices * 1.08, sphere.faces)
    report = qa_report(moved, reference=sphere, wall_samples=50, tolerance_mm=0.5)
    check = report.check("deviation from segmentation")
    assert not check.passed and check.value == pytest.approx(0.8, abs=0.05)


def test_qa_on_real_bone(lumbar_build):
    report = qa_report(lumbar_build.mesh, reference=lumbar_build.reference, wall_samples=300)
    assert report.check("watertight").passed and report.check("manifold").passed
    assert report.check("self-intersections").passed
    assert report.deviation["mean_mm"] < 0.2
    assert report.check("deviation from segmentation").passed
    assert np.isfinite(report.wall["min_mm"])


def test_qa_reuses_the_repair_topology_and_crossings_for_one_unlabelled_part(monkeypatch):
    from app.tools.mesh import qa
    from app.tools.mesh.pipeline import build_parts, settings_for

    from .conftest import phantom_volume

    volume = phantom_volume((24, 24, 24), (1.0, 1.0, 1.0), np.eye(3), (0.0, 0.0, 0.0))
    k, j, i = np.ogrid[:24, :24, :24]
    ball = (k - 11.5) ** 2 + (j - 11.5) ** 2 + (i - 11.5) ** 2 < 8.0**2
    searched = []
    real = qa.count_self_intersections
    monkeypatch.setattr(qa, "count_self_intersections", lambda m: searched.append(1) or real(m))
    checked = []
    real_topology = qa.topology
    monkeypatch.setattr(qa, "topology", lambda m: checked.append(1) or real_topology(m))
    settings = settings_for("review", volume)
    one = build_parts({"ball": ball}, volume, settings)
    assert searched == [] and checked == []
    assert one.qa.self_intersections == 0 and one.qa.passed
    assert one.qa.check("watertight").passed and one.qa.check("manifold").passed
    assert one.qa.components == 1
    assert one.qa.volume_mm3 == pytest.approx(4 / 3 * np.pi * 8.0**3, rel=0.05)
    shifted = np.roll(ball, 4, axis=2)  # overlaps the ball: the two parts cross
    two = build_parts({"a": ball, "b": shifted}, volume, settings)
    assert searched == [1] and checked == [1] and two.qa.self_intersections > 0


def test_walls_thicker_than_the_probe_pass_with_a_clear_detail():
    ball = trimesh.creation.icosphere(4, radius=40.0)
    report = qa_report(make_mesh(ball.vertices, ball.faces))
    wall = report.check("minimum wall thickness")
    assert wall.passed and "every wall thicker than the 50 mm probed" in wall.detail


def test_the_label_letters_are_left_out_of_the_wall_thickness():
    slab = trimesh.creation.box((120, 60, 30))
    labelled, info = add_label(make_mesh(slab.vertices, slab.faces), "C-7K3M-Q9", (0, 0, 15),
                               (0, 0, 1))  # fmt: skip
    inside = label_region(info)
    everywhere = wall_thickness(labelled, 4000)
    anatomy = wall_thickness(labelled, 4000, exclude=inside)
    assert len(anatomy) < len(everywhere)
    assert np.min(anatomy) > np.min(everywhere)

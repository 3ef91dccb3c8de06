"""The embossed/engraved label: only a pseudonym, watertight, and the mesh carries that text."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.security.vault import new_pseudonym
from app.tools.mesh.core import make_mesh, signed_volume, topology
from app.tools.mesh.label import (
    MIN_STROKE_MM,
    add_label,
    label_match,
    label_region,
    stroke_width,
    text_outline,
)


def slab():
    b = trimesh.creation.box((120, 60, 30))
    return make_mesh(b.vertices, b.faces)


def ball(radius=90.0):
    s = trimesh.creation.icosphere(5, radius=radius)
    return make_mesh(s.vertices, s.faces)


# a random one, and ones whose Y or K strokes touch at a point (they once pinched the letters)
@pytest.mark.parametrize("pseudonym", [new_pseudonym(), "C-AKYS-8F", "C-DSYY-YV", "C-KY5E-KA"])
@pytest.mark.parametrize("mode", ["emboss", "engrave"])
def test_label_is_the_pseudonym_and_stays_watertight(mode, pseudonym):
    mesh = slab()
    labelled, info = add_label(mesh, pseudonym, (0, 0, 15), (0, 0, 1), mode=mode)
    assert info.text == pseudonym
    assert topology(labelled).closed_manifold
    change = signed_volume(labelled) - signed_volume(mesh)
    assert (change > 0) if mode == "emboss" else (change < 0)
    # the letters cut out of the mesh are the pseudonym's, not any other text's
    assert label_match(labelled, info) > 0.98
    other = pseudonym[:-1] + ("A" if pseudonym[-1] != "A" else "B")
    assert label_match(labelled, info, other) < label_match(labelled, info) - 0.02
    assert label_match(labelled, info, "C-0000-00") < 0.9


def test_label_defaults_and_region():
    mesh = ball()
    labelled, info = add_label(mesh, "C-7K3M-Q9", (0, -90, 0), (0, -1, 0))
    assert info.height_mm == 7.5 and info.depth_mm == 3.0
    assert info.stroke_mm >= MIN_STROKE_MM
    assert topology(labelled).closed_manifold
    inside = label_region(info)
    changed = labelled.vertices[inside(labelled.vertices)]
    assert len(changed) > 100  # the label geometry is there
    assert not inside(np.array([[0.0, 90.0, 0.0]]))[0]
    # the top of the letters stands depth_mm proud of the surface under them
    local = (changed - np.asarray(info.point)) @ info.rotation
    assert local[:, 2].max() == pytest.approx(info.surface_high_mm + 3.0, abs=1e-3)


def test_label_refuses_patient_text_and_bad_sites():
    with pytest.raises(MeshError, match="pseudonym"):
        add_label(slab(), "DOE^JOHN", (0, 0, 15), (0, 0, 1))
    with pytest.raises(MeshError, match="pseudonym"):
        add_label(slab(), "1985-03-02", (0, 0, 15), (0, 0, 1))
    with pytest.raises(MeshError, match="fit"):
        add_label(slab(), "C-7K3M-Q9", (0, 0, 200), (0, 0, 1))  # nowhere near the surface


def test_small_text_keeps_minimum_stroke():
    assert stroke_width("C-7K3M-Q9", 3.0) >= MIN_STROKE_MM - 0.05
    x0, y0, x1, y1 = text_outline("C-7K3M-Q9", 7.5).bounds()
    assert 7.5 <= y1 - y0 <= 10.0 and x1 - x0 > 40.0


def test_automatic_label_never_leaves_crossing_triangles():
    """The sample's printed block with the pseudonym C-73ME-GR once came out of the union with
    crossing triangles (QA failed the demo); the label site is now checked as QA checks it."""
    from app.imaging.load import load_series
    from app.imaging.scan import scan
    from app.tools.mesh.pipeline import build_parts, settings_for
    from app.tools.segmentation import Segmentation, get_tool
    from app.tools.segmentation.fit import printable_piece
    from app.workflow.intake import sample_folder

    volume = load_series(scan([str(sample_folder())]).series[0])
    seg = Segmentation(volume)
    tool = get_tool("bone")
    tool.apply(seg, volume, tool.default_params())
    piece, _ = printable_piece(seg.mask("bone"), volume.spacing, (220, 220, 250), cut_height_mm=70)
    built = build_parts(
        {"bone-chest": piece}, volume, settings_for("print", volume), pseudonym="C-73ME-GR"
    )
    qa = built.qa.to_dict()
    assert qa["passed"], [c for c in qa["checks"] if c.get("status") == "fail"]

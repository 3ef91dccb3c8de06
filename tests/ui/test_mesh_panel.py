"""The Mesh panel: a segment of the real CT's grid → mesh in the worker → QA report shown
check by check → the mesh in the 3D view (with the deviation colour map)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtWidgets


@pytest.fixture
def panels(styled_app, qtbot, ct_volume):
    from app.ui.mesh_panel import MeshPanel
    from app.ui.segment_panel import SegmentPanel
    from app.viewers.state import ViewerState
    from app.viewers.view3d import View3D

    host = QtWidgets.QWidget()
    state = ViewerState(host)
    view3d = View3D(host)
    segments = SegmentPanel(state, host, view3d=view3d)
    mesh = MeshPanel(segments, view3d, host)
    layout = QtWidgets.QHBoxLayout(host)
    for widget in (view3d, segments, mesh):
        layout.addWidget(widget)
    host.resize(1300, 700)
    host.show()
    qtbot.addWidget(host)
    state.set_volume(ct_volume, "bone")
    view3d.set_volume(ct_volume, "off")
    segments.attach(ct_volume)
    mesh.set_case(None, (220.0, 220.0, 250.0))
    yield segments, mesh, view3d
    mesh.worker.cancel()
    mesh.worker.wait(30.0)
    view3d.close()
    host.close()


def _ball(volume, radius_mm: float) -> np.ndarray:
    """A sphere mask around the volume centre, on its grid."""
    nk, nj, ni = volume.shape
    si, sj, sk = volume.spacing
    k, j, i = np.ogrid[:nk, :nj, :ni]
    ck, cj, ci = (nk - 1) / 2, (nj - 1) / 2, (ni - 1) / 2
    return ((i - ci) * si) ** 2 + ((j - cj) * sj) ** 2 + ((k - ck) * sk) ** 2 <= radius_mm**2


def test_build_a_mesh_from_a_segment_and_show_its_qa(panels, qtbot, ct_volume, artifacts):
    segments, mesh_panel, view3d = panels
    seg = segments.seg
    ball = seg.add_segment("ball")
    seg.modify(ball, _ball(ct_volume, 30.0), "set")
    qtbot.waitUntil(lambda: mesh_panel.segment.currentText() == "ball")
    assert mesh_panel.build_button.isEnabled()
    mesh_panel.deviation.setChecked(True)
    with qtbot.waitSignal(mesh_panel.meshBuilt, timeout=120_000) as built:
        mesh_panel.build()
    result = built.args[0]
    assert result.version is None and mesh_panel.current_part == "ball"  # no case: not stored
    assert result.info["settings"]["label"] is False  # no case, no pseudonym to emboss
    assert (
        result.qa.check("watertight").passed
        if any(c.name == "watertight" for c in result.qa.checks)
        else result.mesh.is_watertight
    )
    sphere_ml = 4 / 3 * np.pi * 30.0**3 / 1000
    assert abs(result.qa.volume_mm3 / 1000 - sphere_ml) / sphere_ml < 0.05
    assert mesh_panel.checks.rowCount() == len(result.qa.checks) > 3
    shown = {
        mesh_panel.checks.item(r, 0).text(): mesh_panel.checks.item(r, 1).text()
        for r in range(mesh_panel.checks.rowCount())
    }
    assert all(v in ("pass", "FAIL") for v in shown.values())
    assert shown["watertight"] == "pass" and shown["manifold"] == "pass"  # a ball is closed
    assert mesh_panel.verdict.text().startswith("✔" if result.qa.passed else "✘")
    assert "mesh" in view3d.mesh_names()
    assert result.deviation is not None and len(result.deviation) == len(result.mesh.vertices)
    assert float(np.mean(result.deviation)) < 0.5
    image = view3d.image()
    assert image.std() > 20  # the camera is on the mesh, not a dot in the distance
    view3d.screenshot(artifacts / "mesh-panel-ball-deviation.png")
    mesh_panel.grab().save(str(artifacts / "mesh-panel.png"))


@pytest.mark.slow
@pytest.mark.usefixtures("keystore_service")
def test_slice_the_stored_version_and_preview_a_layer(
    panels, qtbot, ct_volume, data_dir, artifacts
):
    from app.case import Case
    from app.settings import resolve_paths
    from app.ui.print_panel import PrintPanel
    from app.workflow import users
    from app.workflow.actor import Actor

    segments, mesh_panel, _view3d = panels
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({}))
    case.save_volume(ct_volume)
    mesh_panel.set_actor(actor)
    mesh_panel.set_case(case, (220.0, 220.0, 250.0))
    mesh_panel.preset.setCurrentText("review")  # a 24 mm ball has no room for the label
    ball = segments.seg.add_segment("ball")
    segments.seg.modify(ball, _ball(ct_volume, 12.0), "set")
    qtbot.waitUntil(lambda: mesh_panel.segment.currentText() == "ball")
    printer = PrintPanel(mesh_panel)
    printer.resize(420, 700)
    printer.show()
    qtbot.addWidget(printer)
    printer.load_profiles(resolve_paths(), "generic-marlin-220")
    printer.set_actor(actor)
    printer.set_case(case)
    assert printer.printer.count() >= 1 and printer.material.count() >= 1
    assert not printer.slice_button.isEnabled()  # no mesh version yet
    with qtbot.waitSignal(mesh_panel.meshBuilt, timeout=120_000) as built:
        mesh_panel.build()
    assert built.args[0].version == 1 and printer.slice_button.isEnabled()
    assert printer.version.currentData() == 1
    printer.layer_height.setValue(0.3)
    with qtbot.waitSignal(printer.sliced, timeout=300_000) as sliced:
        printer.slice()
    assert sliced.args[0].gcode.provenance["mesh_sha256"] == case.mesh_sha256(1)
    layers = printer.result.analysis.layer_count
    assert abs(layers - round(24.0 / 0.3)) <= 2  # a 24 mm ball at 0.3 mm layers
    assert printer.layer.maximum() == layers - 1
    printer.layer.setValue(layers // 2)
    assert (
        printer.toolpaths.segments and sum(len(v) for v in printer.toolpaths.segments.values()) > 10
    )
    printer.show_3d.setChecked(True)  # the layer's toolpaths over the mesh, in LPS
    actor_3d = mesh_panel.view3d._meshes["toolpaths"]
    lines = np.array(actor_3d.GetBounds()).reshape(3, 2)
    ball = np.array(mesh_panel.view3d._meshes["mesh"].GetBounds()).reshape(3, 2)
    assert (lines[:, 0] >= ball[:, 0] - 1.0).all() and (lines[:, 1] <= ball[:, 1] + 1.0).all()
    assert lines[2, 1] - lines[2, 0] < 0.5  # one layer: flat
    printer.show_3d.setChecked(False)
    assert "toolpaths" not in mesh_panel.view3d._meshes
    printer.grab().save(str(artifacts / "print-panel.png"))

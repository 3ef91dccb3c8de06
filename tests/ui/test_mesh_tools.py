"""The Mesh panel's Edit and Export sections on a phantom case in a private vault: each edit,
clicked in the panel, runs in the worker as the window's actor and stores a new version with a
fresh QA report (audited); the export is audited too."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

# The block: 96 x 48 x 32 mm of 700 HU in air, 1 mm voxels, voxel centres at origin + index.
ORIGIN = (-40.0, -20.0, 100.0)
LO_IJK, HI_IJK = np.array([5, 5, 5]), np.array([101, 53, 37])  # i, j, k (exclusive end)


def block_volume():
    from app.imaging.volume import Volume

    array = np.full((42, 58, 106), -1000, dtype=np.int16)
    (i0, j0, k0), (i1, j1, k1) = LO_IJK, HI_IJK
    array[k0:k1, j0:j1, i0:i1] = 700
    return Volume(array, origin=ORIGIN, spacing=(1.0, 1.0, 1.0), modality="CT")


@pytest.fixture
def panel(styled_app, qtbot, data_dir, keystore_service):
    from app.case import Case
    from app.settings import resolve_paths
    from app.ui.mesh_panel import MeshPanel
    from app.ui.segment_panel import SegmentPanel
    from app.viewers.state import ViewerState
    from app.viewers.view3d import View3D
    from app.workflow import users
    from app.workflow.actor import Actor

    volume = block_volume()
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    pseudonym = actor.vault.create_case({"patient_name": "Doe^Jane", "patient_id": "MRN-77"})
    case = Case(actor.vault, pseudonym)
    host = QtWidgets.QWidget()
    state = ViewerState(host)
    view3d = View3D(host)
    segments = SegmentPanel(state, host, view3d=view3d)
    mesh = MeshPanel(segments, view3d, host)
    layout = QtWidgets.QHBoxLayout(host)
    layout.addWidget(view3d, 1)
    layout.addWidget(mesh)
    host.resize(1200, 980)
    host.show()
    qtbot.addWidget(host)
    state.set_volume(volume, "bone")
    view3d.set_volume(volume, "off")
    segments.attach(volume)
    mesh.set_actor(actor)
    mesh.set_case(case, (220.0, 220.0, 250.0))
    mesh.preset.setCurrentText("review")
    block = segments.seg.add_segment("block")
    segments.seg.modify(block, volume.array >= 200, "set")
    qtbot.waitUntil(lambda: mesh.segment.currentText() == "block")
    mesh.smoothing.setValue(0.0)
    with qtbot.waitSignal(mesh.meshBuilt, timeout=60_000):
        mesh.build()
    yield mesh, state, case
    mesh.worker.cancel()
    mesh.worker.wait(30.0)
    view3d.close()
    host.close()


def _click(qtbot, mesh, button):
    """Click an edit button; the new MeshVersion (fails with the panel's message on an error)."""
    results, errors = [], []
    mesh.meshEdited.connect(results.append)
    mesh.worker.error.connect(errors.append)
    try:
        qtbot.mouseClick(button, QtCore.Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(results or errors), timeout=60_000)
    finally:
        mesh.meshEdited.disconnect(results.append)
        mesh.worker.error.disconnect(errors.append)
    assert not errors, errors[0]
    return results[0]


def records(action: str) -> list[dict]:
    from app.security import audit
    from app.settings import resolve_paths

    return [r for r in audit.read_records(resolve_paths()) if r["action"] == action]


def test_cut_hollow_and_label_through_the_panel(panel, qtbot, artifacts):
    from app.tools.mesh.edit import measure

    mesh, state, case = panel
    tools = mesh.tools
    assert case.mesh_versions() == [1] and mesh.current_version == 1
    assert mesh.current_part == "v1" and mesh.current_part_name == "block"
    whole = measure(mesh.current_mesh)
    assert whole.volume_mm3 == pytest.approx(96 * 48 * 32, rel=0.03)
    assert (
        "volume" in tools.measurements.text() and "96.0 × 48.0 × 32.0" in tools.measurements.text()
    )
    [built] = records("mesh.build")
    assert built["facts"]["version"] == 1 and built["facts"]["settings"] == "review"

    # cut at z = 125 mm through the crosshair, keep below: the bounds end at the plane
    state.cursor = np.array([0.0, 0.0, 125.0])
    tools.cut_axis.setCurrentText("S-I (z)")
    tools.cut_keep.setCurrentText("back")
    cut = _click(qtbot, mesh, tools.cut_button)
    assert cut.number == 2 and mesh.current_version == 2
    assert cut.mesh.bounds[1][2] == pytest.approx(125.0, abs=1e-3)
    assert cut.mesh.bounds[0][2] == pytest.approx(whole.bbox_min[2], abs=1e-3)
    assert cut.qa.check("watertight").passed
    assert cut.info["operation"] == "cut" and cut.info["parent_version"] == 1

    # hollow the cut block: less material, a drain hole, still closed
    cut_volume = measure(cut.mesh).volume_mm3
    tools.wall.setValue(2.0)
    hollowed = _click(qtbot, mesh, tools.hollow_button)
    assert hollowed.number == 3 and hollowed.info["parent_version"] == 2
    assert measure(hollowed.mesh).volume_mm3 < 0.7 * cut_volume
    assert hollowed.qa.check("watertight").passed

    # label the whole block (v1): the pseudonym, QA watertight
    mesh.versions.setCurrentIndex(mesh.versions.findData(1))
    qtbot.mouseClick(mesh.show_version, QtCore.Qt.MouseButton.LeftButton)
    assert mesh.current_version == 1
    assert tools.label_height.value() == 7.5 and tools.label_depth.value() == 3.0
    labelled = _click(qtbot, mesh, tools.label_button)
    assert labelled.number == 4
    assert labelled.info["labels"]["block"]["text"] == case.pseudonym
    assert labelled.qa.check("watertight").passed
    assert measure(labelled.mesh).volume_mm3 > whole.volume_mm3  # embossed letters add material
    assert case.mesh_versions() == [1, 2, 3, 4]
    assert [r["facts"]["operation"] for r in records("mesh.edit")] == ["cut", "hollow", "label"]

    mesh.window().grab().save(str(artifacts / "mesh-tools.png"))


def test_export_through_the_button_is_clean_and_audited(panel, qtbot, tmp_path, monkeypatch):
    from app.tools.mesh.meshio import check_clean, read_mesh_file

    mesh, _state, case = panel
    folder = tmp_path / "export"
    folder.mkdir()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    mesh.tools.export_format.setCurrentText("3MF")
    qtbot.mouseClick(mesh.tools.export_button, QtCore.Qt.MouseButton.LeftButton)
    written = list(folder.iterdir())
    assert [p.name for p in written] == [f"{case.pseudonym}_block.3mf"]
    assert check_clean(written[0]) == []
    _vertices, faces = read_mesh_file(written[0])
    assert len(faces) == len(mesh.current_mesh.faces)
    assert "Exported" in mesh.message.text()
    [exported] = records("mesh.export")  # the GUI export is audited
    assert exported["facts"]["version"] == 1 and exported["facts"]["format"] == "3mf"
    assert exported["facts"]["mesh_sha256"] == case.mesh_sha256(1)


def test_edit_errors_are_one_line(panel, qtbot):
    mesh, state, _case = panel
    tools = mesh.tools
    state.cursor = np.array([0.0, 0.0, 500.0])  # above the model: nothing in front
    tools.cut_axis.setCurrentText("S-I (z)")
    tools.cut_keep.setCurrentText("front")
    with qtbot.waitSignal(mesh.worker.error, timeout=60_000):
        qtbot.mouseClick(tools.cut_button, QtCore.Qt.MouseButton.LeftButton)
    assert "\n" not in mesh.message.text() and "plane" in mesh.message.text()
    assert tools.cut_button.isEnabled()


def test_scale_flat_base_and_boolean_difference(panel, qtbot):
    from app.tools.mesh.edit import measure

    mesh, _state, case = panel
    tools = mesh.tools
    whole = measure(mesh.current_mesh)
    tools.scale_percent.setValue(50.0)
    half = _click(qtbot, mesh, tools.scale_button)
    assert half.number == 2 and half.info["params"] == {"factor": 0.5}
    assert measure(half.mesh).volume_mm3 == pytest.approx(whole.volume_mm3 / 8, rel=1e-3)
    assert np.allclose(measure(half.mesh).size_mm, np.array(whole.size_mm) / 2, atol=1e-3)

    tools.base_thickness.setValue(3.0)
    based = _click(qtbot, mesh, tools.base_button)
    assert based.number == 3 and based.qa.check("watertight").passed
    lo_before, lo_after = measure(half.mesh).bbox_min[2], measure(based.mesh).bbox_min[2]
    assert lo_after == pytest.approx(lo_before - 3.0, abs=1e-3)  # the plate hangs 3 mm below

    mesh.versions.setCurrentIndex(mesh.versions.findData(1))
    qtbot.mouseClick(mesh.show_version, QtCore.Qt.MouseButton.LeftButton)
    tools.bool_op.setCurrentText("difference")
    tools.bool_with.setCurrentIndex(tools.bool_with.findData(2))  # the half-size block, inside
    cavity = _click(qtbot, mesh, tools.bool_button)
    assert cavity.number == 4 and cavity.info["params"]["with_version"] == 2
    expected = whole.volume_mm3 * (1 - 1 / 8)
    assert measure(cavity.mesh).volume_mm3 == pytest.approx(expected, rel=1e-3)
    assert "volume" in tools.measurements.text()
    assert case.mesh_qa(4)["triangles"] == len(cavity.mesh.faces)  # fresh QA


def test_distance_between_two_crosshair_points(panel, qtbot):
    mesh, state, _case = panel
    tools = mesh.tools
    state.cursor = np.array([0.0, 0.0, 110.0])
    qtbot.mouseClick(tools.point_a_button, QtCore.Qt.MouseButton.LeftButton)
    state.cursor = np.array([30.0, 40.0, 110.0])
    qtbot.mouseClick(tools.point_b_button, QtCore.Qt.MouseButton.LeftButton)
    assert tools.distance.text() == "50.0 mm"

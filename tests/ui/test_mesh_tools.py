"""The Mesh panel's Edit and Export sections on a phantom case in a private vault: each edit,
clicked in the panel, runs in the worker and stores a new version with a fresh QA report."""

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
    from app.security.vault import Vault
    from app.ui.mesh_panel import MeshPanel
    from app.ui.segment_panel import SegmentPanel
    from app.viewers.state import ViewerState
    from app.viewers.view3d import View3D

    volume = block_volume()
    vault = Vault.init()[0]
    pseudonym = vault.create_case({"patient_name": "Doe^Jane", "patient_id": "MRN-77"})
    case = Case(vault, pseudonym)
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
    mesh.set_case(case, (220.0, 220.0, 250.0))
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
    """Click an edit button; the EditResult (fails with the panel's message on an error)."""
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


def _stored(case, result):
    from app.tools.mesh.store import load_mesh_version

    number = int(result.stored.split("/v")[1].split(".")[0])
    return load_mesh_version(case, number)


def test_cut_hollow_label_export_through_the_panel(panel, qtbot, tmp_path, monkeypatch, artifacts):
    from app.security.strip import check_clean, read_mesh_file
    from app.tools.mesh.edit import measure
    from app.tools.mesh.store import mesh_versions

    mesh, state, case = panel
    tools = mesh.tools
    assert mesh_versions(case) == [1] and mesh.current_version == 1
    whole = measure(mesh.current_mesh)
    assert whole.volume_mm3 == pytest.approx(96 * 48 * 32, rel=0.03)
    assert (
        "volume" in tools.measurements.text() and "96.0 × 48.0 × 32.0" in tools.measurements.text()
    )

    # cut at z = 125 mm through the crosshair, keep below: the bounds end at the plane
    state.cursor = np.array([0.0, 0.0, 125.0])
    tools.cut_axis.setCurrentText("S-I (z)")
    tools.cut_keep.setCurrentText("back")
    cut = _click(qtbot, mesh, tools.cut_button)
    assert cut.stored == "mesh/v2.stl" and mesh.current_version == 2
    stored, qa = _stored(case, cut)
    assert stored.bounds[1][2] == pytest.approx(125.0, abs=1e-3)
    assert stored.bounds[0][2] == pytest.approx(whole.bbox_min[2], abs=1e-3)
    assert qa.check("watertight").passed
    assert cut.info["edit"]["op"] == "cut" and cut.info["edit"]["from_version"] == 1

    # hollow the cut block: less material, a drain hole, still closed
    cut_volume = measure(stored).volume_mm3
    tools.wall.setValue(2.0)
    hollowed = _click(qtbot, mesh, tools.hollow_button)
    assert hollowed.stored == "mesh/v3.stl"
    stored, qa = _stored(case, hollowed)
    assert measure(stored).volume_mm3 < 0.7 * cut_volume
    assert qa.check("watertight").passed

    # label the whole block (v1): the pseudonym, QA watertight
    mesh.versions.setCurrentText("v1")
    qtbot.mouseClick(mesh.show_version, QtCore.Qt.MouseButton.LeftButton)
    assert mesh.current_version == 1
    assert tools.label_height.value() == 7.5 and tools.label_depth.value() == 3.0
    labelled = _click(qtbot, mesh, tools.label_button)
    assert labelled.stored == "mesh/v4.stl"
    assert labelled.info["label"]["text"] == case.pseudonym
    stored, qa = _stored(case, labelled)
    assert qa.check("watertight").passed
    assert measure(stored).volume_mm3 > whole.volume_mm3  # embossed letters add material
    assert case.load_json("mesh/v4.json")["label"]["text"] == case.pseudonym
    assert mesh_versions(case) == [1, 2, 3, 4]

    # export the labelled version as 3MF through the button: clean, named by pseudonym + part
    folder = tmp_path / "export"
    folder.mkdir()
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    tools.export_format.setCurrentText("3MF")
    qtbot.mouseClick(tools.export_button, QtCore.Qt.MouseButton.LeftButton)
    written = list(folder.iterdir())
    assert [p.name for p in written] == [f"{case.pseudonym}_block.3mf"]
    assert check_clean(written[0]) == []
    _vertices, faces = read_mesh_file(written[0])
    assert len(faces) == len(labelled.mesh.faces)
    assert "Exported" in mesh.message.text()
    mesh.window().grab().save(str(artifacts / "mesh-tools.png"))


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
    assert half.stored == "mesh/v2.stl"
    assert measure(half.mesh).volume_mm3 == pytest.approx(whole.volume_mm3 / 8, rel=1e-3)
    assert np.allclose(measure(half.mesh).size_mm, np.array(whole.size_mm) / 2, atol=1e-3)

    tools.base_thickness.setValue(3.0)
    based = _click(qtbot, mesh, tools.base_button)
    assert based.stored == "mesh/v3.stl" and based.qa.check("watertight").passed
    lo_before, lo_after = measure(half.mesh).bbox_min[2], measure(based.mesh).bbox_min[2]
    assert lo_after == pytest.approx(lo_before - 3.0, abs=1e-3)  # the plate hangs 3 mm below

    mesh.versions.setCurrentText("v1")
    qtbot.mouseClick(mesh.show_version, QtCore.Qt.MouseButton.LeftButton)
    tools.bool_op.setCurrentText("difference")
    tools.bool_with.setCurrentText("v2")  # the half-size block, inside the whole one
    cavity = _click(qtbot, mesh, tools.bool_button)
    assert cavity.stored == "mesh/v4.stl" and cavity.info["edit"]["params"]["with_version"] == 2
    expected = whole.volume_mm3 * (1 - 1 / 8)
    assert measure(cavity.mesh).volume_mm3 == pytest.approx(expected, rel=1e-3)
    assert "volume" in tools.measurements.text()
    assert case.load_json("mesh/v4.qa.json")["triangles"] == len(cavity.mesh.faces)  # fresh QA


def test_distance_between_two_crosshair_points(panel, qtbot):
    mesh, state, _case = panel
    tools = mesh.tools
    state.cursor = np.array([0.0, 0.0, 110.0])
    qtbot.mouseClick(tools.point_a_button, QtCore.Qt.MouseButton.LeftButton)
    state.cursor = np.array([30.0, 40.0, 110.0])
    qtbot.mouseClick(tools.point_b_button, QtCore.Qt.MouseButton.LeftButton)
    assert tools.distance.text() == "50.0 mm"


def test_mirror_and_connector_jobs_without_a_case():
    """The Qt-free jobs behind Mirror L-R and Connect parts."""
    import trimesh

    from app.tools.mesh.core import concatenate
    from app.ui.mesh_tools import EditJob, edit_and_check

    box = trimesh.creation.box(extents=(10.0, 20.0, 30.0))
    mirrored = edit_and_check(EditJob("mirror", box.copy().apply_translation((5, 0, 0)), {}))
    assert mirrored.stored is None and np.allclose(mirrored.mesh.bounds[:, 0], [0.0, 10.0])
    apart = concatenate([box, trimesh.creation.icosphere(radius=4.0).apply_translation((20, 0, 0))])
    joined = edit_and_check(EditJob("connector", apart, {"diameter_mm": 3.0}))
    assert joined.mesh.body_count == 1 and joined.qa.check("watertight").passed
    assert joined.mesh.volume > apart.volume

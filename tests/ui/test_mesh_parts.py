"""The Mesh panel's parts list: a stored two-part version shows both parts (segment, colour
swatch, material, a Show box); the 3D view draws each in its colour, and unchecking a part
removes its colour from the picture."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PySide6 import QtCore, QtWidgets

from .test_mesh_tools import block_volume

STYLES = {
    "tumour": {"colour": "#c83232", "material": "pla"},
    "vessel": {"colour": "#3232c8", "material": "petg"},
}


def two_part_version(case) -> int:
    from app.tools.mesh.meshio import mesh_bytes

    data = {}
    for index, name in enumerate(STYLES):
        ball = trimesh.creation.icosphere(subdivisions=3, radius=12.0)
        data[name] = mesh_bytes(
            ball.vertices + np.array([index * 30.0, 0, 120.0]), ball.faces, "stl"
        )
    qa = {"passed": True, "checks": []}
    return case.save_mesh_version(data, qa=qa, info={"author": "tess"}, styles=STYLES)


@pytest.fixture
def panel(styled_app, qtbot, data_dir, keystore_service):
    from app.case import Case
    from app.settings import resolve_paths
    from app.ui.deferred import mesh_stack
    from app.ui.mesh_panel import MeshPanel
    from app.ui.segment_panel import SegmentPanel
    from app.viewers.state import ViewerState
    from app.viewers.view3d import View3D
    from app.workflow import users
    from app.workflow.actor import Actor

    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    case = Case(actor.vault, actor.vault.create_case({"patient_name": "Doe^Jane"}))
    number = two_part_version(case)
    host = QtWidgets.QWidget()
    view3d = View3D(host)
    segments = SegmentPanel(ViewerState(host), host, view3d=view3d)
    mesh = MeshPanel(segments, view3d, host)
    layout = QtWidgets.QHBoxLayout(host)
    layout.addWidget(view3d, 1)
    layout.addWidget(mesh)
    host.resize(1200, 900)
    host.show()
    qtbot.addWidget(host)
    segments.attach(block_volume())
    mesh.set_actor(actor)
    mesh.set_case(case, (220.0, 220.0, 250.0))
    mesh_stack().load_now()
    qtbot.waitUntil(lambda: mesh.versions.findData(number) >= 0, timeout=60_000)
    yield mesh, view3d, number
    view3d.close()
    host.close()


def colour_pixels(image: np.ndarray) -> dict[str, int]:
    """Red (tumour) and blue (vessel) pixels, outside the orientation axes' corner."""
    h, w = image.shape[:2]
    image = image.copy()
    image[int(h * 0.75) :, : int(w * 0.25)] = 0
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return {
        "tumour": int(((r > g + 50) & (r > b + 50)).sum()),
        "vessel": int(((b > r + 50) & (b > g + 50)).sum()),
    }


def test_parts_list_and_their_colours_in_the_3d_view(panel, qtbot, artifacts):
    mesh, view3d, number = panel
    mesh.versions.setCurrentIndex(mesh.versions.findData(number))
    qtbot.mouseClick(mesh.show_version, QtCore.Qt.MouseButton.LeftButton)
    table = mesh.parts
    rows = [[table.item(r, c).text() for c in range(1, 4)] for r in range(table.rowCount())]
    assert rows == [["tumour", "#c83232", "pla"], ["vessel", "#3232c8", "petg"]]
    assert table.item(0, 2).background().color().name() == "#c83232"
    assert all(table.item(r, 0).checkState() == QtCore.Qt.CheckState.Checked for r in (0, 1))
    assert {"part:tumour", "part:vessel"} <= set(view3d.mesh_names())
    assert "mesh" not in view3d.mesh_names(), "the parts replace the one-colour mesh"

    view3d.frame_mesh("part:tumour", margin=3.0)
    image = view3d.image()
    view3d.screenshot(artifacts / "mesh_parts_both.png")
    assert image.std() > 10, "the 3D view is not blank"
    both = colour_pixels(image)
    assert both["tumour"] > 500 and both["vessel"] > 500, both

    table.item(1, 0).setCheckState(QtCore.Qt.CheckState.Unchecked)
    assert view3d.mesh_style("part:vessel")[2] is False
    alone = colour_pixels(view3d.image())
    view3d.screenshot(artifacts / "mesh_parts_tumour_only.png")
    assert alone["vessel"] == 0 and alone["tumour"] > 500, alone
    table.item(1, 0).setCheckState(QtCore.Qt.CheckState.Checked)
    assert colour_pixels(view3d.image())["vessel"] > 500

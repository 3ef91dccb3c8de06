"""The Package panel reviews and packages through the workflow, as whoever the window's actor is."""

from __future__ import annotations

import pytest

from app.case import Case
from app.settings import resolve_paths
from app.ui.package_panel import PackagePanel
from app.workflow import package, users
from app.workflow.actor import Actor
from tests.workflow.conftest import person
from tests.workflow.mesh_versions import store_version


@pytest.fixture
def people(data_dir, keystore_service) -> dict[str, Actor]:
    founder = Actor.current(resolve_paths(data_dir))
    users.init_vault(founder)
    return {
        "tess": person(founder, "tess", "technician"),
        "rafael": person(founder, "rafael", "reviewer"),
    }


@pytest.fixture
def panel(qtbot, styled_app, people) -> PackagePanel:
    tess = people["tess"]
    case = Case(tess.vault, tess.vault.create_case({"PatientName": "TEST^PANEL"}))
    store_version(case, "tess")
    widget = PackagePanel()
    qtbot.addWidget(widget)
    widget.set_actor(tess)
    widget.set_case(case)
    return widget


def test_review_then_package_as_the_actor(panel, people, qtbot, tmp_path):
    assert panel.version.currentText() == "v1"
    assert panel.status.text().lower().startswith("none")
    assert panel.user.text() == "tess", "roles are read once the window is up"
    panel.show_user()  # what the window does once it is on screen
    assert panel.user.text() == "tess (technician)"
    panel.approve_button.click()  # the technician may not approve
    assert "reviewer role" in panel.message.text()

    panel.set_actor(people["rafael"])
    assert panel.user.text() == "rafael (reviewer)"
    panel.reject_button.click()
    assert "reason" in panel.message.text() and "required" in panel.message.text()
    panel.comment.setText("fits")
    panel.approve_button.click()
    assert panel.status.text().lower().startswith("approved"), panel.message.text()

    panel.set_actor(people["tess"])
    drive = tmp_path / "usb"
    drive.mkdir()
    panel.destination.setCurrentText(str(drive))
    with qtbot.waitSignal(panel.packaged, timeout=60_000) as done:
        panel.package_button.click()
    path = done.args[0]
    assert path.parent == drive and "written and verified" in panel.message.text()
    assert package.verify(people["tess"], path).ok

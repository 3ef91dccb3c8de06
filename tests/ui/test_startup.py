"""Start-up: the window does not wait for the mesh pipeline (trimesh, VTK filters) or pyvista;
they load in the background once the window is shown (app.ui.deferred), and the panels that
need them fill in when they arrive."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.ui.conftest import REPO

HEAVY = ("trimesh", "scipy", "pyvista", "vtk", "vtkmodules.all", "app.tools.mesh.pipeline")


def test_the_window_module_imports_no_heavy_package():
    code = (
        f"import sys, app.ui.main_window\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == ""


# Not imported until the window is on screen: the keystore's backends, DICOM and the network.
NOT_BEFORE_SHOWN = ("keyring", "pydicom", "pynetdicom", "requests", "app.workflow.pacs",
                    "app.workflow.printing", "trimesh", "scipy", "vtkmodules.all")  # fmt: skip


def test_the_window_is_shown_before_heavy_packages_are_imported(data_dir, keystore_service):
    env = {**os.environ, "MEDPRINT_SHOWN_MARK": "modules", "QT_QPA_PLATFORM": "xcb"}
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        lines = (line for line in proc.stderr if line.startswith("medprint: "))
        assert next(lines).strip() == "medprint: window shown"
        modules = set(next(lines).split()[2:])
    finally:
        proc.kill()
        proc.wait()
    assert "app.ui.main_window" in modules
    assert [m for m in NOT_BEFORE_SHOWN if m in modules] == []


def test_the_mesh_tools_never_import_all_of_vtk():
    code = (
        "import sys, app.workflow.mesh, app.tools.mesh.edit\n"
        "print('vtkmodules.all' in sys.modules, 'vtk' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_preset_names_are_the_pipelines():
    from app.tools.mesh.pipeline import PRESETS
    from app.ui.mesh_panel import PRESET_NAMES

    assert list(PRESET_NAMES) == list(PRESETS)


def test_the_loader_runs_waiting_work_once_the_modules_arrive(styled_app, qtbot):
    from app.ui.deferred import ModuleLoader

    loader = ModuleLoader(("json", "app.tools.mesh.meshio"))
    ran: list[str] = []
    loader.call_soon(lambda: ran.append("soon"))
    assert ran == [] and not loader.loading  # call_soon never imports by itself
    loader.start()
    loader.call(lambda: ran.append("call"))
    with qtbot.waitSignal(loader.ready, timeout=30_000):
        pass
    assert ran == ["soon", "call"] and loader.loaded
    loader.call(lambda: ran.append("now"))
    assert ran[-1] == "now"


def test_the_loader_imports_without_collections_and_freezes_what_it_made(
    styled_app, tmp_path, monkeypatch
):
    import gc

    from app.ui.deferred import ModuleLoader

    (tmp_path / "medprint_loader_probe.py").write_text(
        "import gc\nCOLLECTING = gc.isenabled()\nMADE = [[n] for n in range(1000)]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "medprint_loader_probe", raising=False)
    ModuleLoader(("medprint_loader_probe",)).load_now()
    made = sys.modules["medprint_loader_probe"].MADE
    assert made[0] == [0] and gc.isenabled()
    assert sys.modules["medprint_loader_probe"].COLLECTING is False
    # frozen: no collection walks them (get_objects lists the three collected generations)
    assert not any(o is made for o in gc.get_objects())
    gc.unfreeze()  # the rest of the suite's objects are collected as before
    monkeypatch.delitem(sys.modules, "medprint_loader_probe")


def test_the_window_loads_the_mesh_stack_after_it_is_shown(styled_app, qtbot, data_dir,
                                                            keystore_service):  # fmt: skip
    from app.settings import resolve_paths
    from app.ui.deferred import mesh_stack
    from app.ui.main_window import MainWindow

    window = MainWindow(resolve_paths())
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: mesh_stack().loaded, timeout=120_000)
    panel = window.mesh_panel
    assert panel.preset.currentText() == "print"
    assert panel.smoothing.value() > 0  # the preset's values were filled in

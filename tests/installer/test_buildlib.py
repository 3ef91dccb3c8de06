"""The build helpers of installer/medprint.spec, without building (seconds, not minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "installer"))
import buildlib  # noqa: E402


def test_generated_vtk_module_serves_every_vtk_name_the_app_uses(tmp_path: Path) -> None:
    shim, modules = buildlib.write_vtk_shim(tmp_path)
    assert shim.name == "vtk.py" and 0 < len(modules) < 20
    names = sorted(buildlib.vtk_names_used(buildlib.app_sources()))
    util = sorted(buildlib.vtk_util_modules_used(buildlib.app_sources()))
    # The mesh tools name VTK classes as vtk.X through app/tools/mesh/_vtk.py; numpy_support
    # now comes from vtkmodules.util directly, so the shim may serve no util module at all.
    assert "vtkPolyData" in names
    numpy_check = "from vtk.util import numpy_support\n" if "numpy_support" in util else ""
    code = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import vtk\n"
        "from vtkmodules.util import numpy_support\n"
        f"{numpy_check}"
        f"missing = [n for n in {names!r} if not hasattr(vtk, n)]\n"
        "loaded = [m for m in sys.modules if m.startswith('vtkmodules.vtk')]\n"
        "print(json.dumps({'file': vtk.__file__, 'missing': missing, 'loaded': loaded,\n"
        "                  'np': hasattr(numpy_support, 'vtk_to_numpy')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    result = json.loads(out)
    assert result["file"] == str(shim)
    assert result["missing"] == [] and result["np"]
    assert len(result["loaded"]) < 30, "the shim must not import all of VTK"


def test_qt_plugins_and_translations_kept_or_dropped() -> None:
    kept = buildlib.qt_file_kept
    assert kept("PySide6/Qt/plugins/platforms/libqxcb.so")
    assert kept("PySide6/plugins/platforms/qwindows.dll")
    assert kept("PySide6/Qt/plugins/imageformats/libqsvg.so")
    assert not kept("PySide6/Qt/plugins/platforms/libqwayland.so")
    assert not kept("PySide6/Qt/plugins/platformthemes/libqgtk3.so")
    assert not kept("PySide6/Qt/plugins/sqldrivers/libqsqlite.so")
    assert not kept("PySide6/Qt/translations/qtbase_de.qm")
    assert kept("PySide6/Qt/lib/libQt6Core.so.6") and kept("numpy/_core/x.so")


def test_prune_orphans_drops_only_what_removed_plugins_needed() -> None:
    needs = {
        "/x/libqgtk3.so": {"libgtk-3.so.0", "libglib-2.0.so.0", "libQt6Gui.so.6"},
        "/x/libqxcb.so": {"libQt6Gui.so.6", "libQt6XcbQpa.so.6", "libglib-2.0.so.0"},
    }
    kept = [
        ("PySide6/Qt/plugins/platforms/libqxcb.so", "/x/libqxcb.so", "BINARY"),
        ("libgtk-3.so.0", "/usr/lib/libgtk-3.so.0", "BINARY"),
        ("libglib-2.0.so.0", "/usr/lib/libglib-2.0.so.0", "BINARY"),
        ("libQt6Gui.so.6", "PySide6/Qt/lib/libQt6Gui.so.6", "SYMLINK"),
        ("PySide6/Qt/lib/libQt6Gui.so.6", "/x/libQt6Gui.so.6", "BINARY"),
        ("libQt6Wayland.so.6", "PySide6/Qt/lib/libQt6Wayland.so.6", "SYMLINK"),
    ]
    removed = [("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "/x/libqgtk3.so", "BINARY")]
    left, dropped = buildlib.prune_orphans(kept, removed, lambda src: needs.get(src, set()))
    assert dropped == ["libQt6Wayland.so.6", "libgtk-3.so.0"]
    assert {e[0] for e in left} == {
        "PySide6/Qt/plugins/platforms/libqxcb.so",
        "libglib-2.0.so.0",
        "libQt6Gui.so.6",
        "PySide6/Qt/lib/libQt6Gui.so.6",
    }


def test_fingerprint_and_version_read_from_source() -> None:
    fingerprint = buildlib.build_fingerprint()
    assert len(fingerprint) == 24 and int(fingerprint, 16) >= 0
    from app import __version__

    assert buildlib.app_version() == __version__

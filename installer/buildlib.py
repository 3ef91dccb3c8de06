"""Helpers for the frozen build (``installer/medprint.spec``), its test and its benchmark.

Kept out of the spec so they can be read, tested and reused:

- the VTK subset: the app writes ``import vtk`` (the full package imports all ~150 VTK
  modules, ~550 MB), so the build ships a generated ``vtk`` module that re-exports only the
  VTK modules the app names, plus the ones pyvista/pyvistaqt load for the views;
- which Qt plugins and translations are dropped;
- the build fingerprint: a hash of the spec, the app, the resources and the installed
  package versions, so a build is redone only when one of them changed.

No PyInstaller import here: this module is imported by the test and the benchmark too.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP_DIR = REPO / "app"
RESOURCES_DIR = REPO / "resources"
INSTALLER_DIR = REPO / "installer"

# The VTK modules pyvista and pyvistaqt need for what MedPrint does with them: data objects,
# the Qt render window, the interactor styles, text, volume rendering. pyvista imports VTK
# lazily, by module name, so no static analysis can find these; their own VTK dependencies are
# added by the hooks of pyinstaller-hooks-contrib. Readers of other file formats (Exodus,
# CGNS, EnSight, ...), parallel/MPI, VTK-m and web modules are left out.
VTK_FOR_VIEWS = (
    "vtkCommonColor",
    "vtkCommonComputationalGeometry",
    "vtkCommonCore",
    "vtkCommonDataModel",
    "vtkCommonExecutionModel",
    "vtkCommonMath",
    "vtkCommonMisc",
    "vtkCommonSystem",
    "vtkCommonTransforms",
    "vtkFiltersCore",
    "vtkFiltersGeneral",
    "vtkFiltersGeometry",
    "vtkFiltersPython",
    "vtkFiltersSources",
    "vtkImagingCore",
    "vtkImagingMath",
    "vtkImagingSources",
    "vtkIOCore",
    "vtkIOImage",
    "vtkIOLegacy",
    "vtkIOXML",
    "vtkParallelCore",
    "vtkChartsCore",
    "vtkInteractionStyle",
    "vtkInteractionWidgets",
    "vtkPythonContext2D",
    "vtkRenderingAnnotation",
    "vtkRenderingContext2D",
    "vtkRenderingContextOpenGL2",
    "vtkRenderingCore",
    "vtkRenderingFreeType",
    "vtkRenderingHyperTreeGrid",
    "vtkRenderingLabel",
    "vtkRenderingMatplotlib",
    "vtkRenderingOpenGL2",
    "vtkRenderingUI",
    "vtkRenderingVolume",
    "vtkRenderingVolumeOpenGL2",
    "vtkViewsContext2D",
)

# Python packages never needed at run time (tests, notebooks, other Qt bindings, tools).
EXCLUDED_PACKAGES = (
    "tkinter",
    "_tkinter",
    "IPython",
    "ipykernel",
    "ipywidgets",
    "jupyter_client",
    "notebook",
    "trame",
    "trame_vtk",
    "trame_vuetify",
    "pytest",
    "_pytest",
    "pytestqt",
    "pluggy",
    "sphinx",
    "docutils",
    "pip",
    "setuptools",
    "pkg_resources",
    "wheel",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "lib2to3",
    "pydoc_data",
    "importlinter",
    "grimp",
    "ruff",
    "benchmarks",
    "tests",
)

# Qt modules MedPrint does not use (it needs QtCore, QtGui, QtWidgets, QtOpenGL(Widgets)).
EXCLUDED_QT_MODULES = tuple(
    f"PySide6.{name}"
    for name in (
        "QtQml",
        "QtQuick",
        "QtQuick3D",
        "QtQuickControls2",
        "QtQuickWidgets",
        "QtQuickTest",
        "QtWebEngineCore",
        "QtWebEngineWidgets",
        "QtWebEngineQuick",
        "QtWebChannel",
        "QtWebSockets",
        "QtWebView",
        "Qt3DCore",
        "Qt3DRender",
        "Qt3DInput",
        "Qt3DLogic",
        "Qt3DAnimation",
        "Qt3DExtras",
        "QtMultimedia",
        "QtMultimediaWidgets",
        "QtSpatialAudio",
        "QtTextToSpeech",
        "QtCharts",
        "QtDataVisualization",
        "QtGraphs",
        "QtGraphsWidgets",
        "QtDesigner",
        "QtHelp",
        "QtPdf",
        "QtPdfWidgets",
        "QtSql",
        "QtTest",
        "QtUiTools",
        "QtBluetooth",
        "QtNfc",
        "QtPositioning",
        "QtLocation",
        "QtSensors",
        "QtSerialPort",
        "QtSerialBus",
        "QtRemoteObjects",
        "QtScxml",
        "QtStateMachine",
        "QtHttpServer",
        "QtNetworkAuth",
        "QtAxContainer",
        "QtConcurrent",
    )
)

# Qt plugins kept, per plugin folder (file names are matched without prefix/suffix, so one
# list serves libqxcb.so, qwindows.dll and libqcocoa.dylib). A folder not listed is dropped.
QT_PLUGINS_KEPT: dict[str, tuple[str, ...]] = {
    "platforms": ("qxcb", "qoffscreen", "qminimal", "qwindows", "qcocoa"),
    "xcbglintegrations": ("qxcb-glx-integration", "qxcb-egl-integration"),
    # qgtk3 is left out on purpose: it would pull the whole GTK stack into the bundle.
    "platformthemes": ("qxdgdesktopportal",),
    "platforminputcontexts": (
        "composeplatforminputcontextplugin",
        "ibusplatforminputcontextplugin",
    ),
    "imageformats": ("qsvg", "qico", "qjpeg"),
    "iconengines": ("qsvgicon",),
    "styles": ("qmodernwindowsstyle", "qwindowsvistastyle", "qmacstyle"),
}

_VTK_NAME = re.compile(r"\bvtk\.((?:vtk|VTK_)[A-Za-z0-9_]+)")
_VTK_UTIL = re.compile(
    r"\bfrom\s+vtk\.util\s+import\s+([A-Za-z0-9_, ]+)|\bvtk\.util\.([A-Za-z0-9_]+)"
)


def app_sources(app_dir: Path = APP_DIR) -> list[Path]:
    return sorted(p for p in app_dir.rglob("*.py") if "__pycache__" not in p.parts)


def vtk_names_used(sources: Iterable[Path]) -> set[str]:
    """Every ``vtk.<name>`` the sources use (classes and ``VTK_*`` constants)."""
    names: set[str] = set()
    for path in sources:
        names.update(_VTK_NAME.findall(path.read_text(encoding="utf-8")))
    return names


def vtk_util_modules_used(sources: Iterable[Path]) -> set[str]:
    """The ``vtk.util`` submodules the sources import (e.g. ``numpy_support``)."""
    found: set[str] = set()
    for path in sources:
        for listed, dotted in _VTK_UTIL.findall(path.read_text(encoding="utf-8")):
            found.update(n.strip() for n in listed.split(",") if n.strip())
            if dotted:
                found.add(dotted)
    return found


_FIND_SCRIPT = r"""
import importlib, json, sys
import vtkmodules
names = set(json.loads(sys.argv[1]))
# vtk.py lists every VTK module of this build, dependencies first.
with open(vtkmodules.__path__[0] + "/../vtk.py", encoding="utf-8") as fh:
    order = [line.split()[1].split(".")[1] for line in fh
             if line.startswith("from vtkmodules.vtk") and line.rstrip().endswith("*")]
found = {}
for module in order:
    if not names - found.keys():
        break
    try:
        mod = importlib.import_module("vtkmodules." + module)
    except ImportError:
        continue
    for name in names - found.keys():
        if name in vars(mod):
            found[name] = module
print(json.dumps(found))
"""


def vtk_modules_defining(names: Iterable[str], python: str = sys.executable) -> dict[str, str]:
    """Map each VTK name to the ``vtkmodules`` module that defines it (in a child process,
    because resolving means importing VTK modules the build itself does not need)."""
    wanted = sorted(set(names))
    if not wanted:
        return {}
    out = subprocess.run(
        [python, "-c", _FIND_SCRIPT, json.dumps(wanted)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    missing = sorted(set(wanted) - found.keys())
    if missing:
        msg = f"the app uses VTK names this VTK does not define: {', '.join(missing)}"
        raise RuntimeError(msg)
    return found


def vtk_shim_source(modules: Iterable[str], util_modules: Iterable[str]) -> str:
    """Source of the frozen app's ``vtk`` module: the named VTK modules only."""
    lines = [
        '"""``vtk`` in the frozen MedPrint: only the VTK modules the app uses (generated by',
        "installer/medprint.spec; the full ``vtk`` would import every VTK module).",
        '"""',
        "",
        "import sys as _sys",
        "",
        "import vtkmodules as _vtkmodules",
        "from vtkmodules import util",
    ]
    lines += [f"from vtkmodules.{m} import *  # noqa: F403" for m in sorted(set(modules))]
    lines += [f"from vtkmodules.util import {u}" for u in sorted(set(util_modules))]
    lines += [
        "",
        "__version__ = _vtkmodules.__version__",
        '_sys.modules[__name__ + ".util"] = util',
    ]
    lines += [f'_sys.modules[__name__ + ".util.{u}"] = {u}' for u in sorted(set(util_modules))]
    return "\n".join(lines) + "\n"


def write_vtk_shim(folder: Path, python: str = sys.executable) -> tuple[Path, list[str]]:
    """Write ``folder/vtk.py`` for the app's sources; returns it and the VTK modules it uses."""
    sources = app_sources()
    defining = vtk_modules_defining(vtk_names_used(sources), python)
    modules = sorted(set(defining.values()))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vtk.py"
    path.write_text(vtk_shim_source(modules, vtk_util_modules_used(sources)), encoding="utf-8")
    return path, modules


def qt_file_kept(dest: str) -> bool:
    """False for a Qt plugin or translation the frozen app does not need.

    ``dest`` is the path inside the build, e.g. ``PySide6/Qt/plugins/platforms/libqxcb.so``.
    """
    parts = dest.replace("\\", "/").split("/")
    if not parts or parts[0] != "PySide6":
        return True
    if "translations" in parts:
        return False  # the interface is English only
    if "plugins" not in parts:
        return True
    i = parts.index("plugins")
    if len(parts) < i + 3:
        return True
    folder, name = parts[i + 1], parts[-1]
    stem = name.split(".")[0].removeprefix("lib")
    return stem in QT_PLUGINS_KEPT.get(folder, ())


def prune_orphans(
    kept: list[tuple[str, str, str]],
    removed: list[tuple[str, str, str]],
    imports_of: Callable[[str], set[str]],
) -> tuple[list[tuple[str, str, str]], list[str]]:
    """Drop from ``kept`` the shared libraries only the ``removed`` binaries needed.

    Entries are PyInstaller TOC tuples ``(dest, src, typecode)``; ``imports_of(src)`` gives the
    base names of every library a binary links to (transitively, as ``ldd`` reports them).
    Returns the pruned list and the dropped destinations.
    """

    def needs(entries: Iterable[tuple[str, str, str]]) -> set[str]:
        found: set[str] = set()
        for _dest, src, kind in entries:
            if kind in ("BINARY", "EXTENSION"):
                found |= imports_of(src)
        return found

    wanted_by_removed = needs(removed)
    candidates = [e for e in kept if Path(e[0]).name in wanted_by_removed]
    roots = [e for e in kept if Path(e[0]).name not in wanted_by_removed]
    wanted_by_kept = needs(roots)
    orphans = {e[0] for e in candidates if Path(e[0]).name not in wanted_by_kept}
    left = [e for e in kept if e[0] not in orphans]
    # Symbolic links (``(dest, target relative to dest's folder, "SYMLINK")``) to what is gone.
    dests = {e[0].replace("\\", "/") for e in left}
    dangling = {
        e[0]
        for e in left
        if e[2] == "SYMLINK"
        and os.path.normpath(str(Path(e[0]).parent / e[1])).replace("\\", "/") not in dests
    }
    return [e for e in left if e[0] not in dangling], sorted(orphans | dangling)


_LOAD_CHECK = r"""
import ctypes, json, os, sys
errors = {}
for path in json.loads(sys.stdin.read()):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # load in a child: a crashing initialiser only fails this one file
        os.close(read)
        try:
            ctypes.CDLL(path)
        except OSError as exc:
            os.write(write, str(exc).encode()[:4000])
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        errors[path] = message or f"status {status}"
print(json.dumps(errors))
"""


def _load_errors(paths: Iterable[Path], internal: Path, python: str) -> dict[Path, str]:
    """Why the dynamic loader refuses each of ``paths`` (bundle libraries first on its path);
    the ones it accepts are not in the result."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(internal)}
    done = subprocess.run(
        [python, "-c", _LOAD_CHECK],
        input=json.dumps([str(p) for p in paths]),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {Path(p): message for p, message in json.loads(done.stdout).items()}


def _is_elf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"\x7fELF"


def strip_binaries(internal: Path, python: str = sys.executable) -> tuple[int, list[str]]:
    """Strip symbol tables from the shared objects under ``internal`` (Linux, binutils).

    Not every library survives ``strip``: those rewritten by patchelf (auditwheel's vendored
    ``*.libs``) no longer load ("ELF load command address/offset not page-aligned"). So each
    library is loaded before and after, and one that loaded before but not after gets its
    original back. Returns the bytes saved and the libraries kept as they were.
    """
    elves = sorted(
        p for p in internal.rglob("*") if p.is_file() and not p.is_symlink() and _is_elf(p)
    )
    loadable = set(elves) - set(_load_errors(elves, internal, python))
    backup_dir = Path(tempfile.mkdtemp(prefix="medprint-strip-"))
    backups: dict[Path, Path] = {}
    kept: list[Path] = []
    try:
        for i, path in enumerate(sorted(loadable)):
            size = path.stat().st_size
            backup = backup_dir / str(i)
            shutil.copy2(path, backup)
            if path.stat().st_nlink > 1:  # never strip a file shared with the environment
                path.unlink()
                shutil.copy2(backup, path)
            subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
            if path.stat().st_size < size:
                backups[path] = backup
            else:
                backup.unlink()
        # Put back what no longer loads. A library that fails because a stripped dependency
        # fails names that dependency, so the ones naming themselves go back first.
        while failing := _load_errors(backups, internal, python):
            own = {p for p, message in failing.items() if str(p) in message or p.name in message}
            for path in own or failing:
                shutil.copy2(backups.pop(path), path)
                kept.append(path)
        saved = sum(b.stat().st_size - p.stat().st_size for p, b in backups.items())
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
    return saved, sorted(str(p.relative_to(internal)) for p in kept)


def remove_dangling_links(root: Path) -> list[str]:
    """Delete symbolic links under ``root`` whose target is not there; returns their paths."""
    gone = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() and not path.exists():
            path.unlink()
            gone.append(str(path.relative_to(root)))
    return gone


def _tree_files(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def build_fingerprint(repo: Path = REPO) -> str:
    """A hash of what decides the frozen build: installer/, app/, resources/, pyproject.toml,
    the Python version and every installed distribution's version."""
    digest = hashlib.sha256()
    digest.update(sys.version.encode())
    for folder in ("installer", "app", "resources"):
        root = repo / folder
        for path in _tree_files(root):
            digest.update(str(path.relative_to(repo)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update((repo / "pyproject.toml").read_bytes())
    versions = sorted(
        f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
    )
    digest.update("\n".join(versions).encode())
    return digest.hexdigest()[:24]


def folder_size(root: Path) -> int:
    """Bytes of every regular file under ``root`` (symlinks not followed)."""
    return sum(p.lstat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def app_version(app_dir: Path = APP_DIR) -> str:
    """``app.__version__`` read from the source (without importing the app)."""
    text = (app_dir / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)[\"']", text)
    return match.group(1) if match else "0"


DEFAULT_CACHE = REPO / "build" / "installer-test"


@contextlib.contextmanager
def frozen_build(
    cache: Path = DEFAULT_CACHE, python: str = sys.executable
) -> Iterator[tuple[Path, dict]]:
    """The frozen app for the current sources, built by installer/build.sh when no build with
    this fingerprint exists; yields the app folder and ``{fingerprint, build_seconds,
    size_bytes, clean_build, rebuilt}``.

    Builds live in ``cache/<fingerprint>/`` and are held with a shared lock while in use, so a
    concurrent run with other sources never deletes an app under a running test; builds no one
    holds are removed. One PyInstaller run at a time (``cache/build.lock``); they share one
    work folder, so a rebuild reuses the analysis of unchanged modules.
    """
    import fcntl  # noqa: PLC0415 (POSIX only; the spec itself also runs on Windows)

    fingerprint = build_fingerprint()
    root = cache / fingerprint
    root.mkdir(parents=True, exist_ok=True)
    with (root / "lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        app, info = _build_once(cache, root, fingerprint, python)
        fcntl.flock(lock, fcntl.LOCK_SH)
        _remove_unused_builds(cache, keep=root)
        yield app, info


def _build_once(cache: Path, root: Path, fingerprint: str, python: str) -> tuple[Path, dict]:
    import fcntl  # noqa: PLC0415
    import time  # noqa: PLC0415

    stamp = root / "stamp.json"
    app = root / "dist" / "medprint"
    if stamp.exists() and (app / "medprint").is_file():
        return app, {**json.loads(stamp.read_text(encoding="utf-8")), "rebuilt": False}
    shutil.rmtree(root / "dist", ignore_errors=True)
    with (cache / "build.lock").open("a") as build_lock:
        fcntl.flock(build_lock, fcntl.LOCK_EX)
        clean = not (cache / "work").exists()  # else PyInstaller reuses its analysis cache
        env = {**os.environ, "PYTHON": python, "MEDPRINT_BUILD_WORK": str(cache / "work")}
        start = time.monotonic()
        done = subprocess.run(
            ["bash", str(INSTALLER_DIR / "build.sh"), str(root / "dist")],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - start
    (root / "build.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        msg = f"frozen build failed; see {root / 'build.log'}:\n{done.stderr[-3000:]}"
        raise RuntimeError(msg)
    info = {
        "fingerprint": fingerprint,
        "build_seconds": round(seconds, 1),
        "size_bytes": folder_size(app),
        "clean_build": clean,
    }
    stamp.write_text(json.dumps(info), encoding="utf-8")
    return app, {**info, "rebuilt": True}


def _remove_unused_builds(cache: Path, keep: Path) -> None:
    """Delete the other fingerprints' builds that no process holds."""
    import fcntl  # noqa: PLC0415

    for folder in cache.iterdir():
        if folder == keep or not (folder / "lock").is_file():
            continue
        with (folder / "lock").open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # in use
            shutil.rmtree(folder / "dist", ignore_errors=True)
            (folder / "stamp.json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)


def latest_build(cache: Path = DEFAULT_CACHE) -> tuple[Path, dict] | None:
    """The most recent complete build in ``cache``, whatever its fingerprint (or None)."""
    stamps = sorted(cache.glob("*/stamp.json"), key=lambda p: p.stat().st_mtime)
    for stamp in reversed(stamps):
        app = stamp.parent / "dist" / "medprint"
        if (app / "medprint").is_file():
            return app, {**json.loads(stamp.read_text(encoding="utf-8")), "rebuilt": False}
    return None

"""Heavy modules imported on first use, in a background thread once the window is up.

The mesh pipeline pulls trimesh (scipy, networkx) and VTK's filters: 1.5-4 s of imports that
the window does not need to appear. :func:`mesh_stack` imports them in a thread started when
the window is shown (:meth:`ModuleLoader.start`); panels ask for them through the loader:

- :meth:`ModuleLoader.call_soon`: run now if loaded, else once the background import is done
  (never imports by itself: for work that can wait, such as filling in preset values);
- :meth:`ModuleLoader.call`: run now if loaded, once loaded if loading, else import now (a
  panel used on its own, without a window that started the loader).

Python's cyclic garbage collector stops every thread while it walks all tracked objects: with
the start-up's ~340k objects (Qt, VTK, scipy, trimesh) a full collection held the GIL
0.1-0.2 s at any moment, in whichever thread allocated (the worst stall of a mesh build).
Collections pause while the heavy modules import (whatever they make lives as long as the
process), and once the start-up is over those objects are frozen (:func:`gc.freeze`): later
collections walk only what was made since.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from PySide6 import QtCore, QtWidgets

from app.log import crash_summary
from app.viewers.imports import HEAVY_IMPORTS

log = logging.getLogger(__name__)

MESH_MODULES = (
    "app.workflow.mesh",
    "app.tools.mesh.pipeline",
    "app.tools.mesh.surface",
    "app.tools.mesh.edit",
    "app.tools.mesh.operations",
    "app.workflow.package",
    "app.workflow.slice",
    "app.workflow.trace",
    "app.workflow.verify_print",
    "app.workflow.pacs",  # pydicom, pynetdicom: for the Package panel's PACS nodes
    "app.workflow.printing",  # printer backends: the Print section lists what a printer takes
    # The segmentation tools import these on first use: loading SimpleITK's library holds the
    # GIL for ~0.2-0.4 s, which froze the window during the first bone in one click.
    "SimpleITK",
    "scipy.ndimage",
)


class ModuleLoader(QtCore.QObject):
    """Imports ``modules`` once, in a background thread or on demand; ``ready`` when done."""

    ready = QtCore.Signal()
    _imported = QtCore.Signal()  # from the import thread, queued onto the GUI thread

    def __init__(self, modules: tuple[str, ...], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.modules = modules
        self.loaded = False
        self._thread: threading.Thread | None = None
        self._waiting: list[Callable[[], None]] = []
        self._imported.connect(self._finish, QtCore.Qt.ConnectionType.QueuedConnection)

    @property
    def loading(self) -> bool:
        return self._thread is not None and not self.loaded

    def start(self) -> None:
        """Import the modules in a background thread (once)."""
        if self.loaded or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._work, name="import-heavy", daemon=True)
        self._thread.start()

    def load_now(self) -> None:
        """Import the modules on this thread (waits for a background import under way)."""
        if not self.loaded:
            self._import_all()
            self._finish()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """``fn()`` now if the modules are loaded, else once they are (does not load them)."""
        if self.loaded:
            fn()
        else:
            self._waiting.append(fn)

    def call(self, fn: Callable[[], None]) -> None:
        """``fn()`` now if loaded, once loaded if loading, else after importing them now."""
        if self.loading:
            self._waiting.append(fn)
            return
        self.load_now()
        fn()

    def _work(self) -> None:
        try:
            self._import_all()
        except Exception as exc:  # reported; load_now() raises it again where it is needed
            log.error("background import failed: %s", crash_summary(type(exc), exc.__traceback__))
            self._thread = None
            return
        self._imported.emit()

    def _import_all(self) -> None:
        # never beside another thread's VTK import (see app.viewers.imports)
        with HEAVY_IMPORTS, collections_paused():
            for name in self.modules:
                importlib.import_module(name)

    @QtCore.Slot()
    def _finish(self) -> None:
        if self.loaded:
            return
        self.loaded = True
        gc.freeze()  # the start-up's objects: never walked by a collection again
        waiting, self._waiting = self._waiting, []
        for fn in waiting:
            fn()
        self.ready.emit()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No automatic garbage collection inside (the objects made are frozen at the end)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


_MESH_STACK: ModuleLoader | None = None


def mesh_stack() -> ModuleLoader:
    """The process's loader of the mesh pipeline (trimesh, VTK filters, the mesh workflow)."""
    global _MESH_STACK  # noqa: PLW0603 (one loader per process, made on first use)
    if _MESH_STACK is None:
        _MESH_STACK = ModuleLoader(MESH_MODULES)
        app = QtCore.QCoreApplication.instance()
        if app is not None:
            _MESH_STACK.setParent(app)
    return _MESH_STACK


def when_exposed(window: QtWidgets.QWidget, fn: Callable[[], None]) -> None:
    """Call ``fn()`` once ``window`` is on screen (checked every 5 ms from the event loop)."""
    handle = window.windowHandle()
    if handle is None or not handle.isExposed():
        QtCore.QTimer.singleShot(5, lambda: when_exposed(window, fn))
        return
    fn()

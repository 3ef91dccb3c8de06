"""One lock for first imports of VTK, pyvista and the mesh stack, whatever the thread.

VTK's import hook (``vtkmodules.VTKMetaHook``) keeps one process-wide stack of the native
modules being loaded, without a lock: with two threads importing VTK modules at once, one
thread's module flushes the other's pending dependency loads half-way. The window imports VTK
in the background (the 3D view's renderer, the mesh pipeline) and on the GUI thread
(pyvistaqt), so every such import takes this lock; a module already imported costs only the
lookup.
"""

from __future__ import annotations

import threading

HEAVY_IMPORTS = threading.RLock()

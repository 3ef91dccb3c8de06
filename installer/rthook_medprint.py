"""Runtime hook of the frozen MedPrint (runs before the app's code).

The bootloader puts the bundle's library folder first on ``LD_LIBRARY_PATH`` (``LIBPATH`` on
AIX) for its own start; the process has read it by now. Programs the app starts (udisksctl,
the PrusaSlicer CLI) must get the user's own value back, or they would load the bundle's
copies of shared libraries instead of the system's.
"""

import os
import sys


def _restore_library_path() -> None:
    if not getattr(sys, "frozen", False) or os.name != "posix":
        return
    for name in ("LD_LIBRARY_PATH", "LIBPATH"):
        original = os.environ.pop(f"{name}_ORIG", None)
        if original is not None:
            os.environ[name] = original
        elif name in os.environ and sys.platform.startswith(("linux", "aix")):
            del os.environ[name]


_restore_library_path()
del _restore_library_path

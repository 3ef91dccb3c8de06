"""Entry point of the frozen MedPrint: the same ``app.cli.run`` as the ``medprint`` command.

Started with :data:`app.tools.mesh.quadric.CHILD_FLAG` alone, it is the decimation child
(a frozen build has no ``python -c``).
"""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from app.tools.mesh import quadric

    if sys.argv[1:] == [quadric.CHILD_FLAG]:
        quadric.serve()
        sys.exit(0)
    from app.cli import run

    sys.exit(run())

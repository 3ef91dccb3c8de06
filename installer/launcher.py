"""Entry point of the frozen MedPrint: the same ``app.cli.main`` as the ``medprint`` command."""

import multiprocessing
import sys

from app.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())

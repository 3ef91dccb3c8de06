"""Where the shipped resources are: ``resources/`` beside ``app/``, or inside a frozen build."""

from __future__ import annotations

import sys
from pathlib import Path

from app.errors import MedPrintError


def resources_root() -> Path:
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def resource_path(*parts: str) -> Path:
    """A shipped resource; a clear error when the installation is incomplete."""
    path = resources_root().joinpath(*parts)
    if not path.exists():
        msg = f"resource {'/'.join(parts)} is missing from this installation; reinstall MedPrint"
        raise MedPrintError(msg)
    return path

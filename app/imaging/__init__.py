"""DICOM scan/group/load, Volume (array + geometry in LPS mm), NIfTI/NRRD.

The names below are imported on first use, so ``import app.imaging`` stays cheap (no pydicom,
SimpleITK or scipy until a function is called)::

    from app.imaging import scan, load_series
    result = scan("/media/cdrom")
    volume = load_series(result.find(key))
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "scan": "app.imaging.scan",
    "thumbnail": "app.imaging.thumbnail",
    "ScanResult": "app.imaging.grouping",
    "Series": "app.imaging.grouping",
    "load_series": "app.imaging.load",
    "load_image_file": "app.imaging.load",
    "write_image_file": "app.imaging.load",
    "Volume": "app.imaging.volume",
}

__all__ = [
    "ScanResult",
    "Series",
    "Volume",
    "load_image_file",
    "load_series",
    "scan",
    "thumbnail",
    "write_image_file",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'app.imaging' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

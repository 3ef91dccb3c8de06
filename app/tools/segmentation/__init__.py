"""Segmentation: the model (segments on a volume's grid, undo, events), tools and exchange formats.

Quick use::

    from app.tools.segmentation import Segmentation, get_tool

    seg = Segmentation(volume)                       # empty, on the volume's grid
    bone = get_tool("bone")
    bone.apply(seg, volume, bone.default_params(keep_largest=2))
    seg.statistics(volume)                           # volume ml, surface mm², box, HU
    seg.undo()

Tools: ``registry().names()``; each has ``specs()`` (parameters with ranges and help) for panels.
Formats: :mod:`.exchange` (3D Slicer .seg.nrrd, NIfTI label map, DICOM SEG); the vault format is
``Segmentation.write`` / ``Segmentation.read``.
"""

from app.tools.segmentation.base import Registry, Tool, ToolResult, get_tool, load_tools, registry
from app.tools.segmentation.grid import Box, Grid
from app.tools.segmentation.model import (
    MAX_SEGMENTS,
    Segment,
    Segmentation,
    SegmentationEvent,
    SegmentStatistics,
)
from app.tools.segmentation.params import ParamSpec, specs, validate

__all__ = [
    "MAX_SEGMENTS",
    "Box",
    "Grid",
    "ParamSpec",
    "Registry",
    "Segment",
    "SegmentStatistics",
    "Segmentation",
    "SegmentationEvent",
    "Tool",
    "ToolResult",
    "get_tool",
    "load_tools",
    "registry",
    "specs",
    "validate",
]

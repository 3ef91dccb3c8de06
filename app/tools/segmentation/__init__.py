"""Segmentation: the model (segments on a volume's grid, undo, events), tools and exchange formats.

Quick use::

    from app.tools.segmentation import Segmentation, get_tool

    seg = Segmentation(volume)                       # empty, on the volume's grid
    bone = get_tool("bone")
    bone.apply(seg, volume, bone.default_params(keep_largest=2))
    seg.statistics(volume)                           # volume ml, surface mm², box, HU
    seg.undo()

Driving it from a panel (everything here is Qt-free):

* ``registry().tools`` -> {name: Tool}; ``tool.title``, ``tool.help``, ``tool.interactive``;
  ``tool.specs()`` -> [ParamSpec(name, kind, default, label, help, unit, minimum, maximum,
  choices, advanced)]; ``tool.default_params(**values)`` builds the dataclass; ``registry().errors``
  lists tools that failed to load.
* ``tool.apply(seg, volume, params, progress=..., cancel=...)`` in the worker; it raises
  :class:`~app.errors.SegmentationError` (bad input, nothing changed) or ``Cancelled``.
* Brush: ``seg.begin_stroke()``, ``get_tool("paint").apply(...)`` per mouse move with the new
  points (voxel (i, j, k)), ``seg.end_stroke()`` (or ``cancel_stroke()``): one undo step.
* Live threshold preview: ``threshold.preview(volume, params, index, axis)``; overlays:
  ``overlay.overlay_slice(seg, axis, index, opacity)``; brush outline: ``paint.brush_mask``.
* ``seg.subscribe(callback)`` -> events ("labels" with the changed box, "segments", "history");
  ``seg.undo()``, ``seg.redo()``, ``seg.history.undo_description``.
* Segments: ``add_segment``, ``remove_segment``, ``update_segment(name=, color=, visible=,
  locked=)``, ``move_segment``, ``mask(key, box)``, ``bbox(key)``, ``overwrite_other_segments``.
* File: ``storage.write_segmentation(seg, stream)``, ``storage.read_segmentation(stream)``
  (where it is kept, a case in the vault, is :mod:`app.workflow.segment`'s business).
* Exchange: ``exchange.import_file / export_file`` (format from the name), or
  ``export_seg_nrrd / import_seg_nrrd / export_nifti / import_nifti / write_dicom_seg /
  read_dicom_seg``.
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

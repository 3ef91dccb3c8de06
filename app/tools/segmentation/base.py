"""The small base every segmentation tool stands on, and the registry that lists them.

A tool is one class with a ``name``, a ``title``, ``help`` text, a parameter dataclass
(``Params``, see :mod:`params`) and ``apply(segmentation, volume, params, *, progress, cancel)``.
``apply`` validates everything first, computes the whole result on a cropped region, checks for
cancel, then commits it through the model in one undo step; any error leaves the segmentation as
it was. Segments are named by id or name in the parameters (``segment="bone"``); points (seeds,
brush centres, polygon vertices) are continuous voxel indices ``(i, j, k)`` unless a field says
LPS mm (``Grid.lps_to_index`` converts).
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from app.errors import SegmentationError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.segmentation.model import Segment, Segmentation
from app.tools.segmentation.params import ParamSpec, specs, validate


@dataclass
class ToolResult:
    """What a tool did: changed voxels, the segments it touched or created, one line for the user."""

    changed_voxels: int = 0
    segments: list[str] = field(default_factory=list)
    message: str = ""
    values: dict[str, Any] = field(default_factory=dict)


class Tool(ABC):
    """Base of every segmentation tool (see the module docstring)."""

    name: ClassVar[str]
    title: ClassVar[str]
    help: ClassVar[str]
    Params: ClassVar[type]
    needs_volume: ClassVar[bool] = True
    interactive: ClassVar[bool] = False  # driven by clicks/strokes in a view rather than a button

    def default_params(self, **values: Any) -> Any:
        """The parameter dataclass with its defaults, overridden by ``values``."""
        try:
            return self.Params(**values)
        except TypeError as exc:
            msg = f"{self.name}: {exc}; see `specs()` for the parameter names"
            raise SegmentationError(msg) from exc

    def specs(self) -> list[ParamSpec]:
        return specs(self.Params)

    def check(self, seg: Segmentation, volume: Any, params: Any) -> None:  # noqa: B027
        """Cross-field and model checks beyond the declared ranges (override when needed)."""

    def apply(
        self,
        seg: Segmentation,
        volume: Any,
        params: Any = None,
        *,
        progress: Progress | None = None,
        cancel: CancelToken | None = None,
    ) -> ToolResult:
        """Validate, compute and commit; raises SegmentationError or Cancelled with nothing changed."""
        params = self.default_params() if params is None else params
        if not isinstance(params, self.Params):
            msg = f"{self.name} takes {self.Params.__name__}, got {type(params).__name__}"
            raise SegmentationError(msg)
        validate(params)
        check_volume(seg, volume, required=self.needs_volume)
        self.check(seg, volume, params)
        progress = ensure(progress)
        check_cancel(cancel)
        result = self.run(seg, volume, params, progress, cancel)
        progress.update(1.0, "done")
        return result

    @abstractmethod
    def run(
        self,
        seg: Segmentation,
        volume: Any,
        params: Any,
        progress: Progress,
        cancel: CancelToken | None,
    ) -> ToolResult:
        """Compute and commit (called by :meth:`apply` after validation)."""


# ---------------------------------------------------------------- shared checks
def check_volume(seg: Segmentation, volume: Any, *, required: bool = True) -> None:
    if volume is None:
        if required:
            msg = "this tool needs the image volume; load the case's volume first"
            raise SegmentationError(msg)
        return
    if not seg.grid.matches(volume):
        msg = "the volume is not on the segmentation's grid; use the volume the segmentation was made on"
        raise SegmentationError(msg)


def editable_segment(seg: Segmentation, key: str, *, must_have_voxels: bool = False) -> Segment:
    """The segment a tool edits: it must exist, be unlocked and (optionally) not be empty."""
    if not key:
        msg = "choose a segment to edit"
        raise SegmentationError(msg)
    segment = seg.segment(key)
    if segment.locked:
        msg = f"segment {segment.name!r} is locked; unlock it to edit it"
        raise SegmentationError(msg)
    if must_have_voxels and seg.is_empty(segment):
        msg = f"segment {segment.name!r} is empty; paint or threshold it first"
        raise SegmentationError(msg)
    return segment


def target_segment(
    seg: Segmentation, key: str | None, default_name: str, color: Any = None
) -> Segment:
    """An existing editable segment, or a new one named ``default_name`` when ``key`` is empty."""
    if key:
        if seg.has_segment(key):
            return editable_segment(seg, key)
        return seg.add_segment(key, color)
    return seg.add_segment(default_name, color)


def seed_indices(seg: Segmentation, points: Any, label: str = "seed") -> list[tuple[int, int, int]]:
    """Round continuous (i, j, k) points to voxel indices, refusing any outside the grid."""
    out = []
    ni, nj, nk = seg.grid.size_ijk
    for point in points:
        if len(point) != 3:
            msg = f"a {label} is three numbers (i, j, k)"
            raise SegmentationError(msg)
        i, j, k = (round(float(v)) for v in point)
        if not (0 <= i < ni and 0 <= j < nj and 0 <= k < nk):
            msg = f"{label} ({i}, {j}, {k}) is outside the volume {ni}×{nj}×{nk}; click inside the image"
            raise SegmentationError(msg)
        out.append((i, j, k))
    return out


def radius_voxels(
    spacing_kji: tuple[float, float, float], radius_mm: float
) -> tuple[int, int, int]:
    """A radius in mm as whole voxels per axis (k, j, i), rounded like 3D Slicer's kernels."""
    return tuple(round(radius_mm / s) for s in spacing_kji)  # type: ignore[return-value]


def hu_array(volume: Any) -> np.ndarray:
    return np.asarray(volume.array)


# -------------------------------------------------------------------- registry
TOOL_MODULES = (
    "threshold",
    "bone",
    "islands",
    "smoothing",
    "paint",
    "region_growing",
    "scissors",
    "margin",
    "logical",
    "interpolate",
)


@dataclass
class Registry:
    """Tools by name, plus the modules that failed to load and why (the rest still work)."""

    tools: dict[str, Tool]
    errors: dict[str, str]

    def get(self, name: str) -> Tool:
        if name not in self.tools:
            known = ", ".join(sorted(self.tools))
            broken = f" (failed to load: {', '.join(self.errors)})" if self.errors else ""
            msg = f"no segmentation tool {name!r}; available: {known}{broken}"
            raise SegmentationError(msg)
        return self.tools[name]

    def names(self) -> list[str]:
        return list(self.tools)


def load_tools(
    modules: tuple[str, ...] = TOOL_MODULES, package: str = __package__ or ""
) -> Registry:
    """Import every tool module; each exposes ``TOOLS`` (a list of Tool instances)."""
    tools: dict[str, Tool] = {}
    errors: dict[str, str] = {}
    for module_name in modules:
        try:
            module = importlib.import_module(f"{package}.{module_name}")
            for tool in module.TOOLS:
                tools[tool.name] = tool
        except Exception as exc:  # a broken tool is reported; the others still load
            errors[module_name] = f"{type(exc).__name__}: {exc}"
    return Registry(tools, errors)


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The shared registry, loaded on first use."""
    global _REGISTRY  # noqa: PLW0603
    if _REGISTRY is None:
        _REGISTRY = load_tools()
    return _REGISTRY


def get_tool(name: str) -> Tool:
    return registry().get(name)

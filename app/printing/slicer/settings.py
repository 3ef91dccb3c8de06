"""What to slice and how: the parts on the bed and the slicing settings shared by both engines."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

import numpy as np

from app.errors import PrintingError

INFILL_PATTERNS = ("rectilinear", "grid")
_NAME_RE = re.compile(r"[^A-Za-z0-9 ._-]+")


@dataclass(frozen=True)
class SliceSettings:
    """Slicing settings (mm, %, degrees). Defaults equal ``prusaslicer-generic-220.ini``.

    ``support_angle`` is the overhang angle from the vertical beyond which a surface is supported
    (0° supports every downward face, 90° none); ``support_z_gap`` is the air gap between support
    and part, ``support_xy_distance`` the horizontal clearance, so supports break away.
    ``line_width`` 0 means 1.125 x nozzle diameter.
    """

    layer_height: float = 0.2
    first_layer_height: float = 0.2
    line_width: float = 0.0
    perimeters: int = 2
    external_perimeter_first: bool = False
    top_layers: int = 4
    bottom_layers: int = 3
    infill_density: float = 15.0
    infill_pattern: str = "grid"
    infill_angle: float = 45.0
    infill_overlap: float = 25.0
    solid_below_area: float = 70.0
    solid_margin: float = 3.0
    skirt_loops: int = 1
    skirt_distance: float = 6.0
    brim_width: float = 0.0
    supports: bool = False
    support_angle: float = 45.0
    support_z_gap: float = 0.2
    support_xy_distance: float = 0.6
    support_spacing: float = 2.5
    support_interface_layers: int = 2
    support_interface_spacing: float = 0.8
    min_layer_time: float = 5.0
    fan_below_layer_time: float = 60.0
    part_spacing: float = 6.0

    def __post_init__(self) -> None:
        checks = {
            "layer_height": (0.04, 1.0),
            "first_layer_height": (0.04, 1.0),
            "line_width": (0.0, 2.0),
            "perimeters": (1, 20),
            "top_layers": (0, 100),
            "bottom_layers": (0, 100),
            "infill_density": (0.0, 100.0),
            "infill_angle": (-360.0, 360.0),
            "infill_overlap": (0.0, 50.0),
            "solid_below_area": (0.0, 10000.0),
            "solid_margin": (0.0, 20.0),
            "skirt_loops": (0, 20),
            "skirt_distance": (0.0, 50.0),
            "brim_width": (0.0, 50.0),
            "support_angle": (0.0, 90.0),
            "support_z_gap": (0.0, 2.0),
            "support_xy_distance": (0.0, 10.0),
            "support_spacing": (0.2, 20.0),
            "support_interface_layers": (0, 10),
            "support_interface_spacing": (0.0, 5.0),
            "min_layer_time": (0.0, 600.0),
            "fan_below_layer_time": (0.0, 600.0),
            "part_spacing": (0.0, 50.0),
        }
        for name, (low, high) in checks.items():
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not low <= value <= high
            ):
                msg = f"setting '{name}' = {value!r} must be within {low:g}..{high:g}; fix it"
                raise PrintingError(msg)
        if self.infill_pattern not in INFILL_PATTERNS:
            msg = f"infill pattern '{self.infill_pattern}' must be one of {', '.join(INFILL_PATTERNS)}"
            raise PrintingError(msg)

    def width(self, nozzle_diameter: float) -> float:
        return self.line_width or round(1.125 * nozzle_diameter, 4)

    def check_against(self, nozzle_diameter: float) -> None:
        for name in ("layer_height", "first_layer_height"):
            if getattr(self, name) > 0.8 * nozzle_diameter:
                msg = (
                    f"{name.replace('_', ' ')} {getattr(self, name):g} mm is more than 80% of the "
                    f"{nozzle_diameter:g} mm nozzle; use a thinner layer"
                )
                raise PrintingError(msg)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


@dataclass
class Part:
    """One mesh to print: vertices (n, 3) mm and triangles (m, 3), and a neutral name.

    ``name`` is what appears in the G-code: the case pseudonym and the part name
    (e.g. ``"MP-7F3K skull"``), never a file name or a patient's name. ``extruder`` (1-based)
    is the tool that prints the part on a multi-material printer; 0 means the first.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    extruder: int = 0

    def __post_init__(self) -> None:
        self.vertices = np.ascontiguousarray(self.vertices, dtype=np.float64)
        self.faces = np.ascontiguousarray(self.faces, dtype=np.int64)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3 or len(self.faces) == 0:
            msg = f"part '{self.safe_name}' has no triangles; check the mesh"
            raise PrintingError(msg)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            msg = f"part '{self.safe_name}' must be a triangle mesh; triangulate it first"
            raise PrintingError(msg)
        if not np.isfinite(self.vertices).all():
            msg = f"part '{self.safe_name}' has non-finite coordinates; repair the mesh"
            raise PrintingError(msg)

    @property
    def safe_name(self) -> str:
        return _NAME_RE.sub("", self.name)[:80].strip() or "part"

    @property
    def size(self) -> np.ndarray:
        return self.vertices.max(axis=0) - self.vertices.min(axis=0)

    @classmethod
    def from_trimesh(cls, name: str, mesh: object) -> Part:
        return cls(name, np.asarray(mesh.vertices), np.asarray(mesh.faces))  # type: ignore[attr-defined]

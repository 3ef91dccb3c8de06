"""What a slicing engine returns: the G-code text, its analysis (layers, moves) and a summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.atomic import atomic_write_bytes
from app.printing.gcode import GcodeAnalysis, GcodeSummary


@dataclass
class SliceResult:
    """G-code plus its analysis; ``analysis.layer_segments_by_type(i)`` draws layer ``i``."""

    engine: str
    gcode: str
    analysis: GcodeAnalysis
    warnings: list[str] = field(default_factory=list)
    #: per part, the (3,) translation in mm from mesh to bed coordinates (toolpaths are on the
    #: bed): add it to a part's vertices to draw the mesh under its toolpaths
    placements: list[np.ndarray] = field(default_factory=list)

    @property
    def summary(self) -> GcodeSummary:
        return self.analysis.summary()

    def write(self, path: Path) -> Path:
        """Write the G-code atomically to ``path``."""
        atomic_write_bytes(Path(path), self.gcode.encode("utf-8"))
        return Path(path)

"""Slicing engines: the built-in slicer (always there) and PrusaSlicer (when installed).

The GUI and the CLI call one function::

    result = slice_parts([Part("MP-7F3K skull", vertices, faces)], printer, material,
                         SliceSettings(supports=True), engine="builtin",
                         progress=progress, cancel=cancel)
    result.summary.lines(); result.write(path)
    segments_by_type = result.analysis.layer_segments_by_type(layer_index)

:func:`engines` lists every engine with whether it is available and, if not, how to install it.
On a printer with several extruders PrusaSlicer prints each part with its ``Part.extruder``; the
built-in engine prints the parts in place as one, in one colour, and says so in its warnings.
"""

from __future__ import annotations

import numpy as np

from app.errors import PrintingError
from app.printing.profiles import MaterialProfile, PrinterProfile
from app.printing.slicer import prusaslicer
from app.printing.slicer.engine import EngineInfo
from app.printing.slicer.result import SliceResult
from app.printing.slicer.settings import Part, SliceSettings
from app.progress import CancelToken, Progress

ONE_COLOUR = (
    "the built-in engine prints all parts in one colour (one extruder); slice with PrusaSlicer "
    "(--engine prusaslicer) for an extruder per part"
)


def _as_one(parts: list[Part]) -> Part:
    """The parts as one part in place (the built-in engine has one extruder)."""
    base = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.concatenate([p.faces + b for p, b in zip(parts, base, strict=True)])
    name = parts[0].name.split(" ")[0] + " model"
    return Part(name, np.concatenate([p.vertices for p in parts]), faces)


def engines() -> list[EngineInfo]:
    """Every engine, available or not (with the install hint when not)."""
    return [EngineInfo("builtin", "MedPrint built-in", True, "", ""), prusaslicer.engine_info()]


def slice_parts(
    parts: list[Part],
    printer: PrinterProfile,
    material: MaterialProfile,
    settings: SliceSettings | None = None,
    *,
    engine: str = "builtin",
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> SliceResult:
    """Slice ``parts`` with ``engine`` ("builtin" or "prusaslicer")."""
    settings = settings or SliceSettings()
    if printer.is_resin:
        msg = f"'{printer.name}' is a resin printer: it is sliced into an SL1 archive by "
        msg += "PrusaSlicer's SLA engine (medprint slice picks it for a resin printer)"
        raise PrintingError(msg)
    if engine == "builtin":
        from app.printing.slicer.builtin import slice_builtin  # noqa: PLC0415 (shapely on first use)

        one_colour = printer.extruders > 1 and len(parts) > 1
        if one_colour:
            parts = [_as_one(parts)]
        result = slice_builtin(parts, printer, material, settings, progress=progress, cancel=cancel)
        if one_colour:
            result.warnings.insert(0, ONE_COLOUR)
        return result
    if engine == "prusaslicer":
        return prusaslicer.slice_prusaslicer(
            parts, printer, material, settings, progress=progress, cancel=cancel
        )
    msg = f"unknown slicing engine '{engine}'; use 'builtin' or 'prusaslicer'"
    raise PrintingError(msg)


__all__ = ["EngineInfo", "Part", "SliceResult", "SliceSettings", "engines", "slice_parts"]

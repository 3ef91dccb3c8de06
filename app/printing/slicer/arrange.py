"""Placing parts on the bed: refuse what cannot fit, pack the rest in rows, centre the lot."""

from __future__ import annotations

import numpy as np

from app.errors import PrintingError
from app.printing.profiles import PrinterProfile
from app.printing.slicer.settings import Part


def check_fits(part: Part, printer: PrinterProfile) -> None:
    """Refuse a part larger than the build volume, naming its size."""
    size = part.size
    volume = np.asarray(printer.build_volume)
    if (size > volume + 1e-6).any():
        msg = (
            f"part '{part.safe_name}' is {size[0]:.1f} x {size[1]:.1f} x {size[2]:.1f} mm; "
            f"'{printer.name}' prints at most {volume[0]:g} x {volume[1]:g} x {volume[2]:g} mm: "
            "scale, rotate or split the part"
        )
        raise PrintingError(msg)


def arrange(parts: list[Part], printer: PrinterProfile, spacing: float) -> list[np.ndarray]:
    """Translation (3,) per part that puts it on the bed (z = 0), the group centred in x/y.

    Parts are packed in rows, tallest footprint first, ``spacing`` mm apart.
    """
    if not parts:
        msg = "nothing to slice; add a part first"
        raise PrintingError(msg)
    for part in parts:
        check_fits(part, printer)
    bed_x, bed_y, _ = printer.build_volume
    lows = [part.vertices.min(axis=0) for part in parts]
    sizes = [part.size for part in parts]
    order = sorted(range(len(parts)), key=lambda i: -sizes[i][1])
    spots: dict[int, tuple[float, float]] = {}
    x = y = row_depth = 0.0
    width_used = 0.0
    for i in order:
        sx, sy = sizes[i][0], sizes[i][1]
        if x > 0 and x + sx > bed_x:
            y += row_depth + spacing
            x = row_depth = 0.0
        spots[i] = (x, y)
        width_used = max(width_used, x + sx)
        x += sx + spacing
        row_depth = max(row_depth, sy)
    depth_used = y + row_depth
    if depth_used > bed_y + 1e-6:
        msg = (
            f"the {len(parts)} parts need about {width_used:.0f} x {depth_used:.0f} mm together, more "
            f"than the {bed_x:g} x {bed_y:g} mm bed; print them in separate jobs"
        )
        raise PrintingError(msg)
    shift_x = (bed_x - width_used) / 2
    shift_y = (bed_y - depth_used) / 2
    return [
        np.array(
            [spots[i][0] + shift_x - lows[i][0], spots[i][1] + shift_y - lows[i][1], -lows[i][2]]
        )
        for i in range(len(parts))
    ]


def place_together(parts: list[Part], printer: PrinterProfile) -> list[np.ndarray]:
    """One translation for every part (repeated per part): the parts keep their places relative
    to each other (a tumour inside its bone), the group on the bed (z = 0), centred in x/y."""
    if not parts:
        msg = "nothing to slice; add a part first"
        raise PrintingError(msg)
    vertices = np.concatenate([part.vertices for part in parts])
    check_fits(Part("model", vertices, np.zeros((1, 3), dtype=np.int64)), printer)
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    bed = np.asarray(printer.build_volume, dtype=np.float64)
    shift = np.array([bed[0] / 2, bed[1] / 2, 0.0]) - np.array(
        [(low[0] + high[0]) / 2, (low[1] + high[1]) / 2, low[2]]
    )
    return [shift.copy() for _ in parts]


def placed(parts: list[Part], offsets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The parts moved by their offsets, as one vertex and face list."""
    vertices = np.concatenate([p.vertices + o for p, o in zip(parts, offsets, strict=True)])
    base = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.concatenate([p.faces + b for p, b in zip(parts, base, strict=True)])
    return vertices, faces

"""Qt-free pixels for the slice views: a segmentation slice as RGBA, and outlines.

Views call :func:`overlay_slice` after a "labels" event whose box crosses their slice; the
result is a plain (rows, columns, 4) uint8 array the viewer uploads as a texture.
"""

from __future__ import annotations

import numpy as np

from app.tools.segmentation.model import Segmentation

AXES = {"k": 0, "j": 1, "i": 2}


def label_slice(seg: Segmentation, axis: str, index: int) -> np.ndarray:
    """The label bit field on one slice (a copy, taken under the segmentation's lock)."""
    if axis not in AXES:
        msg = f"axis must be one of {', '.join(AXES)}"
        raise ValueError(msg)
    with seg.lock:
        return np.take(seg.labels, int(index), axis=AXES[axis]).copy()


def overlay_slice(
    seg: Segmentation, axis: str, index: int, opacity: float = 0.5, *, outline: bool = False
) -> np.ndarray:
    """RGBA (uint8) of the visible segments on one slice; later segments are drawn on top.

    ``axis`` "k" gives an axial slice (rows j, columns i), "j" coronal (rows k, columns i),
    "i" sagittal (rows k, columns j). With ``outline`` only the segment borders are drawn.
    """
    plane = label_slice(seg, axis, index)
    out = np.zeros((*plane.shape, 4), dtype=np.uint8)
    alpha = round(255 * min(max(opacity, 0.0), 1.0))
    for segment in seg.segments:
        if not segment.visible:
            continue
        mask = (plane & plane.dtype.type(1 << segment.bit)) != 0
        if outline:
            mask = _border(mask)
        if mask.any():
            out[mask] = (*(round(255 * c) for c in segment.color), alpha if not outline else 255)
    return out


def _border(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner

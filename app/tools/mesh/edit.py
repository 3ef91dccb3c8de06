"""Editing: plane cut (capped), booleans, hollowing with drain holes, mirror, scale, flat base,
connector rods, and measurements. Solids go through manifold3d, so every result is a closed,
oriented 2-manifold; an input that is not one gets a clear error asking to repair it first.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import manifold3d as mf
import numpy as np
import trimesh
from scipy import ndimage
from vtkmodules.util import numpy_support

from app.errors import MeshError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh import _vtk as vtk
from app.tools.mesh.core import (
    enable_vtk_threads,
    from_polydata,
    make_mesh,
    merge_float32,
    run_filter,
    signed_volume,
    surface_area,
    to_polydata,
)
from app.tools.mesh.surface import distances_to_surface

# ---------------------------------------------------------------------------------------------
# manifold conversion


def to_manifold(mesh: trimesh.Trimesh) -> mf.Manifold:
    """A manifold3d solid of ``mesh``; raises :class:`MeshError` if it is not closed 2-manifold."""
    vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    solid = mf.Manifold(
        mf.Mesh64(
            vert_properties=np.ascontiguousarray(vertices, dtype=np.float64),
            tri_verts=np.ascontiguousarray(faces, dtype=np.uint64),
        )
    )
    if solid.status() != mf.Error.NoError:
        msg = f"the mesh is not a closed 2-manifold ({solid.status().name}); run Repair first"
        raise MeshError(msg)
    return solid


def from_manifold(solid: mf.Manifold) -> trimesh.Trimesh:
    out = solid.to_mesh64()
    return make_mesh(
        np.asarray(out.vert_properties)[:, :3], np.asarray(out.tri_verts, dtype=np.int64)
    )


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float64)
    length = np.linalg.norm(vector)
    if length == 0:
        msg = "a direction of length zero was given; pick a real direction"
        raise MeshError(msg)
    return vector / length


# ---------------------------------------------------------------------------------------------
# cuts and booleans


def plane_cut(
    mesh: trimesh.Trimesh, point: np.ndarray, normal: np.ndarray
) -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """Split by the plane through ``point`` with ``normal``; both halves capped (closed).

    Returns ``(front, back)``: the part on the side ``normal`` points to, then the other.
    """
    normal = _unit(normal)
    front, back = to_manifold(mesh).split_by_plane(tuple(normal), float(np.dot(normal, point)))
    return from_manifold(front), from_manifold(back)


def union(*meshes: trimesh.Trimesh) -> trimesh.Trimesh:
    solids = [to_manifold(m) for m in meshes]
    return from_manifold(mf.Manifold.batch_boolean(solids, mf.OpType.Add))


def difference(mesh: trimesh.Trimesh, *tools: trimesh.Trimesh) -> trimesh.Trimesh:
    result = to_manifold(mesh)
    for tool in tools:
        result = result - to_manifold(tool)
    return from_manifold(result)


def intersection(a: trimesh.Trimesh, b: trimesh.Trimesh) -> trimesh.Trimesh:
    return from_manifold(to_manifold(a) ^ to_manifold(b))


# ---------------------------------------------------------------------------------------------
# transforms


def mirror(
    mesh: trimesh.Trimesh, normal: np.ndarray, point: np.ndarray | None = None
) -> trimesh.Trimesh:
    """Mirror across the plane through ``point`` (default: the bounding-box centre)."""
    normal = _unit(normal)
    centre = np.asarray(point if point is not None else mesh.bounds.mean(axis=0), dtype=np.float64)
    v = np.asarray(mesh.vertices)
    distance = (v - centre) @ normal
    mirrored = v - 2.0 * distance[:, None] * normal
    return make_mesh(mirrored, np.asarray(mesh.faces)[:, ::-1])  # a reflection flips winding


def scale(
    mesh: trimesh.Trimesh,
    factor: float | tuple[float, float, float],
    centre: np.ndarray | None = None,
) -> trimesh.Trimesh:
    """Scale about ``centre`` (default: the bounding-box centre); a mirroring scale keeps normals out."""
    f = np.broadcast_to(np.asarray(factor, dtype=np.float64), (3,))
    if np.any(f == 0):
        msg = "a scale factor of zero flattens the model; use a non-zero factor"
        raise MeshError(msg)
    c = np.asarray(centre if centre is not None else mesh.bounds.mean(axis=0), dtype=np.float64)
    faces = np.asarray(mesh.faces)
    if np.prod(np.sign(f)) < 0:
        faces = faces[:, ::-1]
    return make_mesh((np.asarray(mesh.vertices) - c) * f + c, faces)


def transform(mesh: trimesh.Trimesh, matrix: np.ndarray) -> trimesh.Trimesh:
    """Apply a 4×4 affine; flips triangles when the matrix mirrors."""
    matrix = np.asarray(matrix, dtype=np.float64)
    v = np.asarray(mesh.vertices) @ matrix[:3, :3].T + matrix[:3, 3]
    faces = np.asarray(mesh.faces)
    if np.linalg.det(matrix[:3, :3]) < 0:
        faces = faces[:, ::-1]
    return make_mesh(v, faces)


def frame_from_normal(normal: np.ndarray, up_hint: np.ndarray | None = None) -> np.ndarray:
    """3×3 rotation whose columns are (x, y, z) with z = ``normal`` and y close to ``up_hint``."""
    z = _unit(normal)
    up = np.asarray(up_hint if up_hint is not None else (0.0, 0.0, 1.0), dtype=np.float64)
    y = up - np.dot(up, z) * z
    if np.linalg.norm(y) < 1e-6:  # up parallel to the normal: take any perpendicular
        y = np.cross(z, (1.0, 0.0, 0.0) if abs(z[0]) < 0.9 else (0.0, 1.0, 0.0))
    y = _unit(y)
    return np.stack([np.cross(y, z), y, z], axis=1)


def _place(solid: mf.Manifold, rotation: np.ndarray, origin: np.ndarray) -> mf.Manifold:
    m = np.zeros((3, 4))
    m[:, :3] = rotation
    m[:, 3] = origin
    return solid.transform(m.tolist())


def cylinder_between(
    a: np.ndarray, b: np.ndarray, diameter: float, segments: int = 48
) -> mf.Manifold:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    if length == 0 or diameter <= 0:
        msg = "a rod needs two different end points and a positive diameter"
        raise MeshError(msg)
    rod = mf.Manifold.cylinder(length, diameter / 2.0, diameter / 2.0, segments)
    return _place(rod, frame_from_normal(b - a), a)


# ---------------------------------------------------------------------------------------------
# fabrication helpers


def connector_rod(
    a: trimesh.Trimesh,
    b: trimesh.Trimesh,
    point_a: np.ndarray,
    point_b: np.ndarray,
    *,
    diameter_mm: float = 5.0,
    embed_mm: float = 2.0,
) -> trimesh.Trimesh:
    """Join two parts with a round rod from ``point_a`` to ``point_b`` (each sunk ``embed_mm``)."""
    pa, pb = np.asarray(point_a, dtype=np.float64), np.asarray(point_b, dtype=np.float64)
    axis = _unit(pb - pa)
    rod = cylinder_between(pa - embed_mm * axis, pb + embed_mm * axis, diameter_mm)
    return from_manifold(
        mf.Manifold.batch_boolean([to_manifold(a), to_manifold(b), rod], mf.OpType.Add)
    )


def flat_base(
    mesh: trimesh.Trimesh,
    down: np.ndarray = (0.0, 0.0, -1.0),
    thickness_mm: float = 3.0,
    margin_mm: float = 2.0,
    cut_mm: float = 0.0,
) -> trimesh.Trimesh:
    """Add a flat plate under the model (the convex footprint plus a margin).

    ``down`` is the direction gravity will point on the build plate; ``cut_mm`` first trims
    that much off the lowest part so the plate meets a larger contact area.
    """
    down = _unit(down)
    rotation = frame_from_normal(-down)  # local z points up, away from the plate
    local = np.asarray(mesh.vertices) @ rotation
    bottom = float(local[:, 2].min())
    solid = to_manifold(mesh)
    if cut_mm > 0:
        solid = solid.trim_by_plane(tuple(-down), bottom + cut_mm)
        bottom += cut_mm
    near = local[local[:, 2] <= bottom + max(cut_mm, 1.0) + 5.0][:, :2]
    outline = mf.CrossSection.hull_points(near.tolist()).offset(margin_mm, mf.JoinType.Round)
    overlap = 0.5
    plate = mf.Manifold.extrude(outline, thickness_mm + overlap).translate(
        (0.0, 0.0, bottom - thickness_mm)
    )
    plate = _place(plate, rotation, np.zeros(3))
    return from_manifold(solid + plate)


def hollow(
    mesh: trimesh.Trimesh,
    wall_mm: float = 2.0,
    *,
    drain_holes: list[tuple[np.ndarray, np.ndarray]] | None = None,
    hole_diameter_mm: float = 4.0,
    voxel_mm: float | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> trimesh.Trimesh:
    """Hollow the solid leaving a wall of ``wall_mm``, plus drain holes.

    The inner surface is the ``wall_mm`` iso-surface of the distance to the outer surface,
    computed on a grid of ``voxel_mm`` (default ``wall_mm / 4``, at least 0.25 mm and coarser for
    big models; the grid values near the inner surface are exact distances).
    Each drain hole is ``(point on the surface, outward direction)``.
    """
    progress = ensure(progress)
    enable_vtk_threads()
    if wall_mm <= 0:
        msg = "the wall thickness must be positive; try 2 mm"
        raise MeshError(msg)
    outer = to_manifold(mesh)
    lo, hi = mesh.bounds
    pitch = voxel_mm or max(wall_mm / 4.0, float(np.max(hi - lo)) / 250.0, 0.25)
    inside, origin = _voxelize(mesh, pitch, pad=2, progress=progress.sub(0.0, 0.4), cancel=cancel)
    check_cancel(cancel)
    progress.update(0.5, "distance to the surface")
    depth = ndimage.distance_transform_edt(inside, sampling=pitch).astype(np.float32)
    _exact_band(depth, mesh, origin, pitch, wall_mm)
    inner = _iso_surface(
        depth, origin, pitch, wall_mm, progress=progress.sub(0.5, 0.8), cancel=cancel
    )
    if len(inner.faces) == 0:
        msg = f"the model is thinner than twice {wall_mm} mm everywhere; it is solid already"
        raise MeshError(msg)
    result = outer - to_manifold(inner)
    for point, direction in drain_holes or []:
        d = _unit(direction)
        p = np.asarray(point, dtype=np.float64)
        result = result - cylinder_between(
            p + 2.0 * d, p - (wall_mm * 3.0 + 2.0) * d, hole_diameter_mm
        )
    progress.update(1.0, "hollowed")
    return from_manifold(result)


def _exact_band(
    depth: np.ndarray, mesh: trimesh.Trimesh, origin: np.ndarray, pitch: float, level: float
) -> None:
    """Replace the voxel distance by the exact distance to the surface near the iso level."""
    band = np.nonzero((depth > level - 2 * pitch) & (depth < level + 2 * pitch))
    points = origin + pitch * np.stack([band[2], band[1], band[0]], axis=1)
    depth[band] = distances_to_surface(points, mesh)


def _voxelize(
    mesh: trimesh.Trimesh,
    pitch: float,
    pad: int,
    progress: Progress,
    cancel: CancelToken | None,
    *,
    half_step: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Inside mask ``[k, j, i]`` of a closed surface on an axis-aligned grid, and its origin.

    ``half_step`` moves the grid by half a voxel so flat faces at the model's bounds (a flat
    bottom) fall between grid points instead of on them (where the sampling is ragged).
    """
    lo, hi = mesh.bounds
    origin = lo - (pad - 0.5 * half_step) * pitch
    dims = np.ceil((hi - lo) / pitch).astype(int) + 2 * pad + 1
    if np.prod(dims) > 400_000_000:
        msg = "the model is too large to hollow at this resolution; give a larger voxel size"
        raise MeshError(msg)
    stencil = vtk.vtkPolyDataToImageStencil()
    stencil.SetInputData(to_polydata(mesh))
    stencil.SetOutputOrigin(*origin)
    stencil.SetOutputSpacing(pitch, pitch, pitch)
    stencil.SetOutputWholeExtent(0, dims[0] - 1, 0, dims[1] - 1, 0, dims[2] - 1)
    blank = vtk.vtkImageData()
    blank.SetDimensions(*dims)
    blank.SetOrigin(*origin)
    blank.SetSpacing(pitch, pitch, pitch)
    blank.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    blank.GetPointData().GetScalars().Fill(1)
    to_image = vtk.vtkImageStencil()
    to_image.SetInputData(blank)
    to_image.SetStencilConnection(stencil.GetOutputPort())
    to_image.ReverseStencilOff()
    to_image.SetBackgroundValue(0)
    run_filter(to_image, progress=progress, cancel=cancel, message="voxelizing")
    flat = numpy_support.vtk_to_numpy(to_image.GetOutput().GetPointData().GetScalars())
    return flat.reshape(dims[2], dims[1], dims[0]).astype(bool), origin


def _iso_surface(
    field: np.ndarray,
    origin: np.ndarray,
    pitch: float,
    level: float,
    *,
    progress: Progress,
    cancel: CancelToken | None,
) -> trimesh.Trimesh:
    image = vtk.vtkImageData()
    nk, nj, ni = field.shape
    image.SetDimensions(ni, nj, nk)
    image.SetOrigin(*origin)
    image.SetSpacing(pitch, pitch, pitch)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(field.ravel(), deep=True))
    algo = vtk.vtkFlyingEdges3D()
    algo.SetInputData(image)
    algo.SetValue(0, level)
    algo.ComputeNormalsOff()
    algo.ComputeGradientsOff()
    algo.ComputeScalarsOff()
    run_filter(algo, progress=progress, cancel=cancel, message="inner surface")
    surface = from_polydata(algo.GetOutput())
    if len(surface.faces) and signed_volume(surface) < 0:  # field grows inward: faces point in
        surface = make_mesh(surface.vertices, np.asarray(surface.faces)[:, ::-1])
    return surface


# ---------------------------------------------------------------------------------------------
# measurements


@dataclass
class Measurements:
    """Volume (mm³), area (mm²) and the axis-aligned bounding box in LPS mm."""

    volume_mm3: float
    area_mm2: float
    bbox_min: list[float]
    bbox_max: list[float]
    size_mm: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def measure(mesh: trimesh.Trimesh) -> Measurements:
    lo, hi = np.asarray(mesh.vertices).min(axis=0), np.asarray(mesh.vertices).max(axis=0)
    return Measurements(
        volume_mm3=signed_volume(mesh),
        area_mm2=surface_area(mesh),
        bbox_min=lo.tolist(),
        bbox_max=hi.tolist(),
        size_mm=(hi - lo).tolist(),
    )


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Straight-line distance between two points, in mm."""
    return float(np.linalg.norm(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)))

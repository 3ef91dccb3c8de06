"""Mesh plumbing shared by the mesh tools: VTK <-> numpy, filters with progress, topology checks.

Every mesh the tools pass around is a :class:`trimesh.Trimesh` in patient LPS millimetres with
outward-facing triangles (counter-clockwise seen from outside). ``process=False`` everywhere: a
tool never merges or reorders vertices behind the caller's back.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from vtkmodules.util import numpy_support

from app.errors import Cancelled, MeshError
from app.progress import CancelToken, Progress
from app.tools.mesh import _vtk as vtk

_SMP_LOCK = threading.Lock()
_SMP_READY = False


def enable_vtk_threads() -> None:
    """Run VTK's SMP filters on threads (the pip wheel defaults to the sequential backend)."""
    global _SMP_READY  # noqa: PLW0603 (one process-wide switch)
    with _SMP_LOCK:
        if not _SMP_READY:
            vtk.vtkSMPTools.SetBackend("STDThread")
            vtk.vtkSMPTools.Initialize(0)
            _SMP_READY = True


def make_mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A Trimesh over float64 vertices and int64 faces, without any processing."""
    return trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64),
        faces=np.asarray(faces, dtype=np.int64).reshape(-1, 3),
        process=False,
        validate=False,
    )


def to_polydata(mesh: trimesh.Trimesh) -> vtk.vtkPolyData:
    """A vtkPolyData of triangles sharing nothing mutable with ``mesh``."""
    poly = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(mesh.vertices), deep=True))
    poly.SetPoints(points)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    offsets = np.arange(0, 3 * len(faces) + 1, 3, dtype=np.int64)
    cells = vtk.vtkCellArray()
    cells.SetData(
        numpy_support.numpy_to_vtkIdTypeArray(offsets, deep=True),
        numpy_support.numpy_to_vtkIdTypeArray(np.ascontiguousarray(faces.ravel()), deep=True),
    )
    poly.SetPolys(cells)
    return poly


def from_polydata(poly: vtk.vtkPolyData) -> trimesh.Trimesh:
    """Triangles of ``poly`` as a Trimesh (polygons with more corners are triangulated first)."""
    if poly.GetNumberOfPoints() == 0 or poly.GetNumberOfPolys() == 0:
        return make_mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    polys = poly.GetPolys()
    if polys.IsHomogeneous() != 3:
        tri = vtk.vtkTriangleFilter()
        tri.SetInputData(poly)
        tri.PassLinesOff()
        tri.PassVertsOff()
        tri.Update()
        poly = tri.GetOutput()
        polys = poly.GetPolys()
    vertices = numpy_support.vtk_to_numpy(poly.GetPoints().GetData()).astype(np.float64)
    conn = numpy_support.vtk_to_numpy(polys.GetConnectivityArray()).astype(np.int64)
    return make_mesh(vertices, conn.reshape(-1, 3))


def run_filter(
    algorithm: vtk.vtkAlgorithm,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    message: str = "",
) -> None:
    """``algorithm.Update()`` with VTK progress forwarded and the cancel token polled.

    VTK errors become :class:`MeshError`; a cancel request aborts the filter and raises
    :class:`Cancelled`.
    """
    errors: list[str] = []

    def on_progress(caller, _event) -> None:
        if progress is not None:
            progress.update(caller.GetProgress(), message)
        if cancel is not None and cancel.cancelled:
            caller.SetAbortExecute(1)

    def on_error(_caller, _event, text: str = "") -> None:
        errors.append(str(text))

    on_error.CallDataType = vtk.VTK_STRING  # type: ignore[attr-defined]
    tags = [
        algorithm.AddObserver(vtk.vtkCommand.ProgressEvent, on_progress),
        algorithm.AddObserver(vtk.vtkCommand.ErrorEvent, on_error),
    ]
    try:
        algorithm.Update()
    finally:
        for tag in tags:
            algorithm.RemoveObserver(tag)
    if cancel is not None and cancel.cancelled:
        msg = "cancelled by the user; nothing was changed"
        raise Cancelled(msg)
    if errors:
        msg = f"{algorithm.GetClassName()} failed: {errors[0].strip()}; check the input mesh"
        raise MeshError(msg)


# ---------------------------------------------------------------------------------------------
# topology


@dataclass
class Topology:
    """Closedness and manifoldness of a triangle mesh, counted after merging equal vertices."""

    vertices: int
    faces: int
    components: int
    boundary_edges: int
    nonmanifold_edges: int
    nonmanifold_vertices: int
    inconsistent_edges: int
    degenerate_faces: int

    @property
    def watertight(self) -> bool:
        return self.boundary_edges == 0 and self.nonmanifold_edges == 0

    @property
    def manifold(self) -> bool:
        return (
            self.nonmanifold_edges == 0
            and self.nonmanifold_vertices == 0
            and self.inconsistent_edges == 0
            and self.degenerate_faces == 0
        )

    @property
    def closed_manifold(self) -> bool:
        return self.watertight and self.manifold

    def to_dict(self) -> dict:
        return dict(asdict(self), watertight=self.watertight, manifold=self.manifold)


def merge_float32(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices that are equal once stored as float32, the way a slicer reads an STL."""
    v32 = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32))
    keys = v32.view(np.dtype((np.void, 12))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return v32[first].astype(np.float64), inverse.reshape(-1)[np.asarray(faces, dtype=np.int64)]


def topology(mesh: trimesh.Trimesh, *, as_stl: bool = True) -> Topology:
    """Count what keeps ``mesh`` from being a closed, oriented 2-manifold.

    With ``as_stl`` the vertices are first merged as float32 positions, which is how PrusaSlicer,
    Cura and every STL reader rebuild the connectivity: two vertices that coincide there are
    one vertex, even if the mesh kept them apart.
    """
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    if as_stl:
        vertices, faces = merge_float32(vertices, faces)
    if len(faces) == 0:
        return Topology(len(vertices), 0, 0, 0, 0, 0, 0, 0)
    degenerate = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    )
    if degenerate.all():
        return Topology(0, len(faces), 0, 0, 0, 0, 0, int(degenerate.sum()))
    return inspect_faces(faces[~degenerate], degenerate=int(degenerate.sum()))[0]


def inspect_faces(faces: np.ndarray, *, degenerate: int = 0) -> tuple[Topology, np.ndarray]:
    """The :class:`Topology` of non-degenerate, welded ``faces`` (plus ``degenerate`` faces
    left out by the caller) and their defect vertices (see :func:`defect_vertices`), from one
    pass over the edges."""
    faces = np.asarray(faces, dtype=np.int64)
    n_vertices = int(faces.max()) + 1
    edges, directed_sign, face_of_edge = _half_edges(faces)
    key = edges[:, 0] * n_vertices + edges[:, 1]
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    # an interior edge is consistently oriented when its two half-edges run opposite ways
    sign_sum = np.bincount(inverse, weights=directed_sign, minlength=len(counts))
    flipped = (counts == 2) & (sign_sum != 0)
    pinch = _nonmanifold_vertices(faces, edges, inverse, counts[inverse], face_of_edge)
    bad_edge = (counts != 2) | flipped
    defects = _sorted_unique(np.concatenate([edges[bad_edge[inverse]].ravel(), pinch]))
    topo = Topology(
        vertices=int(np.count_nonzero(np.bincount(faces.ravel()))),
        faces=len(faces) + degenerate,
        components=int(_edge_linked(len(faces), inverse).max()) + 1,
        boundary_edges=int(np.sum(counts == 1)),
        nonmanifold_edges=int(np.sum(counts > 2)),
        nonmanifold_vertices=len(pinch),
        inconsistent_edges=int(np.sum(flipped)),
        degenerate_faces=degenerate,
    )
    return topo, defects


def _half_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected edges (sorted pairs) of each face corner, the direction sign and face index."""
    directed = np.stack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], axis=1).reshape(
        -1, 2
    )
    sign = np.where(directed[:, 0] < directed[:, 1], 1.0, -1.0)
    face_of_edge = np.repeat(np.arange(len(faces)), 3)
    return np.sort(directed, axis=1), sign, face_of_edge


def _edge_linked(n_faces: int, inverse: np.ndarray) -> np.ndarray:
    """Component of each face, faces joined through shared edges; ``inverse`` is the edge of
    each half-edge (three per face, in face order). Faces sharing an edge are linked in a
    chain, no face-by-face product is formed."""
    order = np.argsort(inverse, kind="stable")
    same = inverse[order[1:]] == inverse[order[:-1]]
    a, b = order[:-1][same] // 3, order[1:][same] // 3
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n_faces, n_faces))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def vertex_clusters(faces: np.ndarray) -> np.ndarray:
    """The cluster of each face, faces joined through shared vertices (so parts that touch at
    one vertex are one cluster)."""
    faces = np.asarray(faces, dtype=np.int64)
    n_faces = len(faces)
    if n_faces == 0:
        return np.zeros(0, dtype=np.int64)
    n = n_faces + int(faces.max()) + 1
    rows = np.repeat(np.arange(n_faces), 3)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, n_faces + faces.ravel())), (n, n))
    _, labels = connected_components(graph, directed=False)
    _, labels = np.unique(labels[:n_faces], return_inverse=True)
    return labels.astype(np.int64)


def _nonmanifold_vertices(
    faces: np.ndarray,
    edges: np.ndarray,
    inverse: np.ndarray,
    edge_count: np.ndarray,
    face_of_edge: np.ndarray,
) -> np.ndarray:
    """Vertices whose incident faces form more than one fan (pinch points, bow ties)."""
    n_faces = len(faces)
    # a corner is (face, vertex); corners around the same vertex join across a shared edge
    corner = np.arange(3 * n_faces).reshape(n_faces, 3)
    vertex_of_corner = faces.ravel()
    order = np.argsort(inverse, kind="stable")
    pairs = order[edge_count[order] == 2].reshape(-1, 2)  # the two half-edges of each edge
    rows, cols = [], []
    for end in (0, 1):
        vertex = edges[pairs[:, 0], end]
        f0, f1 = face_of_edge[pairs[:, 0]], face_of_edge[pairs[:, 1]]
        c0 = corner[f0, np.argmax(faces[f0] == vertex[:, None], axis=1)]
        c1 = corner[f1, np.argmax(faces[f1] == vertex[:, None], axis=1)]
        rows.append(c0)
        cols.append(c1)
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows_a)), (rows_a, cols_a)), shape=(3 * n_faces, 3 * n_faces))
    _, labels = connected_components(graph, directed=False)
    n_labels = int(labels.max()) + 1
    fans = _sorted_unique(vertex_of_corner * n_labels + labels)
    fans_per_vertex = np.bincount(fans // n_labels)
    return np.flatnonzero(fans_per_vertex > 1)


def defect_vertices(faces: np.ndarray, *, boundary: bool = True) -> np.ndarray:
    """Vertices on boundary, non-manifold or flipped edges, and pinch vertices (welded input)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    n_vertices = int(faces.max()) + 1
    edges, sign, face_of_edge = _half_edges(faces)
    _, inverse, counts = np.unique(
        edges[:, 0] * n_vertices + edges[:, 1], return_inverse=True, return_counts=True
    )
    sign_sum = np.bincount(inverse, weights=sign, minlength=len(counts))
    bad_edge = (counts > 2) | ((counts == 2) & (sign_sum != 0))
    if boundary:
        bad_edge |= counts == 1
    on_bad_edge = edges[bad_edge[inverse]].ravel()
    pinch = _nonmanifold_vertices(faces, edges, inverse, counts[inverse], face_of_edge)
    return _sorted_unique(np.concatenate([on_bad_edge, pinch]))


def signed_volume(mesh: trimesh.Trimesh) -> float:
    """Enclosed volume in mm³ (positive when the triangles face outward)."""
    v = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


def surface_area(mesh: trimesh.Trimesh) -> float:
    v = np.asarray(mesh.vertices)[np.asarray(mesh.faces)]
    return float(0.5 * np.linalg.norm(np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]), axis=1).sum())


def split_components(mesh: trimesh.Trimesh) -> list[trimesh.Trimesh]:
    """Edge-connected components, each with its own compact vertex array."""
    return split_by_labels(mesh, component_labels(mesh.faces))


def split_by_labels(mesh: trimesh.Trimesh, labels: np.ndarray) -> list[trimesh.Trimesh]:
    """One submesh per face label 0, 1, ... (in label order)."""
    if len(labels) == 0:
        return []
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(int(labels.max()) + 2))
    return [submesh(mesh, order[a:b]) for a, b in itertools.pairwise(bounds)]


def component_labels(faces: np.ndarray) -> np.ndarray:
    """The edge-connected component of each face (0, 1, ...)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    edges, _, _ = _half_edges(faces)
    n_v = int(faces.max()) + 1
    _, inverse = np.unique(edges[:, 0] * n_v + edges[:, 1], return_inverse=True)
    return _edge_linked(len(faces), inverse)


def submesh(mesh: trimesh.Trimesh, face_index: np.ndarray) -> trimesh.Trimesh:
    faces = np.asarray(mesh.faces)[face_index]
    used, inverse = np.unique(faces, return_inverse=True)
    return make_mesh(np.asarray(mesh.vertices)[used], inverse.reshape(-1, 3))


def concatenate(meshes: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """One mesh holding all of ``meshes`` (vertices not merged)."""
    vertices, faces, offset = [], [], 0
    for m in meshes:
        vertices.append(np.asarray(m.vertices))
        faces.append(np.asarray(m.faces, dtype=np.int64) + offset)
        offset += len(m.vertices)
    if not vertices:
        return make_mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    return make_mesh(np.concatenate(vertices), np.concatenate(faces))


# ---------------------------------------------------------------------------------------------
# self-intersections


def self_intersecting_faces(
    mesh: trimesh.Trimesh, *, only: np.ndarray | None = None, chunk: int = 1_000_000
) -> np.ndarray:
    """Indices of triangles that properly cross another triangle (sharing no vertex with it).

    Candidate pairs come from a uniform grid over the triangles' bounding boxes, generated and
    tested ``chunk`` pairs at a time so memory stays bounded; each pair whose boxes overlap
    gets the exact interval-overlap test of Möller (1997). Touching or coplanar contacts are
    not counted. ``only`` (face indices) restricts the search to crossings involving those
    faces, e.g. just after a local edit.
    """
    vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    if len(faces) < 2:
        return np.zeros(0, dtype=np.int64)
    tri = vertices[faces]
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    subset = None if only is None else _boxes_near(lo, hi, np.asarray(only, dtype=np.int64))
    focus = None
    if subset is not None:
        focus = np.zeros(len(faces), dtype=bool)
        focus[only] = True
    hits = []
    for candidates in _box_pairs(lo, hi, subset=subset, chunk=chunk):
        hits.append(_crossing(candidates, faces, tri, focus))
    return _sorted_unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)


def _crossing(
    pairs: np.ndarray, faces: np.ndarray, tri: np.ndarray, focus: np.ndarray | None
) -> np.ndarray:
    """Faces of the ``pairs`` that cross (pairs sharing a vertex never count)."""
    if focus is not None:
        pairs = pairs[focus[pairs[:, 0]] | focus[pairs[:, 1]]]
    shared = (faces[pairs[:, 0]][:, :, None] == faces[pairs[:, 1]][:, None, :]).any(axis=(1, 2))
    pairs = pairs[~shared]
    return pairs[_tri_tri(tri[pairs[:, 0]], tri[pairs[:, 1]])].ravel()


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (plain sort; numpy's hash-based unique is slow on big int64)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _boxes_near(lo: np.ndarray, hi: np.ndarray, only: np.ndarray) -> np.ndarray:
    """``only`` and every box that may overlap one of them (a k-d tree on the box centres)."""
    if len(only) == 0:
        return only
    from scipy.spatial import cKDTree  # noqa: PLC0415

    centre = (lo + hi) / 2.0
    half = np.linalg.norm(hi - lo, axis=1) / 2.0
    near = cKDTree(centre).query_ball_point(centre[only], half[only] + half.max())
    return _sorted_unique(np.concatenate([only, *[np.asarray(n, dtype=np.int64) for n in near]]))


def _box_pairs(
    lo: np.ndarray, hi: np.ndarray, *, subset: np.ndarray | None = None, chunk: int = 1_000_000
) -> Iterator[np.ndarray]:
    """Index pairs (i, j) of boxes that overlap, each pair once, about ``chunk`` at a time.

    Every box is entered in the grid cells it covers (cells twice the median box size); two
    boxes pair in the one cell that holds the lower corner of their intersection. The rare
    box covering more than 64 cells is tested against all boxes directly.
    """
    ids = np.arange(len(lo)) if subset is None else np.asarray(subset, dtype=np.int64)
    if len(ids) < 2:
        return
    blo, bhi = lo[ids], hi[ids]
    cell = float(np.median(np.max(bhi - blo, axis=1))) * 2.0 or 1.0
    base = blo.min(axis=0)
    first = np.floor((blo - base) / cell).astype(np.int64)
    span = np.floor((bhi - base) / cell).astype(np.int64) - first + 1
    count = span.prod(axis=1)
    huge = count > 64
    yield from _huge_pairs(blo, bhi, np.flatnonzero(huge), ids, chunk)
    box = np.repeat(np.flatnonzero(~huge), count[~huge])
    rank = np.arange(len(box)) - np.repeat(np.cumsum(count[~huge]) - count[~huge], count[~huge])
    sx, sy = span[box, 0], span[box, 1]
    coords = first[box] + np.column_stack([rank % sx, (rank // sx) % sy, rank // (sx * sy)])
    dims = coords.max(axis=0) + 1
    key = (coords[:, 0] * dims[1] + coords[:, 1]) * dims[2] + coords[:, 2]
    order = np.argsort(key, kind="stable")
    key, box = key[order], box[order]
    del coords, rank, sx, sy, order
    end = np.searchsorted(key, key, side="right")  # one past the last entry of each cell
    followers = end - np.arange(len(key)) - 1
    total = np.cumsum(followers)
    start = 0
    while start < len(key):
        stop = int(np.searchsorted(total, (total[start - 1] if start else 0) + chunk)) + 1
        stop = min(max(stop, start + 1), len(key))
        a = np.repeat(np.arange(start, stop), followers[start:stop])
        b = (
            a
            + 1
            + np.arange(len(a))
            - np.repeat(
                np.cumsum(followers[start:stop]) - followers[start:stop], followers[start:stop]
            )
        )
        i, j = box[a], box[b]
        overlap = np.all(blo[i] <= bhi[j], axis=1) & np.all(bhi[i] >= blo[j], axis=1)
        i, j, cell_key = i[overlap], j[overlap], key[a[overlap]]
        corner = np.floor((np.maximum(blo[i], blo[j]) - base) / cell).astype(np.int64)
        home = (corner[:, 0] * dims[1] + corner[:, 1]) * dims[2] + corner[:, 2] == cell_key
        yield np.column_stack([ids[i[home]], ids[j[home]]])
        start = stop


def _huge_pairs(
    lo: np.ndarray, hi: np.ndarray, huge: np.ndarray, ids: np.ndarray, chunk: int
) -> Iterator[np.ndarray]:
    """Pairs of each huge box with every box it overlaps (each pair once)."""
    is_huge = np.zeros(len(lo), dtype=bool)
    is_huge[huge] = True
    step = max(1, chunk // max(len(lo), 1))
    for begin in range(0, len(huge), step):
        h = huge[begin : begin + step]
        overlap = np.all(lo[h, None] <= hi[None], axis=2) & np.all(hi[h, None] >= lo[None], axis=2)
        rows, cols = np.nonzero(overlap)
        keep = (cols != h[rows]) & (~is_huge[cols] | (cols > h[rows]))
        yield np.column_stack([ids[h[rows[keep]]], ids[cols[keep]]])


def _tri_tri(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised triangle-triangle crossing test for pairs ``a[n]``, ``b[n]`` (n, 3, 3)."""
    na = np.cross(a[:, 1] - a[:, 0], a[:, 2] - a[:, 0])
    nb = np.cross(b[:, 1] - b[:, 0], b[:, 2] - b[:, 0])
    db = np.einsum("nij,nj->ni", b - a[:, :1], na)  # b's corners vs a's plane
    da = np.einsum("nij,nj->ni", a - b[:, :1], nb)
    scale_a = np.linalg.norm(na, axis=1)[:, None] * 1e-9
    scale_b = np.linalg.norm(nb, axis=1)[:, None] * 1e-9
    db = np.where(np.abs(db) < scale_a, 0.0, db)
    da = np.where(np.abs(da) < scale_b, 0.0, da)
    straddle_b = ~(np.all(db > 0, axis=1) | np.all(db < 0, axis=1))
    straddle_a = ~(np.all(da > 0, axis=1) | np.all(da < 0, axis=1))
    coplanar = np.all(db == 0, axis=1)
    ok = straddle_a & straddle_b & ~coplanar
    line = np.cross(na, nb)
    ia = _interval(a, da, line)
    ib = _interval(b, db, line)
    overlap = (np.minimum(ia[:, 1], ib[:, 1]) - np.maximum(ia[:, 0], ib[:, 0])) > 1e-9 * (
        np.abs(ia).max(axis=1) + np.abs(ib).max(axis=1) + 1.0
    )
    return ok & overlap


def _interval(t: np.ndarray, d: np.ndarray, line: np.ndarray) -> np.ndarray:
    """Where triangle ``t`` (signed corner distances ``d`` to the other plane) meets the line."""
    p = np.einsum("nij,nj->ni", t, line)
    out = np.full((len(t), 2), np.nan)
    points = []
    for i, j in ((0, 1), (1, 2), (2, 0)):
        cross = d[:, i] * d[:, j] < 0
        s = np.divide(d[:, i], d[:, i] - d[:, j], out=np.zeros(len(t)), where=cross)
        points.append(np.where(cross, p[:, i] + s * (p[:, j] - p[:, i]), np.nan))
    for i in range(3):
        points.append(np.where(d[:, i] == 0, p[:, i], np.nan))
    stack = np.stack(points, axis=1)
    with np.errstate(all="ignore"):
        out[:, 0] = np.nanmin(np.where(np.isnan(stack), np.inf, stack), axis=1)
        out[:, 1] = np.nanmax(np.where(np.isnan(stack), -np.inf, stack), axis=1)
    return out


def first_unique_rows(rows: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row (sorted by index)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    # among equal rows keep the smallest original index
    group = np.cumsum(new) - 1
    first = np.full(group[-1] + 1, len(rows), dtype=np.int64)
    np.minimum.at(first, group, order)
    return np.sort(first)

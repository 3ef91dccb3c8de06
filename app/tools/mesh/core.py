"""Mesh plumbing shared by the mesh tools: VTK <-> numpy, filters with progress, topology checks.

Every mesh the tools pass around is a :class:`trimesh.Trimesh` in patient LPS millimetres with
outward-facing triangles (counter-clockwise seen from outside). ``process=False`` everywhere: a
tool never merges or reorders vertices behind the caller's back.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    v32 = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32)).reshape(-1, 3)
    if len(v32) == 0:
        return v32.astype(np.float64), np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    bits = v32.view(np.uint32).astype(np.uint64)  # equal bit patterns: the same vertex
    high, low = (bits[:, 0] << np.uint64(32)) | bits[:, 1], bits[:, 2]
    order = np.lexsort((low, high))
    high, low = high[order], low[order]
    new = np.concatenate([[True], (high[1:] != high[:-1]) | (low[1:] != low[:-1])])
    inverse = np.empty(len(v32), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return v32[order[new]].astype(np.float64), inverse[np.asarray(faces, dtype=np.int64)]


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
    table = _Edges.of(faces)
    pinch = _nonmanifold_vertices(faces, table)
    bad_edge = (table.counts != 2) | table.flipped
    defects = _sorted_unique(np.concatenate([table.edges[bad_edge[table.inverse]].ravel(), pinch]))
    topo = Topology(
        vertices=int(np.count_nonzero(np.bincount(faces.ravel()))),
        faces=len(faces) + degenerate,
        components=int(_edge_linked(len(faces), table).max()) + 1,
        boundary_edges=int(np.sum(table.counts == 1)),
        nonmanifold_edges=int(np.sum(table.counts > 2)),
        nonmanifold_vertices=len(pinch),
        inconsistent_edges=int(np.sum(table.flipped)),
        degenerate_faces=degenerate,
    )
    return topo, defects


@dataclass
class _Edges:
    """Every face's three half-edges, grouped by undirected edge with one sort.

    Half-edge ``h = 3 f + i`` runs from corner ``i`` of face ``f`` to the next corner;
    ``edges[h]`` is its vertex pair sorted, ``order`` the half-edges sorted by edge,
    ``inverse[h]`` its edge, ``counts[e]`` the half-edges of edge ``e`` and ``flipped[e]``
    whether its two faces disagree on orientation.
    """

    edges: np.ndarray
    order: np.ndarray
    inverse: np.ndarray
    counts: np.ndarray
    flipped: np.ndarray

    @classmethod
    def of(cls, faces: np.ndarray) -> _Edges:
        start = faces.ravel()  # a view: half-edge h starts at corner h
        end = faces[:, [1, 2, 0]].ravel()
        up = start < end
        edges = np.empty((len(start), 2), dtype=np.int64)
        np.minimum(start, end, out=edges[:, 0])
        np.maximum(start, end, out=edges[:, 1])
        del end
        key = edges[:, 0] * (int(edges[:, 1].max()) + 1)
        key += edges[:, 1]
        order = np.argsort(key, kind="stable")
        key = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        del key
        counts = np.diff(np.append(starts, len(start)))
        inverse = np.empty(len(start), dtype=np.int64)
        inverse[order] = np.repeat(np.arange(len(starts)), counts)
        # an interior edge is consistently oriented when one of its half-edges runs up
        ups = np.bincount(inverse[up], minlength=len(counts))
        return cls(edges, order, inverse, counts, (counts == 2) & (ups != 1))


def _edge_linked(n_faces: int, table: _Edges) -> np.ndarray:
    """Component of each face, faces joined through shared edges. Faces sharing an edge are
    linked in a chain, no face-by-face product is formed."""
    order, inverse = table.order, table.inverse
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
    labels = labels[:n_faces]
    used = np.zeros(int(labels.max()) + 1, dtype=bool)
    used[labels] = True  # clusters of unused vertices alone are left out: number the rest
    return (np.cumsum(used) - 1)[labels]


def _nonmanifold_vertices(faces: np.ndarray, table: _Edges) -> np.ndarray:
    """Vertices whose incident faces form more than one fan (pinch points, bow ties).

    Around a vertex whose every edge is shared by two consistently oriented faces, stepping
    from each face across its edge leaving the vertex is a permutation of the vertex's
    corners, one cycle per fan: cycles are counted by pointer jumping (a few passes over the
    corners). Vertices on other edges are rare; their corners are joined as a graph.
    """
    order, inverse = table.order, table.inverse
    pairs = order[table.counts[inverse[order]] == 2].reshape(-1, 2)  # the two half-edges
    bad_edge = ((table.counts != 2) | table.flipped)[inverse]
    dirty = np.zeros(int(faces.max()) + 1, dtype=bool)
    dirty[table.edges[bad_edge].ravel()] = True
    clean = _pinches_by_rotation(faces, pairs, dirty)
    messy = _pinches_by_graph(faces, table.edges, pairs, dirty)
    return np.union1d(clean, messy)


def _corner_of(faces: np.ndarray, face: np.ndarray, vertex: np.ndarray) -> np.ndarray:
    return 3 * face + np.argmax(faces[face] == vertex[:, None], axis=1)


def _pinches_by_rotation(faces: np.ndarray, pairs: np.ndarray, dirty: np.ndarray) -> np.ndarray:
    """Pinch vertices among those not ``dirty`` (every edge two-sided and consistent)."""
    n = 3 * len(faces)
    vertex_of_corner = faces.ravel()
    step = np.arange(n)
    # half-edge h = 3f + i leaves corner h's vertex; its twin's face holds the next corner
    for h, twin in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        # the twin runs between the same two vertices: h's start is its start or its end
        end = twin - twin % 3 + (twin % 3 + 1) % 3
        step[h] = np.where(vertex_of_corner[twin] == vertex_of_corner[h], twin, end)
    label = np.arange(n)
    valence = int(np.bincount(vertex_of_corner).max())
    for _ in range(max(1, int(np.ceil(np.log2(valence + 1))))):
        np.minimum(label, label[step], out=label)
        step = step[step]
    first = (label == np.arange(n)) & ~dirty[vertex_of_corner]
    return np.flatnonzero(np.bincount(vertex_of_corner[first], minlength=len(dirty)) > 1)


def _pinches_by_graph(
    faces: np.ndarray, edges: np.ndarray, pairs: np.ndarray, dirty: np.ndarray
) -> np.ndarray:
    """Pinch vertices among the ``dirty`` ones: their corners joined across two-sided edges."""
    if not dirty.any():
        return np.zeros(0, dtype=np.int64)
    rows, cols = [], []
    for end in (0, 1):
        vertex = edges[pairs[:, 0], end]
        near = dirty[vertex]
        f0, f1 = pairs[near, 0] // 3, pairs[near, 1] // 3
        rows.append(_corner_of(faces, f0, vertex[near]))
        cols.append(_corner_of(faces, f1, vertex[near]))
    n = 3 * len(faces)
    graph = coo_matrix(
        (np.ones(sum(len(r) for r in rows)), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    _, labels = connected_components(graph, directed=False)
    vertex_of_corner = faces.ravel()
    corners = np.flatnonzero(dirty[vertex_of_corner])
    n_labels = int(labels.max()) + 1
    fans = _sorted_unique(vertex_of_corner[corners] * n_labels + labels[corners])
    return np.flatnonzero(np.bincount(fans // n_labels) > 1)


def defect_vertices(faces: np.ndarray, *, boundary: bool = True) -> np.ndarray:
    """Vertices on boundary, non-manifold or flipped edges, and pinch vertices (welded input)."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    table = _Edges.of(faces)
    bad_edge = (table.counts > 2) | table.flipped
    if boundary:
        bad_edge |= table.counts == 1
    on_bad_edge = table.edges[bad_edge[table.inverse]].ravel()
    pinch = _nonmanifold_vertices(faces, table)
    return _sorted_unique(np.concatenate([on_bad_edge, pinch]))


def signed_volume(mesh: trimesh.Trimesh) -> float:
    """Enclosed volume in mm³ (positive when the triangles face outward)."""
    return float(triple_products(mesh.vertices, mesh.faces).sum() / 6.0)


def triple_products(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``a · (b × c)`` of each triangle's corners: six times the signed volume of the
    tetrahedron it spans with the origin."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = _corner_columns(vertices, faces)
    # ax (by cz - bz cy) + ay (bz cx - bx cz) + az (bx cy - by cx), in that order, in place
    total = np.zeros(len(ax))
    for a, (b, c), (d, e) in ((ax, (by, cz), (bz, cy)), (ay, (bz, cx), (bx, cz)),
                              (az, (bx, cy), (by, cx))):  # fmt: skip
        term = b * c
        term -= d * e
        term *= a
        total += term
    return total


def surface_area(mesh: trimesh.Trimesh) -> float:
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    a = vertices[faces[:, 0]]
    ab, ac = vertices[faces[:, 1]], vertices[faces[:, 2]]
    ab -= a
    ac -= a
    return float(0.5 * np.sqrt(cross_squared(ab, ac)).sum())


def cross_squared(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``|u × v|²`` row by row, component by component (as ``np.cross`` and a norm compute
    it, without their ``(n, 3)`` temporaries)."""
    total = np.zeros(len(u))
    for i, j in ((1, 2), (2, 0), (0, 1)):
        component = u[:, i] * v[:, j]
        component -= u[:, j] * v[:, i]
        component *= component
        total += component
    return total


def _corner_columns(vertices: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """x, y and z of each triangle's three corners, as contiguous columns (cheaper to gather
    and multiply than a copy of every triangle)."""
    vertices = np.asarray(vertices, dtype=np.float64)
    columns = [np.ascontiguousarray(vertices[:, k]) for k in range(3)]
    faces = np.asarray(faces)
    return [[column[faces[:, corner]] for column in columns] for corner in range(3)]


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
    return _edge_linked(len(faces), _Edges.of(faces))


def submesh(mesh: trimesh.Trimesh, face_index: np.ndarray) -> trimesh.Trimesh:
    return compact(np.asarray(mesh.vertices), np.asarray(mesh.faces)[face_index])


def compact(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """The mesh of ``faces`` with only the vertices they use, in their order (no sort)."""
    faces = np.asarray(faces, dtype=np.int64)
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    new_id = np.cumsum(used) - 1
    return make_mesh(np.asarray(vertices)[used], new_id[faces])


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
    mesh: trimesh.Trimesh,
    *,
    only: np.ndarray | None = None,
    welded: bool = False,
    chunk: int = 400_000,
) -> np.ndarray:
    """Indices of triangles that properly cross another triangle (sharing no vertex with it).

    Candidate pairs come from the triangles' bounding boxes in a grid of columns swept along x
    (:class:`_BoxGrid`), generated and tested ``chunk`` pairs at a time so memory stays
    bounded (chunks run on every core); pairs sharing a vertex are dropped, and each pair
    left gets the exact interval-overlap test of Möller (1997). Touching or coplanar contacts
    are not counted. ``only`` (face indices) restricts the search to crossings involving those
    faces, e.g. just after a local edit. ``welded``: ``mesh`` already is merged as float32
    (see :func:`merge_float32`), so it is not merged again.
    """
    if welded:
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    else:
        vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    if len(faces) < 2:
        return np.zeros(0, dtype=np.int64)
    lo, hi = face_boxes(vertices, faces)
    subset = None if only is None else _boxes_near(lo, hi, np.asarray(only, dtype=np.int64))
    focus = None
    if subset is not None:
        focus = np.zeros(len(faces), dtype=bool)
        focus[only] = True
    grid = _BoxGrid.build(lo, hi, subset)
    del lo, hi
    if grid is None:
        return np.zeros(0, dtype=np.int64)
    corners = faces[grid.ids].astype(np.int32)  # the boxes' triangles, in the grid's order

    def crossing(boxes: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        i, j = _apart(corners, *boxes)
        pairs = np.column_stack([grid.ids[i], grid.ids[j]])
        return _crossing(pairs, faces, vertices, focus)

    hits = [crossing(pair) for pair in grid.huge_pairs()]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        hits.extend(pool.map(lambda r: crossing(grid.pairs(*r)), grid.ranges(chunk)))
    return _sorted_unique(np.concatenate(hits)) if hits else np.zeros(0, dtype=np.int64)


def face_boxes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's bounding box, corner by corner (no copy of every triangle)."""
    lo, hi = vertices[faces[:, 0]], vertices[faces[:, 0]]
    for corner in (1, 2):
        point = vertices[faces[:, corner]]
        np.minimum(lo, point, out=lo)
        np.maximum(hi, point, out=hi)
    return lo, hi


def _apart(corners: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs ``(i, j)`` of triangles (rows of ``corners``) that share no vertex: most
    overlapping boxes are neighbours'."""
    a, b = corners[i], corners[j]
    shared = a[:, 0] == b[:, 0]
    for p, q in itertools.product(range(3), range(3)):
        if p or q:
            shared |= a[:, p] == b[:, q]
    keep = ~shared
    return i[keep], j[keep]


def _crossing(
    pairs: np.ndarray, faces: np.ndarray, vertices: np.ndarray, focus: np.ndarray | None
) -> np.ndarray:
    """Faces of the ``pairs`` (sharing no vertex) that cross."""
    if focus is not None:
        pairs = pairs[focus[pairs[:, 0]] | focus[pairs[:, 1]]]
    first, second = vertices[faces[pairs[:, 0]]], vertices[faces[pairs[:, 1]]]
    return pairs[_tri_tri(first, second)].ravel()


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (plain sort; numpy's hash-based unique is slow on big int64)."""
    values = np.sort(values)
    if len(values) == 0:
        return values
    return values[np.concatenate([[True], values[1:] != values[:-1]])]


def _boxes_near(lo: np.ndarray, hi: np.ndarray, only: np.ndarray) -> np.ndarray:
    """``only`` and every box that may overlap one of them (a k-d tree on the box centres).

    Two boxes overlap only if their centres are closer than the sum of their half diagonals;
    the few boxes far larger than the typical one are always taken, so the search radius stays
    small for the rest.
    """
    if len(only) == 0:
        return only
    from scipy.spatial import cKDTree  # noqa: PLC0415

    centre = (lo + hi) / 2.0
    half = np.linalg.norm(hi - lo, axis=1) / 2.0
    limit = 4.0 * float(np.median(half))
    big = np.flatnonzero(half > limit)
    tree = cKDTree(centre, balanced_tree=False, compact_nodes=False)
    near = tree.query_ball_point(centre[only], half[only] + limit)
    return _sorted_unique(
        np.concatenate([only, big, *[np.asarray(n, dtype=np.int64) for n in near]])
    )


@dataclass
class _BoxGrid:
    """Boxes in a uniform grid of columns along x, swept along x, for finding overlapping pairs.

    Boxes are numbered by their low x. Every box is entered in the columns it covers (twice
    the median box size across, in y and z); sorting the entries by column keeps that order
    within a column, so an entry pairs with the following entries of its column up to the
    first that starts beyond its high x (``followers``): every such pair overlaps along x, and
    only y and z are tested (on the 536-slice mesh 7.8M candidates instead of the 12.9M of a
    3D grid). Two boxes pair in the one column that holds the lower corner of their
    intersection. The rare box covering more than 64 columns (``huge``) is tested against all
    boxes directly.
    """

    ids: np.ndarray  # the face of each box
    reach: np.ndarray  # box b overlaps along x only boxes numbered below reach[b]
    axes: list[tuple[np.ndarray, np.ndarray]]  # float32 (low, high) along x, y and z
    huge: np.ndarray
    first: np.ndarray  # the first cell of each box along each axis
    dims: np.ndarray
    key: np.ndarray  # the cell of each entry, sorted
    box: np.ndarray  # the box of each entry
    followers: np.ndarray

    @classmethod
    def build(cls, lo: np.ndarray, hi: np.ndarray, subset: np.ndarray | None) -> _BoxGrid | None:
        ids = np.arange(len(lo)) if subset is None else np.asarray(subset, dtype=np.int64)
        if len(ids) < 2:
            return None
        ids = ids[np.argsort(lo[ids, 0], kind="stable")]
        blo, bhi = lo[ids], hi[ids]
        reach = np.searchsorted(blo[:, 0], bhi[:, 0], side="right")
        extent = bhi - blo  # cells follow the typical box's shape (long on thick slices)
        cell = np.maximum(np.median(extent, axis=0) * 2.0, float(np.median(extent.max(axis=1))) / 8)
        cell = np.where(cell > 0, cell, 1.0)
        del extent
        base = blo.min(axis=0)
        cell[0] = bhi[:, 0].max() - base[0] + 1.0  # one column along x: the sweep sorts it
        first = np.floor((blo - base) / cell).astype(np.int64)
        span = np.floor((bhi - base) / cell).astype(np.int64) - first + 1
        count = span.prod(axis=1)
        huge = count > 64
        (key, dims), box = _cell_entries(first, span, count, ~huge)
        del span, count
        order = np.argsort(key, kind="stable")
        key, box = key[order], box[order]
        del order
        n = len(ids)
        rank = np.cumsum(np.concatenate([[0], key[1:] != key[:-1]]))  # cells numbered 0, 1, ...
        rank *= n
        packed = rank + box  # sorted: by cell, then by box
        rank += reach[box]
        followers = np.searchsorted(packed, rank) - np.arange(len(key)) - 1
        del rank, packed
        axes = [_outward_float32(blo[:, k], bhi[:, k]) for k in range(3)]
        return cls(ids, reach, axes, np.flatnonzero(huge), first.astype(np.int32), dims, key,
                   box, followers)  # fmt: skip

    def ranges(self, chunk: int) -> list[tuple[int, int]]:
        """Runs of entries that pair with about ``chunk`` followers in their cell."""
        total = np.cumsum(self.followers)
        out, start = [], 0
        while start < len(self.key):
            stop = int(np.searchsorted(total, (total[start - 1] if start else 0) + chunk)) + 1
            stop = min(max(stop, start + 1), len(self.key))
            out.append((start, stop))
            start = stop
        return out

    def pairs(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Box pairs (i, j) whose boxes overlap, each once, from entries start:stop."""
        followers = self.followers[start:stop]
        a = np.repeat(np.arange(start, stop), followers)
        b = a + 1 + np.arange(len(a)) - np.repeat(np.cumsum(followers) - followers, followers)
        i, j = self.box[a], self.box[b]
        del b
        for axis in (1, 2):  # x overlaps already; most pairs fail the next test
            lo, hi = self.axes[axis]
            keep = (lo[i] <= hi[j]) & (hi[i] >= lo[j])
            i, j, a = i[keep], j[keep], a[keep]
        home = np.maximum(self.first[i], self.first[j]).astype(np.int64)  # the intersection's
        key = (home[:, 0] * self.dims[1] + home[:, 1]) * self.dims[2] + home[:, 2]
        keep = key == self.key[a]
        return i[keep], j[keep]

    def huge_pairs(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pairs of each huge box with every box it overlaps (each pair once)."""
        is_huge = np.zeros(len(self.ids), dtype=bool)
        is_huge[self.huge] = True
        for h in self.huge:
            end = self.reach[h]  # the boxes starting before h ends along x
            keep = self.axes[0][1][:end] >= self.axes[0][0][h]
            for lo, hi in self.axes[1:]:
                keep &= (lo[:end] <= hi[h]) & (hi[:end] >= lo[h])
            other = np.flatnonzero(keep)
            other = other[(other != h) & (~is_huge[other] | (other > h))]
            yield np.full(len(other), h), other


def _cell_entries(
    first: np.ndarray, span: np.ndarray, count: np.ndarray, entered: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((cell key of every entry, grid dimensions), box of every entry): each ``entered`` box
    in each of the ``count`` cells it spans from cell ``first``, one axis at a time."""
    box = np.repeat(np.flatnonzero(entered).astype(np.int32), count[entered])
    rank = np.arange(len(box)) - np.repeat(
        np.cumsum(count[entered]) - count[entered], count[entered]
    )
    sx, sy = span[box, 0], span[box, 1]
    x = first[box, 0] + rank % sx
    y = first[box, 1] + (rank // sx) % sy
    rank //= sx * sy
    del sx, sy
    z = first[box, 2] + rank
    del rank
    dims = np.array([x.max(), y.max(), z.max()]) + 1 if len(box) else np.ones(3, dtype=np.int64)
    key = x
    key *= dims[1]
    key += y
    del y
    key *= dims[2]
    key += z
    return (key, dims), box


def _outward_float32(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32 > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32 < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32


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
    rows = np.asarray(rows, dtype=np.int64)
    if rows.shape[1] == 3 and rows.min() >= 0 and rows.max() < 1 << 21:
        key = (rows[:, 0] << 42) | (rows[:, 1] << 21) | rows[:, 2]  # one int64 per row
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        new = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        return np.sort(order[new])  # stable: the first of equal rows has the smallest index
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    new = np.concatenate([[True], np.any(ordered[1:] != ordered[:-1], axis=1)])
    # among equal rows keep the smallest original index
    group = np.cumsum(new) - 1
    first = np.full(group[-1] + 1, len(rows), dtype=np.int64)
    np.minimum.at(first, group, order)
    return np.sort(first)

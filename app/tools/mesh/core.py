"""Mesh plumbing shared by the mesh tools: VTK <-> numpy, filters with progress, topology checks.

Every mesh the tools pass around is a :class:`trimesh.Trimesh` in patient LPS millimetres with
outward-facing triangles (counter-clockwise seen from outside). ``process=False`` everywhere: a
tool never merges or reorders vertices behind the caller's back.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from vtkmodules.util import numpy_support

from app.errors import Cancelled, MeshError
from app.progress import CancelToken, Progress
from app.tools.mesh import _vtk as vtk

if TYPE_CHECKING:
    import trimesh

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
    """A Trimesh over float64 vertices and int64 faces, without any processing.

    trimesh (0.7 s to import) is loaded by the first mesh made, not with this module: a file
    build extracts its surface while the mesh libraries load (see app.workflow.mesh_source).
    """
    import trimesh  # noqa: PLC0415

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
    order = _lexsort_pair(low, high)
    high, low = high.take(order), low.take(order)
    new = np.concatenate([[True], (high[1:] != high[:-1]) | (low[1:] != low[:-1])])
    inverse = np.empty(len(v32), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    kept = v32.take(order[new], axis=0).astype(np.float64)
    return kept, inverse.take(np.asarray(faces, dtype=np.int64))


def _lexsort_pair(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``np.lexsort((low, high))``: sorted by ``high``, then by ``low``, then by index. Only
    the runs of equal ``high`` (few: points sharing x and y) are sorted by ``low``."""
    order = np.argsort(high, kind="stable")
    sorted_high = high.take(order)
    tie = sorted_high[1:] == sorted_high[:-1]
    if tie.any():
        run = np.cumsum(np.concatenate([[True], ~tie]))
        tied = np.flatnonzero(np.concatenate([tie, [False]]) | np.concatenate([[False], tie]))
        within = order.take(tied)
        order[tied] = within.take(np.lexsort((within, low.take(within), run.take(tied))))
    return order


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
    return examine_faces(faces[~degenerate], degenerate=int(degenerate.sum())).topology


@dataclass
class FaceInspection:
    """What :func:`examine_faces` finds: the topology, the defect vertices, the edge-joined
    component of each face (numbered by first face) and, from the same edge table, the
    copies of a triangle (:meth:`copies`)."""

    topology: Topology
    defects: np.ndarray
    components: np.ndarray
    table: _Edges

    def copies(self, faces: np.ndarray) -> np.ndarray:
        """Indices of the faces with the corners of an earlier face (what
        :func:`first_unique_rows` of the sorted faces leaves out). A triangle and its copy
        share every edge: as an edge's only two faces they have the same third corner, else
        the edge has more than two faces; only the faces on such edges are compared."""
        table, faces = self.table, np.asarray(faces, dtype=np.int64)
        # the two faces of an edge have the same third corner if their corners add up alike
        total = faces[:, 0] + faces[:, 1]
        total += faces[:, 2]
        first, second = table.pairs[:, 0] // 3, table.pairs[:, 1] // 3
        same = total.take(first) == total.take(second)
        suspect = np.zeros(len(faces), dtype=bool)
        suspect[first[same]] = True
        suspect[second[same]] = True
        suspect[table.bad_half_edges(table.counts > 2) // 3] = True
        suspects = np.flatnonzero(suspect)
        if len(suspects) == 0:
            return suspects
        rows = np.sort(faces.take(suspects, axis=0), axis=1)
        return np.delete(suspects, first_unique_rows(rows))


def examine_faces(faces: np.ndarray, *, degenerate: int = 0) -> FaceInspection:
    """The :class:`Topology` of non-degenerate, welded ``faces`` (plus ``degenerate`` faces
    left out by the caller), their defect vertices (see :func:`defect_vertices`), and the
    components and edge table found with them, from one pass over the edges."""
    faces = np.asarray(faces, dtype=np.int64)
    table = _Edges.of(faces)
    pinch = _nonmanifold_vertices(faces, table)
    bad_edge = (table.counts != 2) | table.flipped
    on_bad_edge = table.vertices_of(table.bad_half_edges(bad_edge))
    defects = _sorted_unique(np.concatenate([on_bad_edge.ravel(), pinch]))
    components = _edge_linked(len(faces), table)
    topo = Topology(
        vertices=int(np.count_nonzero(np.bincount(faces.ravel()))),
        faces=len(faces) + degenerate,
        components=int(components.max()) + 1,
        boundary_edges=int(np.sum(table.counts == 1)),
        nonmanifold_edges=int(np.sum(table.counts > 2)),
        nonmanifold_vertices=len(pinch),
        inconsistent_edges=int(np.sum(table.flipped)),
        degenerate_faces=degenerate,
    )
    return FaceInspection(topo, defects, components, table)


@dataclass
class _Edges:
    """Every face's three half-edges, grouped by undirected edge with one sort.

    Half-edge ``h = 3 f + i`` runs from corner ``i`` of face ``f`` to the next corner;
    ``low[h]`` and ``high[h]`` are its two vertices, ``order`` the half-edges sorted by edge,
    ``counts[e]`` the half-edges of edge ``e`` (in that order), ``pairs`` the two half-edges
    of each edge that has two, ``partner[h]`` the
    other half-edge of a two-sided edge (the next one round an edge with more, ``h`` itself
    on a boundary) and ``flipped[e]`` whether the two faces of edge ``e`` disagree on
    orientation.
    """

    low: np.ndarray
    high: np.ndarray
    order: np.ndarray
    counts: np.ndarray
    pairs: np.ndarray
    partner: np.ndarray
    flipped: np.ndarray

    @classmethod
    def of(cls, faces: np.ndarray) -> _Edges:
        start = faces.ravel()  # a view: half-edge h starts at corner h
        end = np.empty_like(faces)
        end[:, :2] = faces[:, 1:]
        end[:, 2] = faces[:, 0]
        end = end.ravel()
        up = start < end
        low, high = np.minimum(start, end), np.maximum(start, end)
        del end
        key = low * (int(high.max()) + 1)
        key += high
        order, key = _argsort_with_keys(key)
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        del key
        counts = np.diff(np.append(starts, len(start)))
        two = counts == 2
        pairs = order[np.repeat(two, counts)].reshape(-1, 2)
        # an interior edge is consistently oriented when one of its half-edges runs up
        flipped = np.zeros(len(counts), dtype=bool)
        flipped[two] = up.take(pairs[:, 0]) == up.take(pairs[:, 1])
        partner = np.arange(len(start))
        partner[pairs[:, 0]] = pairs[:, 1]
        partner[pairs[:, 1]] = pairs[:, 0]
        many = np.repeat(counts > 2, counts)
        if many.any():  # round each edge of more than two faces: the next, the last to the first
            ring = order[many]
            group = np.repeat(np.arange(len(counts)), counts)[many]
            first = np.concatenate([[True], group[1:] != group[:-1]])
            last = np.append(first[1:], True)
            following = np.roll(ring, -1)
            following[last] = ring[first]
            partner[ring] = following
        return cls(low, high, order, counts, pairs, partner, flipped)

    def bad_half_edges(self, bad_edge: np.ndarray) -> np.ndarray:
        """The half-edges of the edges where ``bad_edge`` is set."""
        return self.order[np.repeat(bad_edge, self.counts)]

    def vertices_of(self, half_edges: np.ndarray) -> np.ndarray:
        """The two vertices of each of ``half_edges`` (n, 2)."""
        return np.column_stack([self.low.take(half_edges), self.high.take(half_edges)])


def _argsort_with_keys(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.argsort(key, kind="stable")`` of non-negative int64 keys, and the keys sorted.
    When key and index fit in 63 bits together they are sorted as one packed value: sorting
    values is about twice as fast as sorting indices by them."""
    shift = max(len(key) - 1, 1).bit_length()
    if len(key) == 0 or int(key.max()).bit_length() + shift > 63:
        order = np.argsort(key, kind="stable")
        return order, key.take(order)
    packed = key << shift
    packed |= np.arange(len(key))
    packed.sort(kind="stable")
    order = packed & ((1 << shift) - 1)
    packed >>= shift
    return order, packed


def _edge_linked(n_faces: int, table: _Edges) -> np.ndarray:
    """Component of each face, faces joined through shared edges: each half-edge links its
    face to its partner's, so the graph's rows are the faces' three half-edges as they are
    (no sort, no face-by-face product)."""
    small = np.int32 if 3 * n_faces < 1 << 31 else np.int64
    neighbours = (table.partner // 3).astype(small)
    rows = np.arange(0, 3 * n_faces + 1, 3, dtype=small)
    graph = csr_matrix((np.ones(3 * n_faces), neighbours, rows), shape=(n_faces, n_faces))
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
    small = np.int32 if n < 1 << 31 else np.int64
    rows = np.full(n + 1, 3 * n_faces, dtype=small)  # a face's row: its 3 vertices
    rows[: n_faces + 1] = np.arange(0, 3 * n_faces + 1, 3, dtype=small)
    vertices = faces.ravel().astype(small)
    vertices += n_faces
    graph = csr_matrix((np.ones(3 * n_faces), vertices, rows), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    labels = labels[:n_faces]
    used = np.zeros(int(labels.max()) + 1, dtype=bool)
    used[labels] = True  # clusters of unused vertices alone are left out: number the rest
    return (np.cumsum(used) - 1)[labels]


def clusters_of_components(faces: np.ndarray, components: np.ndarray) -> np.ndarray:
    """:func:`vertex_clusters` of ``faces`` from their edge-joined ``components`` (numbered by
    first face, as :func:`component_labels` numbers them): components meeting at a vertex
    are joined, which only the few vertices where different components meet need. Same
    numbering (by first face) as :func:`vertex_clusters`."""
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return np.zeros(0, dtype=np.int64)
    corner_vertex = faces.ravel()
    corner_component = np.repeat(components, 3)
    some = np.zeros(int(corner_vertex.max()) + 1, dtype=np.int64)
    some[corner_vertex] = corner_component  # one of the vertex's components, whichever
    other = some.take(corner_vertex)
    meet = other != corner_component
    n = int(components.max()) + 1
    graph = coo_matrix(
        (np.ones(int(meet.sum()), dtype=np.int8), (other[meet], corner_component[meet])), (n, n)
    )
    _, joined = connected_components(graph, directed=False)  # numbered by lowest component
    labels = joined.astype(np.int64).take(components)
    used = np.zeros(int(labels.max()) + 1, dtype=bool)
    used[labels] = True  # components without a face here (numbers skipped): left out
    return (np.cumsum(used) - 1).take(labels)


def _nonmanifold_vertices(faces: np.ndarray, table: _Edges) -> np.ndarray:
    """Vertices whose incident faces form more than one fan (pinch points, bow ties).

    Around a vertex whose every edge is shared by two consistently oriented faces, stepping
    from each face across its edge leaving the vertex is a permutation of the vertex's
    corners, one cycle per fan: a walk from one corner of each such vertex comes back after
    as many steps as the vertex has corners unless it pinches. Vertices on other edges are
    rare (and a walk longer than :data:`_LONGEST_WALK`); their corners are joined as a graph.
    """
    bad_edge = (table.counts != 2) | table.flipped
    dirty = np.zeros(int(faces.max()) + 1, dtype=bool)
    dirty[table.vertices_of(table.bad_half_edges(bad_edge))] = True
    clean, long = _pinches_by_rotation(faces, table.partner, dirty)
    dirty[long] = True
    messy = _pinches_by_graph(faces, table, dirty)
    return np.union1d(clean, messy)


_LONGEST_WALK = 64


def _pinches_by_rotation(
    faces: np.ndarray, partner: np.ndarray, dirty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pinch vertices among those not ``dirty`` (every edge two-sided and consistent), and
    the vertices whose walk was longer than :data:`_LONGEST_WALK` (not decided)."""
    vertex_of_corner = faces.ravel()
    valence = np.bincount(vertex_of_corner, minlength=len(dirty))
    some = np.zeros(len(dirty), dtype=np.int64)
    some[vertex_of_corner] = np.arange(len(vertex_of_corner))  # a corner of each vertex
    todo = np.flatnonzero((valence > 0) & ~dirty)
    first, left = some.take(todo), valence.take(todo)
    corner, pinches = first, []
    for steps in range(1, _LONGEST_WALK + 1):
        # half-edge h = 3f + i leaves corner h's vertex; its partner's face holds the next
        # corner: round a clean vertex the partner runs the other way, so it is its end
        twin = partner.take(corner)
        corner = twin + 1 - 3 * (twin % 3 == 2)
        back = corner == first
        if back.any():
            pinches.append(todo[back & (left > steps)])
            going = ~back
            todo, first, left, corner = todo[going], first[going], left[going], corner[going]
        if len(todo) == 0:
            break
    found = np.concatenate(pinches) if pinches else np.zeros(0, dtype=np.int64)
    return np.sort(found), todo


def _pinches_by_graph(faces: np.ndarray, table: _Edges, dirty: np.ndarray) -> np.ndarray:
    """Pinch vertices among the ``dirty`` ones: their corners joined across two-sided edges
    (a graph of the dirty vertices' corners only)."""
    if not dirty.any():
        return np.zeros(0, dtype=np.int64)
    vertex_of_corner = faces.ravel()
    corners = np.flatnonzero(dirty.take(vertex_of_corner))
    vertex = vertex_of_corner.take(corners)
    partner = table.partner
    rows, cols = [], []
    # the two half-edges of a corner's face at its vertex: leaving it (the corner's own) and
    # arriving (the previous corner's); across a two-sided one, the partner's face has the
    # vertex at the partner's start or end
    for half in (corners, corners - 1 + 3 * (corners % 3 == 0)):
        other = partner.take(half)
        two_sided = (other != half) & (partner.take(other) == half)
        other, mine = other[two_sided], corners[two_sided]
        after = other + 1 - 3 * (other % 3 == 2)
        rows.append(mine)
        cols.append(np.where(vertex_of_corner.take(other) == vertex[two_sided], other, after))
    node = np.zeros(len(vertex_of_corner), dtype=np.int64)
    node[corners] = np.arange(len(corners))
    n = len(corners)
    graph = coo_matrix(
        (np.ones(sum(len(r) for r in rows)),
         (node.take(np.concatenate(rows)), node.take(np.concatenate(cols)))),
        shape=(n, n),
    )  # fmt: skip
    _, labels = connected_components(graph, directed=False)
    n_labels = int(labels.max()) + 1
    fans = _sorted_unique(vertex * n_labels + labels)
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
    on_bad_edge = table.vertices_of(table.bad_half_edges(bad_edge))
    pinch = _nonmanifold_vertices(faces, table)
    return _sorted_unique(np.concatenate([on_bad_edge.ravel(), pinch]))


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

    Candidate pairs are the triangles whose bounding boxes overlap, found by sweeping a grid
    of columns along x (:class:`_BoxGrid`) ``chunk`` grid entries at a time (on every core);
    pairs sharing a vertex are dropped there, and each pair left gets the exact
    interval-overlap test of Möller (1997). Touching or coplanar contacts are not counted.
    ``only`` (face indices) restricts the search to crossings involving those faces, e.g.
    just after a local edit. ``welded``: ``mesh`` already is merged as float32 (see
    :func:`merge_float32`), so it is not merged again.
    """
    if welded:
        vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    else:
        vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    if len(faces) < 2:
        return np.zeros(0, dtype=np.int64)
    lo, hi = _boxes_float32(vertices, faces)
    subset = focus = None
    if only is not None:
        only = np.asarray(only, dtype=np.int64)
        subset = _boxes_near(lo.T.astype(np.float64), hi.T.astype(np.float64), only)
        focus = np.zeros(len(faces), dtype=bool)
        focus[only] = True
    grid = _BoxGrid.build(lo, hi, faces, subset)
    del lo, hi
    if grid is None:
        return np.zeros(0, dtype=np.int64)

    def crossing(pairs: np.ndarray, batch: int = 16_384) -> np.ndarray:
        if focus is not None:
            pairs = pairs[focus[pairs[:, 0]] | focus[pairs[:, 1]]]
        hits = [np.zeros(0, dtype=np.int64)]
        for start in range(0, len(pairs), batch):  # a few MiB of triangles at a time
            some = pairs[start : start + batch]
            first, second = (vertices.take(faces.take(p, axis=0), axis=0) for p in some.T)
            hits.append(some[_tri_tri(first, second)].ravel())
        return np.concatenate(hits)

    hits = [crossing(grid.huge_pairs)]
    workers = min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        hits.extend(pool.map(lambda r: crossing(grid.sweep(*r)), grid.ranges(chunk, workers)))
    return _sorted_unique(np.concatenate(hits))


def face_boxes(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's bounding box, corner by corner (no copy of every triangle)."""
    lo, hi = vertices[faces[:, 0]], vertices[faces[:, 0]]
    for corner in (1, 2):
        point = vertices[faces[:, corner]]
        np.minimum(lo, point, out=lo)
        np.maximum(hi, point, out=hi)
    return lo, hi


def _boxes_float32(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each triangle's bounding box in float32, rounded outward: ``lo[k]``, ``hi[k]`` along
    axis k. Exact when the vertices are float32 values (as a welded mesh's are), and then
    found from float32 columns: half the memory traffic of float64 rows."""
    vertices = np.asarray(vertices)
    v32 = vertices.astype(np.float32)
    exact = bool(np.array_equal(v32, vertices))
    source = v32 if exact else np.asarray(vertices, dtype=np.float64)
    corners = [np.ascontiguousarray(faces[:, c]) for c in range(3)]
    lo = np.empty((3, len(faces)), dtype=np.float32)
    hi = np.empty((3, len(faces)), dtype=np.float32)
    for k in range(3):
        column = np.ascontiguousarray(source[:, k])
        a, b, c = (column[corner] for corner in corners)
        low, high = np.minimum(a, b), np.maximum(a, b)
        np.minimum(low, c, out=low)
        np.maximum(high, c, out=high)
        lo[k], hi[k] = (low, high) if exact else _outward_float32(low, high)
    return lo, hi


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
    within a column, so an entry pairs with the next entries of its column up to the first
    that starts beyond its high x. The sweep takes one step k at a time: entry e against entry
    e + k, for every e at once, as contiguous slices while most entries still have a k-th
    partner (then only those that do). Two boxes pair in the one column that holds the lower
    corner of their intersection: the column where one of them starts in y and one in z
    (``code``). Pairs of triangles sharing a vertex (most pairs of overlapping boxes: the
    neighbours) are dropped by comparing the corners stored with each entry. The rare box
    covering more than 64 columns (huge) is tested against all boxes directly
    (``huge_pairs``, found when the grid is built).
    """

    ids: np.ndarray  # the face of each box
    key: np.ndarray  # the column of each entry, sorted; a last entry -1 ends every column
    box: np.ndarray  # the box of each entry
    code: np.ndarray  # 1: the entry's column is its box's first in y; 2: first in z
    bounds: np.ndarray  # (6, entries) float32 low x, high x, low y, high y, low z, high z
    corners: np.ndarray  # (3, entries) the vertices of each entry's triangle
    huge_pairs: np.ndarray  # (n, 2) faces: a huge box and a box it overlaps, sharing no vertex

    @classmethod
    def build(
        cls, lo: np.ndarray, hi: np.ndarray, faces: np.ndarray, subset: np.ndarray | None
    ) -> _BoxGrid | None:
        """The grid of boxes ``lo``, ``hi`` (3, n) of the triangles ``faces`` (or just of
        ``subset``); None with fewer than two boxes."""
        ids = np.arange(lo.shape[1]) if subset is None else np.asarray(subset, dtype=np.int64)
        if len(ids) < 2:
            return None
        ids = ids.take(_argsort_float32(lo[0].take(ids)))
        bounds = np.empty((6, len(ids)), dtype=np.float32)
        for k in range(3):
            lo[k].take(ids, out=bounds[2 * k])
            hi[k].take(ids, out=bounds[2 * k + 1])
        corners = np.empty((3, len(ids)), dtype=np.int32)
        for k in range(3):
            corners[k] = np.ascontiguousarray(faces[:, k]).take(ids)
        first, span = _columns(bounds)
        count = span[0] * span[1]
        huge = count > 64
        huge_pairs = _huge_pairs(bounds, corners, np.flatnonzero(huge))
        box, key, code = _column_entries(first, span, count, np.flatnonzero(~huge))
        del first, span, count
        box = np.append(box, 0)
        key = np.append(key, -1)  # no column: every column ends before it
        return cls(ids, key, box, np.append(code, 0), _rows_take(bounds, box),
                   _rows_take(corners, box), ids.take(huge_pairs))  # fmt: skip

    def ranges(self, chunk: int, parts: int) -> list[tuple[int, int]]:
        """Runs of at most ``chunk`` entries, at least ``parts`` of them."""
        n = len(self.key) - 1
        parts = max(parts, -(-n // max(chunk, 1)))
        bounds = np.unique(np.linspace(0, n, parts + 1).astype(np.int64))
        return list(itertools.pairwise(bounds.tolist()))

    def sweep(self, start: int, stop: int) -> np.ndarray:
        """(n, 2) faces whose boxes overlap and share no vertex, each pair once, from the
        pairs of entries start:stop with later entries."""
        key, code = self.key, self.code
        x0, x1, y0, y1, z0, z1 = self.bounds
        found, active, k = [], None, 1
        while True:
            if active is None:  # every entry of the range: contiguous slices
                end = min(stop, len(key) - k)
                if end <= start:
                    break
                e, f = slice(start, end), slice(start + k, end + k)
                live = key[e] == key[f]
                live &= x0[f] <= x1[e]
                alive = int(np.count_nonzero(live))
                if alive == 0:
                    break
                hit = (code[e] | code[f]) == 3
                hit &= live
                hit &= y0[e] <= y1[f]
                hit &= y1[e] >= y0[f]
                hit &= z0[e] <= z1[f]
                hit &= z1[e] >= z0[f]
                pairs = np.flatnonzero(hit) + start
                if 4 * alive < end - start:
                    active = np.flatnonzero(live) + start
            else:  # the entries whose k-th next entry still overlaps along x
                f = active + k
                active = active[(key[active] == key[f]) & (x0[f] <= x1[active])]
                if len(active) == 0:
                    break
                pairs = active[(code[active] | code[active + k]) == 3]
                f = pairs + k
                hit = (y0[pairs] <= y1[f]) & (y1[pairs] >= y0[f])
                hit &= (z0[pairs] <= z1[f]) & (z1[pairs] >= z0[f])
                pairs = pairs[hit]
            found.append(self._apart(pairs, k))
            k += 1
        if not found:
            return np.zeros((0, 2), dtype=np.int64)
        return self.ids.take(self.box.take(np.concatenate(found)))

    def _apart(self, entries: np.ndarray, k: int) -> np.ndarray:
        """(n, 2) the pairs (e, e + k) of ``entries`` whose triangles share no vertex."""
        partners = entries + k
        mine = [row.take(entries) for row in self.corners]
        theirs = [row.take(partners) for row in self.corners]
        shared = mine[0] == theirs[0]
        for p, q in itertools.product(range(3), range(3)):
            if p or q:
                shared |= mine[p] == theirs[q]
        entries = entries[~shared]
        return np.column_stack([entries, entries + k])


def _argsort_float32(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` of float32 values without NaN, as two stable
    16-bit radix passes over their bits made monotone (a quarter of the time of a merge sort
    on 500k values). Only -0.0 sorts before 0.0."""
    bits = values.view(np.uint32)
    key = np.where(bits >> 31, ~bits, bits | np.uint32(1 << 31))
    order = np.argsort((key & 0xFFFF).astype(np.uint16), kind="stable")
    high = (key >> 16).astype(np.uint16).take(order)
    return order.take(np.argsort(high, kind="stable"))


def _rows_take(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``rows[:, index]``, row by row (a 1-D take is several times faster than numpy's
    fancy indexing of a 2-D array)."""
    out = np.empty((len(rows), len(index)), dtype=rows.dtype)
    for row, into in zip(rows, out, strict=True):
        row.take(index, out=into)
    return out


def _columns(bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first column of each box along y and z and how many it spans (2, n): columns are
    twice the median box across (long on thick slices), found from a sample of the boxes."""
    sample = bounds[:, :: max(1, bounds.shape[1] // 65_536)].astype(np.float64)
    extent = sample[1::2] - sample[0::2]
    cell = np.maximum(np.median(extent, axis=1) * 2.0, float(np.median(extent.max(axis=0))) / 8)
    cell = np.where(cell > 0, cell, 1.0)[1:, None]
    base = bounds[2::2].min(axis=1).astype(np.float64)[:, None]
    first = np.floor((bounds[2::2] - base) / cell).astype(np.int64)
    span = np.floor((bounds[3::2] - base) / cell).astype(np.int64)
    span -= first
    span += 1
    return first, span


def _column_entries(
    first: np.ndarray, span: np.ndarray, count: np.ndarray, entered: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(box, column, code) of every entry, sorted by column and then box: each ``entered``
    box in each of the ``count`` columns it spans from column ``first``."""
    per_box = count.take(entered)
    n = int(per_box.sum())
    width = int((first[1] + span[1]).take(entered).max()) if len(entered) else 1
    height = int((first[0] + span[0]).take(entered).max()) if len(entered) else 1
    small = np.int32 if n < 1 << 31 and width * height < 1 << 31 else np.int64
    box = np.repeat(entered.astype(np.int32), per_box)
    rank = np.arange(n, dtype=small)
    rank -= np.repeat((np.cumsum(per_box) - per_box).astype(small), per_box)
    dz, dy = np.divmod(rank, np.repeat(span[0].take(entered).astype(small), per_box))
    del rank
    code = (dy == 0).astype(np.uint8)
    code |= (dz == 0).astype(np.uint8) << 1
    key = np.repeat(first[0].take(entered).astype(small), per_box)
    key += dy
    del dy
    key *= width
    key += dz
    del dz
    key += np.repeat(first[1].take(entered).astype(small), per_box)
    if width * height <= 1 << 16:
        order = np.argsort(key.astype(np.uint16), kind="stable")  # a radix sort
    else:
        order = np.argsort(key, kind="stable")
    return box.take(order), key.take(order), code.take(order)


def _huge_pairs(bounds: np.ndarray, corners: np.ndarray, huge: np.ndarray) -> np.ndarray:
    """(n, 2) boxes: each huge box with every box it overlaps and shares no vertex with
    (each pair once)."""
    found = [np.zeros((0, 2), dtype=np.int64)]
    is_huge = np.zeros(bounds.shape[1], dtype=bool)
    is_huge[huge] = True
    for h in huge.tolist():
        end = int(np.searchsorted(bounds[0], bounds[1, h], side="right"))  # start before h ends
        keep = bounds[1, :end] >= bounds[0, h]
        for axis in (1, 2):
            low, high = bounds[2 * axis, :end], bounds[2 * axis + 1, :end]
            keep &= (low <= bounds[2 * axis + 1, h]) & (high >= bounds[2 * axis, h])
        other = np.flatnonzero(keep)
        other = other[(other != h) & (~is_huge[other] | (other > h))]
        shared = np.isin(corners[:, other], corners[:, h]).any(axis=0)
        other = other[~shared]
        found.append(np.column_stack([np.full(len(other), h), other]))
    return np.concatenate(found)


def _outward_float32(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo32, hi32 = lo.astype(np.float32), hi.astype(np.float32)
    lo32 = np.where(lo32 > lo, np.nextafter(lo32, np.float32(-np.inf)), lo32)
    hi32 = np.where(hi32 < hi, np.nextafter(hi32, np.float32(np.inf)), hi32)
    return lo32, hi32


def _tri_tri(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Vectorised triangle-triangle crossing test for pairs ``a[n]``, ``b[n]`` (n, 3, 3).

    Stage by stage, each on the pairs the last one left (row by row the same arithmetic as
    on all of them): most pairs end at the first, b's corners all on one side of a's plane.
    """
    crossing = np.zeros(len(a), dtype=bool)
    na = np.cross(a[:, 1] - a[:, 0], a[:, 2] - a[:, 0])
    db = _plane_sides(b, a, na)  # b's corners vs a's plane
    left = np.flatnonzero(_straddles(db) & ~np.all(db == 0, axis=1))  # not coplanar
    a, b, na, db = a[left], b[left], na[left], db[left]
    nb = np.cross(b[:, 1] - b[:, 0], b[:, 2] - b[:, 0])
    da = _plane_sides(a, b, nb)
    keep = _straddles(da)
    left, a, b, na, nb, da, db = (x[keep] for x in (left, a, b, na, nb, da, db))
    line = np.cross(na, nb)
    ia = _interval(a, da, line)
    ib = _interval(b, db, line)
    overlap = (np.minimum(ia[:, 1], ib[:, 1]) - np.maximum(ia[:, 0], ib[:, 0])) > 1e-9 * (
        np.abs(ia).max(axis=1) + np.abs(ib).max(axis=1) + 1.0
    )
    crossing[left[overlap]] = True
    return crossing


def _plane_sides(t: np.ndarray, other: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Signed distances (times the normal's length) of ``t``'s corners to the plane of
    ``other``; those within 1e-9 of the normal's length are 0."""
    d = np.einsum("nij,nj->ni", t - other[:, :1], normal)
    return np.where(np.abs(d) < np.linalg.norm(normal, axis=1)[:, None] * 1e-9, 0.0, d)


def _straddles(d: np.ndarray) -> np.ndarray:
    return ~(np.all(d > 0, axis=1) | np.all(d < 0, axis=1))


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
        ordered = np.sort(key)  # values sort faster than indices: first see if any repeats
        if not (ordered[1:] == ordered[:-1]).any():
            return np.arange(len(rows))
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

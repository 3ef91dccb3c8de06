"""Make a mesh a closed, oriented 2-manifold as a slicer reads it, and decimate it safely.

The mesh is checked once as an STL reader would see it (vertices merged at float32).
Components enclosing less than ``min_component_mm3`` are dropped, never by triangle count:
after 80 % decimation of a thin-slice CT a real 30 mm3 bone fragment has fewer than 100
triangles; so a spine of separate vertebrae keeps every vertebra. Each defect (open, shared-
by-3 or flipped edge, pinch vertex) and each pair of crossing triangles is then rebuilt in a
small patch around it (:mod:`~app.tools.mesh.patch`); only a part whose defect a patch cannot
close goes through MeshFix as a whole. Inner shells (cavities) keep their inward normals.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field

import numpy as np
import pymeshfix
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from app.errors import MeshError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh import quadric
from app.tools.mesh.core import (
    Topology,
    clusters_of_components,
    compact,
    component_labels,
    concatenate,
    defect_vertices,
    examine_faces,
    first_unique_rows,
    make_mesh,
    merge_float32,
    self_intersecting_faces,
    signed_volume,
    split_by_labels,
    submesh,
    topology,
    triple_products,
    vertex_clusters,
)
from app.tools.mesh.patch import Patch, boundary_loops, fan_fill, patch_locally

TINY_PART_FACES = 64  # a part this small that crosses itself is dropped, not rebuilt


@dataclass
class RepairReport:
    """What :func:`repair_mesh` changed and the topology before and after."""

    before: dict
    after: dict
    components_removed: int = 0
    components_fixed: int = 0
    faces_before: int = 0
    faces_after: int = 0
    self_intersections_left: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def closed_manifold(self) -> bool:
        return bool(self.after.get("watertight")) and bool(self.after.get("manifold"))

    def topology_after(self) -> dict:
        """The counts of :class:`Topology` measured on the repaired mesh."""
        derived = ("watertight", "manifold")
        return {k: v for k, v in self.after.items() if k not in derived}

    def to_dict(self) -> dict:
        return dict(asdict(self), closed_manifold=self.closed_manifold)


def count_self_intersections(mesh: trimesh.Trimesh) -> int:
    """Number of triangles that cross another triangle (MeshFix's exact test)."""
    return len(_intersecting_vertices(weld(mesh))[1])


def _intersecting_vertices(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertex ids of intersecting triangles, those triangles) on a welded mesh."""
    tris = self_intersecting_faces(mesh, welded=True)
    return np.unique(np.asarray(mesh.faces)[tris]), tris


def remove_self_intersections(
    mesh: trimesh.Trimesh, rounds: int = 3, *, welded: bool = False
) -> tuple[trimesh.Trimesh, int]:
    """Cut out the triangles that cross each other (and their neighbours) and refill the holes.

    Returns the mesh (``mesh`` itself when nothing crosses) and the number of intersecting
    triangles left (0 when it worked). After the first full search only the rebuilt patches
    are searched again. ``welded`` says ``mesh`` already is (as :func:`repair_mesh` leaves it).
    """
    original, mesh = mesh, mesh if welded else weld(mesh)
    tris = self_intersecting_faces(mesh, welded=True)
    if len(tris) == 0:
        return original, 0
    for _ in range(rounds):
        if len(tris) == 0:
            return mesh, 0
        fixed, new = _uncross(mesh, tris)
        if fixed is None:
            break
        mesh = fixed
        tris = self_intersecting_faces(mesh, only=new, welded=True)  # patches keep it welded
    return mesh, len(tris)


def _uncross(mesh: trimesh.Trimesh, tris: np.ndarray) -> tuple[trimesh.Trimesh | None, np.ndarray]:
    """``mesh`` with the crossing triangles ``tris`` and their neighbours rebuilt, and the
    rebuilt faces; a patch first, then tiny parts that cross themselves are dropped, and the
    whole parts holding the rest are rebuilt when a patch cannot close."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    seeds = np.unique(faces[tris])
    for rings in (3, 6):
        patched = patch_locally(
            np.asarray(mesh.vertices), faces, seeds, rings=rings, cut_seeds=True
        )
        if patched is not None:
            return _compact(patched.vertices, patched.faces), patched.rebuilt
    labels = vertex_clusters(faces)
    sizes = np.bincount(labels)
    if (sizes[labels[tris]] <= TINY_PART_FACES).all():
        keep = ~np.isin(labels, labels[tris])
        return _compact(np.asarray(mesh.vertices), faces[keep]), np.zeros(0, dtype=np.int64)
    fixed = _fix_crossings(mesh, tris)
    if fixed is None:
        return None, np.zeros(0, dtype=np.int64)
    return fixed, _new_faces(fixed, mesh)


def _fix_crossings(mesh: trimesh.Trimesh, tris: np.ndarray) -> trimesh.Trimesh | None:
    """``mesh`` with the crossing triangles ``tris`` cut out and the holes refilled; only the
    components holding them are rebuilt. None when that does not give a closed 2-manifold."""
    labels = component_labels(mesh.faces)
    hit = np.zeros(int(labels.max()) + 1, dtype=bool)
    hit[labels[tris]] = True
    touched = hit[labels]
    affected = submesh(mesh, np.flatnonzero(touched))
    local = (np.cumsum(touched) - 1)[tris]  # the crossing faces' indices in ``affected``
    bad = np.unique(np.asarray(affected.faces)[local])
    rebuilt, closed = _local_fix(_cut_around(affected, bad, 1), rounds=3)
    if not closed:
        return None
    return weld(concatenate([submesh(mesh, np.flatnonzero(~touched)), rebuilt]))


def _new_faces(mesh: trimesh.Trimesh, before: trimesh.Trimesh) -> np.ndarray:
    """Indices of faces of ``mesh`` whose corner positions are not a face of ``before``."""

    def keys(m: trimesh.Trimesh) -> np.ndarray:
        corners = np.asarray(m.vertices, dtype=np.float32)[np.asarray(m.faces)]
        rows = np.sort(corners.view(np.dtype((np.void, 12))).reshape(-1, 3), axis=1)
        return np.ascontiguousarray(rows).view(np.dtype((np.void, 36))).ravel()

    old = set(keys(before).tolist())
    return np.flatnonzero([k not in old for k in keys(mesh).tolist()])


def weld(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Merge float32-equal vertices and drop degenerate and duplicate triangles."""
    vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    keep = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    )
    faces = faces[keep]
    return compact(vertices, faces[first_unique_rows(np.sort(faces, axis=1))])


def _local_fix(
    component: trimesh.Trimesh, rings: int = 1, rounds: int = 4
) -> tuple[trimesh.Trimesh, bool]:
    """Cut out the faces around each defect and fill the holes again; the result and whether
    it is a closed 2-manifold, as the last defect search found (on a welded mesh that is what
    :func:`topology` checks, so nobody checks it again).

    Unlike a global clean this never removes a distant part of a large bone: only the
    neighbourhood of a non-manifold edge, pinch vertex or boundary is rebuilt. Faces are cut
    until the holes have simple boundaries (see :func:`_fill_holes`).
    """
    mesh = weld(component)
    for _ in range(rounds):
        bad = defect_vertices(mesh.faces)
        if len(bad) == 0:
            return mesh, len(mesh.faces) > 0
        mesh = _cut_around(mesh, bad, rings)
        for _ in range(10):  # holes must not touch at a vertex or share a bad edge
            pinch = defect_vertices(mesh.faces, boundary=False)
            if len(pinch) == 0 or len(mesh.faces) == 0:
                break
            mesh = _cut_around(mesh, pinch, 1)
        if len(mesh.faces) == 0:
            return mesh, False
        mesh = weld(_fill_holes(mesh))
    return mesh, len(mesh.faces) > 0 and len(defect_vertices(mesh.faces)) == 0


def _fill_holes(mesh: trimesh.Trimesh, max_fan_edges: int = 64) -> trimesh.Trimesh:
    """Close every boundary loop: small ones with a fan around their centroid (fast, exact
    orientation), large ones with MeshFix's refined, faired patches."""
    faces = np.asarray(mesh.faces, dtype=np.int64)
    loops = boundary_loops(faces)
    if not loops:
        return mesh
    if max(len(loop) for loop in loops) > max_fan_edges:
        tin = pymeshfix.PyTMesh()
        tin.set_quiet(True)
        tin.load_array(np.asarray(mesh.vertices), faces.astype(np.int32))
        tin.fill_small_boundaries(nbe=0, refine=True)
        vertices, new_faces = tin.return_arrays()
        return make_mesh(vertices, new_faces)
    points = np.asarray(mesh.vertices)
    faces, centres = fan_fill(faces, points, loops, len(points))
    return make_mesh(np.concatenate([points, centres]), faces)


def _cut_around(mesh: trimesh.Trimesh, vertices: np.ndarray, rings: int) -> trimesh.Trimesh:
    faces = np.asarray(mesh.faces, dtype=np.int64)
    marked = np.zeros(len(mesh.vertices), dtype=bool)
    marked[vertices] = True
    drop = np.zeros(len(faces), dtype=bool)
    for _ring in range(rings):
        drop |= marked[faces].any(axis=1)
        marked[faces[drop].ravel()] = True
    return submesh(mesh, np.flatnonzero(~drop))


def _fix_component(component: trimesh.Trimesh) -> trimesh.Trimesh:
    """Local fix first; the global MeshFix clean only when that did not close the part."""
    fixed, closed = _local_fix(component)
    if closed:
        return fixed
    return _meshfix(component)


def _meshfix(component: trimesh.Trimesh) -> trimesh.Trimesh:
    tin = pymeshfix.PyTMesh()
    tin.set_quiet(True)
    tin.load_array(np.asarray(component.vertices), np.asarray(component.faces, dtype=np.int32))
    tin.fill_small_boundaries(nbe=0, refine=True)
    tin.clean(max_iters=10, inner_loops=3)
    vertices, faces = tin.return_arrays()
    return make_mesh(vertices, faces)


def repair_mesh(
    mesh: trimesh.Trimesh,
    *,
    min_component_faces: int = 4,
    min_component_mm3: float = 1.0,
    fix_intersections: bool = True,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, RepairReport]:
    """Closed 2-manifold version of ``mesh`` (see the module notes); raises if one is impossible.

    Parameters
    ----------
    min_component_faces, min_component_mm3
        Components with fewer triangles or a smaller enclosed volume are removed. The volume
        decides: a triangle count depends on the decimation, not on what the part is.
    """
    progress = ensure(progress)
    welded = _weld_and_inspect(mesh)
    vertices, before = welded.vertices, welded.topology
    report = RepairReport(before=before.to_dict(), after={}, faces_before=len(mesh.faces))
    small = _SmallParts(min_component_faces, min_component_mm3)
    parts = small.drop(vertices, welded.faces, welded.clusters)
    report.components_removed += parts.removed
    defects = welded.defects[parts.alive[welded.defects]]
    # every defect left is rebuilt by a patch that proves its region; the rest of the mesh
    # had none, but for the corners of a dropped copy of a triangle that were no defect with
    # the copy (a flap of two triangles): proven only if they are gone or in the patch
    doubtful = welded.doubtful[parts.alive[welded.doubtful]]
    check_cancel(cancel)
    progress.update(0.2, "repairing defects")
    checked = np.zeros(len(vertices), dtype=bool)
    if len(defects):
        vertices, parts, checked = _fix_defects(vertices, parts, defects, small, report)
    proven = checked is not None and checked[doubtful].all()
    faces = parts.faces[:, ::-1] if parts.volume() < 0 else parts.faces  # outward
    out, n_clusters = _compact(vertices, faces), parts.clusters
    del welded, parts, vertices, faces  # the search for crossings below needs the memory
    changed = report.components_removed or report.components_fixed
    if not changed and before.closed_manifold:
        after = before
    elif proven:  # a closed 2-manifold: its vertex-joined clusters are its components
        after = Topology(len(out.vertices), len(out.faces), n_clusters, 0, 0, 0, 0, 0)
    else:
        after = topology(out)
    if not after.closed_manifold:
        out, after = _second_pass(out, report)
    if fix_intersections:
        check_cancel(cancel)
        progress.update(0.6, "removing self-intersections")
        # patches keep the mesh welded; a whole-part repair (it leaves a note) may not
        crossed, left = remove_self_intersections(out, welded=not report.notes)
        report.self_intersections_left = left
        if crossed is not out:
            out, after = crossed, topology(crossed)
    report.after = after.to_dict()
    report.faces_after = len(out.faces)
    progress.update(1.0, "repaired")
    return out, report


@dataclass
class _Welded:
    """``mesh`` welded as :func:`weld` does (vertices not yet compacted), its topology as an
    STL reader sees it, its defect vertices, the vertex-joined cluster of each face and the
    corners of the copies of a triangle that were dropped and are no defect (``doubtful``)."""

    vertices: np.ndarray
    faces: np.ndarray
    topology: Topology
    defects: np.ndarray
    clusters: np.ndarray
    doubtful: np.ndarray


def _weld_and_inspect(mesh: trimesh.Trimesh) -> _Welded:
    """:class:`_Welded` from one pass over the edges. Copies of a triangle are dropped after
    that pass: the defects they made are still listed, which only widens the patches around
    them (a patch checks its own defects exactly)."""
    vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    degenerate = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    )
    faces = np.compress(~degenerate, faces, axis=0)
    if len(faces) == 0:
        none = np.zeros(0, dtype=np.int64)
        return _Welded(vertices, faces, topology(mesh), none, none, none)
    found = examine_faces(faces, degenerate=int(degenerate.sum()))
    copies = found.copies(faces)
    keep = np.ones(len(faces), dtype=bool)
    keep[copies] = False
    doubtful = np.setdiff1d(faces.take(copies, axis=0), found.defects)
    faces = np.compress(keep, faces, axis=0)
    clusters = clusters_of_components(faces, np.compress(keep, found.components))
    return _Welded(vertices, faces, found.topology, found.defects, clusters, doubtful)


@dataclass
class _Parts:
    """Faces, the vertex-joined cluster of each (0, 1, ...; None after a whole-part repair)
    and the triple product of each (six times its signed volume with the origin)."""

    faces: np.ndarray
    labels: np.ndarray | None
    products: np.ndarray
    removed: int = 0  # clusters removed to leave these
    alive: np.ndarray | None = None  # vertex mask of what is left

    @property
    def clusters(self) -> int:
        return 0 if self.labels is None or len(self.labels) == 0 else int(self.labels.max()) + 1

    def volume(self) -> float:
        """The enclosed volume, as :func:`signed_volume` of the compacted mesh finds it."""
        return float(self.products.sum() / 6.0)


@dataclass(frozen=True)
class _SmallParts:
    """Which vertex-joined clusters are too small to keep: too few triangles or too little
    enclosed volume."""

    min_faces: int
    min_mm3: float

    def drop(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        labels: np.ndarray | None = None,
        products: np.ndarray | None = None,
    ) -> _Parts:
        """``faces`` without the small clusters, how many clusters went, a vertex mask of
        what is left and the cluster of each face left (0, 1, ...). ``labels`` (any
        numbering 0, 1, ...) and ``products`` are the clusters and triple products of
        ``faces`` when the caller knows them."""
        alive = np.zeros(len(vertices), dtype=bool)
        if len(faces) == 0:
            none = np.zeros(0, dtype=np.int64)
            return _Parts(faces, none, np.zeros(0), 0, alive)
        labels = vertex_clusters(faces) if labels is None else labels
        products = triple_products(vertices, faces) if products is None else products
        n = int(labels.max()) + 1
        small = (np.bincount(labels, minlength=n) < self.min_faces) | (
            np.abs(np.bincount(labels, weights=products / 6.0, minlength=n)) < self.min_mm3
        )
        kept = ~small.take(labels)
        faces, labels = np.compress(kept, faces, axis=0), np.compress(kept, labels)
        alive[faces] = True
        renumber = np.cumsum(~small) - 1
        return _Parts(faces, renumber.take(labels), np.compress(kept, products),
                      int(small.sum()), alive)  # fmt: skip


def _fix_defects(
    vertices: np.ndarray,
    parts: _Parts,
    defects: np.ndarray,
    small: _SmallParts,
    report: RepairReport,
) -> tuple[np.ndarray, _Parts, np.ndarray | None]:
    """Rebuild the neighbourhood of each defect (wider rings if needed); the clusters a patch
    cannot close go through the whole-part repair. The vertices, what is left, and the mask of
    the vertices a patch checked: none is a defect now (None when that is not known: after a
    whole-part repair, or when two of the patch's new vertices are one in float32)."""
    faces, labels = parts.faces, parts.labels
    touched = np.zeros(int(labels.max()) + 1, dtype=bool)
    marked = np.zeros(len(vertices), dtype=bool)
    marked[defects] = True
    touched[labels[marked.take(faces).any(axis=1)]] = True
    report.components_fixed += int(touched.sum())
    for rings in (3, 6):
        patched = patch_locally(vertices, faces, defects, rings=rings)
        if patched is not None:
            new = patched.faces.take(patched.rebuilt, axis=0)
            products = np.concatenate([
                np.compress(~patched.replaced, parts.products),
                triple_products(patched.vertices, new),
            ])  # fmt: skip
            clusters = _patched_clusters(parts, patched)
            kept = small.drop(patched.vertices, patched.faces, clusters, products)
            report.components_removed += kept.removed
            distinct = _distinct_in_float32(patched.vertices[len(vertices) :])
            return patched.vertices, kept, patched.inner if distinct else None
    report.notes.append("a defect needed a whole-part repair")
    mesh = make_mesh(vertices, faces)
    parts_of = split_by_labels(mesh, labels)
    kept = [p for p, bad in zip(parts_of, touched, strict=True) if not bad]
    for part in (p for p, bad in zip(parts_of, touched, strict=True) if bad):
        kept.extend(_fix_part(part, small, report))
    out = concatenate(kept)
    vertices, faces = np.asarray(out.vertices), np.asarray(out.faces, dtype=np.int64)
    return vertices, _Parts(faces, None, triple_products(vertices, faces)), None


def _patched_clusters(parts: _Parts, patched: Patch) -> np.ndarray:
    """The vertex-joined cluster of each face of ``patched`` (numbered 0, 1, ... in no
    particular order), from the clusters of ``parts`` it patched, with a pass over only the
    clusters whose kept faces may have come apart.

    The faces the patch replaced come in vertex-joined pieces; a kept face meets a piece only
    at the vertices they share, so the kept faces at a piece's vertices (its ring) link all
    that the piece linked. Where every piece's ring in an old cluster is vertex-joined by
    itself, the cluster's kept faces still are; the other clusters' kept faces (a ring in
    parts: two sheets met in the piece) are joined again. The new clusters are these joined
    through the patch's faces.
    """
    kept_labels = np.compress(~patched.replaced, parts.labels)
    n_kept = len(kept_labels)
    removed = np.compress(patched.replaced, parts.faces, axis=0)
    piece = np.full(len(patched.vertices), -1, dtype=np.int64)
    if len(removed):
        piece[removed.ravel()] = np.repeat(vertex_clusters(_local_ids(removed)), 3)
    ring = np.flatnonzero((piece.take(patched.faces[:n_kept]) >= 0).any(axis=1))
    ring_faces = patched.faces.take(ring, axis=0)
    if len(ring):
        joined = vertex_clusters(_local_ids(ring_faces))
        touching = piece.take(ring_faces)
        at = touching >= 0
        pieces, whose = touching[at], np.repeat(joined, 3)[at.ravel()]
        ring_parts = np.unique(pieces * (int(joined.max()) + 1) + whose)
        split = np.flatnonzero(np.bincount(ring_parts // (int(joined.max()) + 1)) > 1)
        apart = np.zeros(parts.clusters, dtype=bool)
        apart[kept_labels.take(ring)[np.isin(touching, split).any(axis=1)]] = True
        if apart.any():  # join those clusters' kept faces again, numbered after the others
            redo = np.flatnonzero(apart.take(kept_labels))
            if 2 * len(redo) > n_kept:
                return vertex_clusters(patched.faces)  # most of the mesh: all of it
            kept_labels = kept_labels.copy()
            kept_labels[redo] = parts.clusters + vertex_clusters(
                _local_ids(patched.faces.take(redo, axis=0))
            )
    # nodes: the kept faces' groups, ring faces, new faces, then their vertices
    n_old = int(kept_labels.max()) + 1 if n_kept else 0
    new_faces = patched.faces.take(patched.rebuilt, axis=0)
    local, inverse = np.unique(np.concatenate([ring_faces, new_faces]), return_inverse=True)
    n_ring, n_new = len(ring), len(new_faces)
    face_nodes = n_old + np.arange(n_ring + n_new)
    first_vertex = n_old + n_ring + n_new
    rows = np.concatenate([n_old + np.arange(n_ring), np.repeat(face_nodes, 3)])
    cols = np.concatenate([kept_labels.take(ring), first_vertex + inverse.ravel()])
    n = first_vertex + len(local)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, node_label = connected_components(graph, directed=False)
    labels = np.concatenate(
        [node_label.take(kept_labels), node_label[n_old + n_ring : first_vertex]]
    )
    used = np.zeros(int(node_label.max()) + 1, dtype=bool)
    used[labels] = True
    return (np.cumsum(used) - 1).take(labels)


def _local_ids(faces: np.ndarray) -> np.ndarray:
    """``faces`` with their vertices numbered 0, 1, ... (for a graph of just these)."""
    used = np.zeros(int(faces.max()) + 1 if len(faces) else 0, dtype=bool)
    used[faces] = True
    return (np.cumsum(used) - 1).take(faces)


def _distinct_in_float32(points: np.ndarray) -> bool:
    """Whether ``points`` are all different once stored as float32 (the fans' centres: a
    patch keeps each apart from the vertices before it, not from the others it adds)."""
    bits = np.ascontiguousarray(points, dtype=np.float32).view(np.uint32).reshape(-1, 3)
    return len(first_unique_rows(bits.astype(np.int64))) == len(bits)


def _fix_part(part: trimesh.Trimesh, small: _SmallParts, report: RepairReport) -> list:
    fixed = _fix_component(part)
    if np.sign(signed_volume(fixed)) != np.sign(signed_volume(part)):
        fixed = make_mesh(fixed.vertices, np.asarray(fixed.faces)[:, ::-1])
    kept = small.drop(np.asarray(fixed.vertices), np.asarray(fixed.faces))
    report.components_removed += kept.removed
    return [make_mesh(np.asarray(fixed.vertices), kept.faces)] if len(kept.faces) else []


def _compact(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    if len(faces) == 0:
        msg = "nothing printable is left after removing small parts; check the segment"
        raise MeshError(msg)
    return compact(vertices, faces)


def _second_pass(mesh: trimesh.Trimesh, report: RepairReport) -> tuple[trimesh.Trimesh, Topology]:
    """Components that touch once merged as an STL reader does: fix each touching group."""
    welded = weld(mesh)
    faces = np.asarray(welded.faces)
    cluster = vertex_clusters(faces)
    defect = np.zeros(len(welded.vertices), dtype=bool)
    defect[defect_vertices(faces)] = True
    broken = np.zeros(int(cluster.max()) + 1, dtype=bool)
    broken[cluster[defect[faces].any(axis=1)]] = True
    parts = []
    for group, bad in zip(split_by_labels(welded, cluster), broken, strict=True):
        fixed = _fix_component(group) if bad else group
        if bad and len(fixed.faces):
            if np.sign(signed_volume(fixed)) != np.sign(signed_volume(group)):
                fixed = make_mesh(fixed.vertices, np.asarray(fixed.faces)[:, ::-1])
            report.components_fixed += 1
        parts.append(fixed if len(fixed.faces) else group)
    report.notes.append("parts touched each other once merged as STL; fixed each touching group")
    out = concatenate(parts)
    return out, topology(out)


@dataclass
class DecimationReport:
    faces_before: int
    faces_after: int
    target_reduction: float
    repaired: bool

    def to_dict(self) -> dict:
        return asdict(self)


def decimate_mesh(
    mesh: trimesh.Trimesh,
    *,
    reduction: float | None = None,
    target_faces: int | None = None,
    aggressiveness: float = 7.0,
    repair: bool = True,
    child: subprocess.Popen | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, DecimationReport]:
    """Quadric decimation (fast-simplification) that ends watertight.

    Give either ``reduction`` (fraction of triangles removed: 0.8 keeps 20 %) or
    ``target_faces``. The result is re-checked as an STL reader sees it and repaired when the
    collapse pinched a thin region (``repair=False`` leaves that to the caller, who is about
    to run :func:`repair_mesh` anyway). ``child``: a decimation child started ahead
    (:func:`~app.tools.mesh.quadric.start_child`), used for a big mesh; the caller ends it
    when this raises (:func:`~app.tools.mesh.quadric.stop_child`).
    """
    progress = ensure(progress)
    n = len(mesh.faces)
    if target_faces is not None:
        if target_faces < 4:
            msg = "a target of fewer than 4 triangles is not a solid; ask for more triangles"
            raise MeshError(msg)
        reduction = max(0.0, 1.0 - target_faces / max(n, 1))
    if reduction is None or not 0.0 <= reduction < 1.0:
        msg = f"decimation reduction {reduction} must be in 0..1 (0.8 keeps 20% of triangles)"
        raise MeshError(msg)
    if reduction == 0.0:
        quadric.stop_child(child)
        return mesh, DecimationReport(n, n, 0.0, False)
    check_cancel(cancel)
    progress.update(0.05, "decimating")
    points, faces = quadric.simplify(
        np.asarray(mesh.vertices, dtype=np.float32),
        np.asarray(mesh.faces, dtype=np.int32),
        float(reduction),
        float(aggressiveness),
        child=child,
    )
    out = make_mesh(points, faces)
    check_cancel(cancel)
    repaired = False
    if repair and not topology(out).closed_manifold:
        progress.update(0.7, "repairing after decimation")
        out, _ = repair_mesh(out, fix_intersections=False, cancel=cancel)
        repaired = True
    progress.update(1.0, "decimated")
    return out, DecimationReport(n, len(out.faces), float(reduction), repaired)

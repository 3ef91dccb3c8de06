"""Make a mesh a closed, oriented 2-manifold as a slicer reads it, and decimate it safely.

Repair works per connected component, so a spine of separate vertebrae keeps every vertebra:
components enclosing less than ``min_component_mm3`` are dropped (never by triangle count:
after 80 % decimation of a thin-slice CT a real 30 mm3 bone fragment has fewer than 100
triangles), and only the components that fail the check (as an STL reader would see them,
vertices merged at float32) go through MeshFix, which fills holes, removes non-manifold parts
and self-intersections. Inner shells (cavities) keep their inward normals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import fast_simplification
import numpy as np
import pymeshfix
import trimesh

from app.errors import MeshError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.core import (
    Topology,
    component_labels,
    concatenate,
    defect_vertices,
    first_unique_rows,
    inspect_faces,
    make_mesh,
    merge_float32,
    self_intersecting_faces,
    signed_volume,
    split_by_labels,
    split_components,
    submesh,
    topology,
    vertex_clusters,
)


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
    tris = self_intersecting_faces(mesh)
    return np.unique(np.asarray(mesh.faces)[tris]), tris


def remove_self_intersections(
    mesh: trimesh.Trimesh, rounds: int = 3
) -> tuple[trimesh.Trimesh, int]:
    """Cut out the triangles that cross each other (and their neighbours) and refill the holes.

    Returns the mesh (``mesh`` itself when nothing crosses) and the number of intersecting
    triangles left (0 when it worked). After the first full search only the rebuilt patches
    are searched again.
    """
    original, mesh = mesh, weld(mesh)
    tris = self_intersecting_faces(mesh)
    if len(tris) == 0:
        return original, 0
    for _ in range(rounds):
        if len(tris) == 0:
            return mesh, 0
        fixed = _fix_crossings(mesh, tris)
        if fixed is None:
            break
        new = _new_faces(fixed, mesh)
        mesh = fixed
        tris = self_intersecting_faces(mesh, only=new)
    return mesh, len(tris)


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
    faces = faces[first_unique_rows(np.sort(faces, axis=1))]
    used, inverse = np.unique(faces, return_inverse=True)
    return make_mesh(vertices[used], inverse.reshape(-1, 3))


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
    loops = _boundary_loops(faces)
    if not loops:
        return mesh
    if max(len(loop) for loop in loops) > max_fan_edges:
        tin = pymeshfix.PyTMesh()
        tin.set_quiet(True)
        tin.load_array(np.asarray(mesh.vertices), faces.astype(np.int32))
        tin.fill_small_boundaries(nbe=0, refine=True)
        vertices, new_faces = tin.return_arrays()
        return make_mesh(vertices, new_faces)
    vertices = [np.asarray(mesh.vertices)]
    added = [faces]
    next_id = len(mesh.vertices)
    for loop in loops:
        ring = np.asarray(loop)
        if len(ring) == 3:
            added.append(ring[::-1][None, :])
            continue
        vertices.append(np.asarray(mesh.vertices)[ring].mean(axis=0)[None, :])
        # the existing faces run u -> v along the loop; the patch runs v -> u
        added.append(np.column_stack([np.roll(ring, -1), ring, np.full(len(ring), next_id)]))
        next_id += 1
    return make_mesh(np.concatenate(vertices), np.concatenate(added))


def _boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Boundary loops as vertex lists in the direction the faces run along them."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = int(faces.max()) + 1 if len(faces) else 0
    key = np.minimum(directed[:, 0], directed[:, 1]) * n + np.maximum(
        directed[:, 0], directed[:, 1]
    )
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    boundary = directed[counts[inverse] == 1]
    following = dict(zip(boundary[:, 0].tolist(), boundary[:, 1].tolist(), strict=True))
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop, v = [], start
        while v not in seen and v in following:
            seen.add(v)
            loop.append(v)
            v = following[v]
        if len(loop) >= 3 and v == start:
            loops.append(loop)
    return loops


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
    welded = weld(mesh)
    # when weld dropped no face, ``welded`` is ``mesh`` as an STL reader sees it
    if 0 < len(welded.faces) == len(mesh.faces):
        before, defects = inspect_faces(welded.faces)
    else:
        before = topology(mesh)
        defects = defect_vertices(welded.faces) if not before.closed_manifold else None
    report = RepairReport(before=before.to_dict(), after={}, faces_before=len(mesh.faces))
    parts, closed = _clusters(welded, defects)
    del welded, defects
    kept: list[trimesh.Trimesh] = []

    def small(part: trimesh.Trimesh) -> bool:
        return len(part.faces) < min_component_faces or abs(signed_volume(part)) < min_component_mm3

    for n, (part, ok) in enumerate(zip(parts, closed, strict=True)):
        check_cancel(cancel)
        progress.update(n / max(len(parts), 1), "repairing components")
        if small(part):
            report.components_removed += 1
            continue
        if ok:
            kept.append(part)
            continue
        fixed = _fix_component(part)
        report.components_fixed += 1
        if np.sign(signed_volume(fixed)) != np.sign(signed_volume(part)):
            fixed = make_mesh(fixed.vertices, np.asarray(fixed.faces)[:, ::-1])
        pieces = split_components(fixed)
        report.components_removed += sum(small(p) for p in pieces)
        kept.extend(p for p in pieces if not small(p))
    if not kept:
        msg = "nothing printable is left after removing small parts; check the segment"
        raise MeshError(msg)
    out = concatenate(kept)
    del kept, parts
    if signed_volume(out) < 0:
        out = make_mesh(out.vertices, np.asarray(out.faces)[:, ::-1])
    changed = report.components_fixed or report.components_removed or not before.closed_manifold
    after = topology(out) if changed else before
    if not after.closed_manifold:
        out, after = _second_pass(out, report)
    if fix_intersections:
        check_cancel(cancel)
        progress.update(0.9, "removing self-intersections")
        crossed, left = remove_self_intersections(out)
        report.self_intersections_left = left
        if crossed is not out:
            out, after = crossed, topology(crossed)
    report.after = after.to_dict()
    report.faces_after = len(out.faces)
    progress.update(1.0, "repaired")
    return out, report


def _clusters(
    welded: trimesh.Trimesh, defects: np.ndarray | None
) -> tuple[list[trimesh.Trimesh], np.ndarray]:
    """Clusters of a welded mesh (faces joined through shared vertices, so bodies touching at
    one vertex are repaired together) and whether each is a closed 2-manifold: none of its
    vertices is among the ``defects`` found once over the whole mesh (None: there are none).
    """
    faces = np.asarray(welded.faces, dtype=np.int64)
    labels = vertex_clusters(faces)
    n = int(labels.max()) + 1 if len(labels) else 0
    closed = np.ones(n, dtype=bool)
    if defects is not None and len(defects) and n:
        defect = np.zeros(len(welded.vertices), dtype=bool)
        defect[defects] = True
        closed[labels[defect[faces].any(axis=1)]] = False
    return split_by_labels(welded, labels), closed


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
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, DecimationReport]:
    """Quadric decimation (fast-simplification) that ends watertight.

    Give either ``reduction`` (fraction of triangles removed: 0.8 keeps 20 %) or
    ``target_faces``. The result is re-checked as an STL reader sees it and repaired when the
    collapse pinched a thin region (``repair=False`` leaves that to the caller, who is about
    to run :func:`repair_mesh` anyway).
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
        return mesh, DecimationReport(n, n, 0.0, False)
    check_cancel(cancel)
    progress.update(0.05, "decimating")
    points, faces = fast_simplification.simplify(
        np.asarray(mesh.vertices, dtype=np.float32),
        np.asarray(mesh.faces, dtype=np.int32),
        target_reduction=float(reduction),
        agg=float(aggressiveness),
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

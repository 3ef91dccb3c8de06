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

from app.errors import MeshError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh import quadric
from app.tools.mesh.core import (
    Topology,
    compact,
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
    submesh,
    topology,
    triple_products,
    vertex_clusters,
)
from app.tools.mesh.patch import boundary_loops, fan_fill, fix_locally

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
        patched = fix_locally(np.asarray(mesh.vertices), faces, seeds, rings=rings, cut_seeds=True)
        if patched is not None:
            vertices, faces, new = patched
            return _compact(vertices, faces), new
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
    vertices, faces, before, defects = _weld_and_inspect(mesh)
    report = RepairReport(before=before.to_dict(), after={}, faces_before=len(mesh.faces))
    small = _SmallParts(min_component_faces, min_component_mm3)
    faces, removed, alive, clusters = small.drop(vertices, faces)
    report.components_removed += removed
    defects = defects[alive[defects]]
    check_cancel(cancel)
    progress.update(0.2, "repairing defects")
    if len(defects):
        vertices, faces = _fix_defects(vertices, (faces, clusters), defects, small, report)
    out = _compact(vertices, faces)
    if signed_volume(out) < 0:
        out = make_mesh(out.vertices, np.asarray(out.faces)[:, ::-1])
    changed = report.components_removed or report.components_fixed
    after = topology(out) if changed or not before.closed_manifold else before
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


def _weld_and_inspect(
    mesh: trimesh.Trimesh,
) -> tuple[np.ndarray, np.ndarray, Topology, np.ndarray]:
    """``mesh`` welded as :func:`weld` (vertices not yet compacted), its topology as an STL
    reader sees it and its defect vertices, from one pass over the edges. Copies of a
    triangle are dropped after that pass: the defects they made are still listed, which only
    widens the patches around them (a patch checks its own defects exactly)."""
    vertices, faces = merge_float32(mesh.vertices, mesh.faces)
    degenerate = (
        (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    )
    faces = faces[~degenerate]
    if len(faces) == 0:
        return vertices, faces, topology(mesh), np.zeros(0, dtype=np.int64)
    before, defects = inspect_faces(faces, degenerate=int(degenerate.sum()))
    return vertices, faces[first_unique_rows(np.sort(faces, axis=1))], before, defects


@dataclass(frozen=True)
class _SmallParts:
    """Which vertex-joined clusters are too small to keep: too few triangles or too little
    enclosed volume."""

    min_faces: int
    min_mm3: float

    def drop(
        self, vertices: np.ndarray, faces: np.ndarray
    ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """``faces`` without the small clusters, how many clusters went, a vertex mask of
        what is left and the cluster of each face left (0, 1, ...)."""
        alive = np.zeros(len(vertices), dtype=bool)
        if len(faces) == 0:
            return faces, 0, alive, np.zeros(0, dtype=np.int64)
        labels = vertex_clusters(faces)
        n = int(labels.max()) + 1
        volume = triple_products(vertices, faces) / 6.0
        small = (np.bincount(labels, minlength=n) < self.min_faces) | (
            np.abs(np.bincount(labels, weights=volume, minlength=n)) < self.min_mm3
        )
        kept = ~small[labels]
        faces, labels = faces[kept], (np.cumsum(~small) - 1)[labels[kept]]
        alive[faces.ravel()] = True
        return faces, int(small.sum()), alive, labels


def _fix_defects(
    vertices: np.ndarray,
    clustered: tuple[np.ndarray, np.ndarray],
    defects: np.ndarray,
    small: _SmallParts,
    report: RepairReport,
) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild the neighbourhood of each defect (wider rings if needed); the clusters a patch
    cannot close go through the whole-part repair. ``clustered``: the faces and the
    vertex-joined cluster of each."""
    faces, labels = clustered
    touched = np.zeros(int(labels.max()) + 1, dtype=bool)
    marked = np.zeros(len(vertices), dtype=bool)
    marked[defects] = True
    touched[labels[marked[faces].any(axis=1)]] = True
    report.components_fixed += int(touched.sum())
    for rings in (3, 6):
        patched = fix_locally(vertices, faces, defects, rings=rings)
        if patched is not None:
            vertices, faces, _ = patched
            faces, removed, _, _ = small.drop(vertices, faces)
            report.components_removed += removed
            return vertices, faces
    report.notes.append("a defect needed a whole-part repair")
    mesh = make_mesh(vertices, faces)
    parts = split_by_labels(mesh, labels)
    kept = [p for p, bad in zip(parts, touched, strict=True) if not bad]
    for part in (p for p, bad in zip(parts, touched, strict=True) if bad):
        kept.extend(_fix_part(part, small, report))
    out = concatenate(kept)
    return np.asarray(out.vertices), np.asarray(out.faces, dtype=np.int64)


def _fix_part(part: trimesh.Trimesh, small: _SmallParts, report: RepairReport) -> list:
    fixed = _fix_component(part)
    if np.sign(signed_volume(fixed)) != np.sign(signed_volume(part)):
        fixed = make_mesh(fixed.vertices, np.asarray(fixed.faces)[:, ::-1])
    faces, removed, _, _ = small.drop(np.asarray(fixed.vertices), np.asarray(fixed.faces))
    report.components_removed += removed
    return [make_mesh(np.asarray(fixed.vertices), faces)] if len(faces) else []


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

"""Local repair: rebuild the neighbourhood of each defect, never the whole part.

A patch is every triangle within a few edge rings of the defects. Its inner vertices (those
within the rings) have all their triangles inside the patch, so a defect search on the patch
alone is exact for them, and the patch's outer border is never touched. Each round cuts the
triangles around the inner defects and fills the holes with fans, as MeshFix's local clean
does; the work is proportional to the defects, not to the mesh. When a cut would reach the
border, or a hole is too large for a fan, the patch gives up (``None``) and the caller tries
wider rings or a whole-part repair.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from app.tools.mesh.core import defect_vertices

MAX_FAN_EDGES = 64


def grow(faces: np.ndarray, seeds: np.ndarray, n_vertices: int, rings: int) -> np.ndarray:
    """Vertex mask of ``seeds`` and every vertex within ``rings`` edge rings of them."""
    mark = np.zeros(n_vertices, dtype=bool)
    mark[seeds] = True
    for _ in range(rings):
        touched = mark.take(faces).any(axis=1)
        mark[np.compress(touched, faces, axis=0)] = True
    return mark


class Patch(NamedTuple):
    """A mesh with the neighbourhood of some defects rebuilt (see :func:`patch_locally`)."""

    vertices: np.ndarray  # the input's, then the fans' centres
    faces: np.ndarray  # the faces kept (the input's outside the patch, in order), then the patch
    rebuilt: np.ndarray  # indices of the patch's faces
    replaced: np.ndarray  # mask of the input's faces that the patch replaced
    inner: np.ndarray  # mask of the vertices within the rings (now no defect), and the centres


def patch_locally(
    vertices: np.ndarray,
    faces: np.ndarray,
    seeds: np.ndarray,
    *,
    rings: int = 4,
    rounds: int = 4,
    cut_seeds: bool = False,
) -> Patch | None:
    """The mesh with the defects around ``seeds`` rebuilt, or None when this patch cannot be
    closed inside its border; it also tells which of ``faces`` the patch replaced and which
    vertices it checked. When it is not None, no vertex within the rings is a defect any more
    (every seed is one of them), and no face outside the patch was changed.

    ``cut_seeds`` cuts the triangles around every seed first, defect or not (self-intersections:
    the crossing triangles' corners are the seeds). New vertices are appended; faces outside
    the patch keep their vertices and come first, in their order.
    """
    inner = grow(faces, seeds, len(vertices), rings)
    in_patch = inner.take(faces).any(axis=1)
    patch = np.compress(in_patch, faces, axis=0)
    points = [vertices]
    n_points = len(vertices)
    forced = np.asarray(seeds, dtype=np.int64) if cut_seeds else np.zeros(0, dtype=np.int64)
    for _ in range(rounds):
        bad = np.union1d(_inner_defects(patch, inner), forced)
        forced = forced[:0]
        if len(bad) == 0:
            break
        patch = _cut_then_unpinch(patch, bad, inner)
        if patch is None:
            return None
        filled = _fan_fill(patch, np.concatenate(points), inner, n_points)
        if filled is None:
            return None
        patch, centres = filled
        points.append(_apart_in_float32(centres, np.concatenate(points)))
        n_points += len(centres)
        inner = np.concatenate([inner, np.ones(len(centres), dtype=bool)])
    else:
        if len(_inner_defects(patch, inner)):
            return None
    kept = np.compress(~in_patch, faces, axis=0)
    out = np.concatenate([kept, patch])
    return Patch(np.concatenate(points), out, np.arange(len(kept), len(out)), in_patch, inner)


def _apart_in_float32(centres: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``centres`` moved by a float32 step where one would fall on an existing vertex once the
    mesh is stored as float32 (an STL reader would merge the two and pinch the surface).
    Points are compared by their bits, as :func:`~app.tools.mesh.core.merge_float32` does;
    only the points sharing a centre's x are compared whole."""
    if len(centres) == 0:
        return centres
    known = _bits32(points)
    order = np.argsort(known[:, 0])
    xs = known[:, 0].take(order)
    centres = centres.astype(np.float32)
    for _ in range(8):
        mine = _bits32(centres)
        first = np.searchsorted(xs, mine[:, 0])
        last = np.searchsorted(xs, mine[:, 0], side="right")
        clash = [
            i for i in np.flatnonzero(last > first).tolist()
            if (known.take(order[first[i] : last[i]], axis=0) == mine[i]).all(axis=1).any()
        ]  # fmt: skip
        if not clash:
            break
        centres[clash, 0] = np.nextafter(centres[clash, 0], np.float32(np.inf))
    return centres.astype(np.float64)


def _bits32(points: np.ndarray) -> np.ndarray:
    """Each point's float32 coordinates as their bits (uint32, n x 3)."""
    return np.ascontiguousarray(points, dtype=np.float32).view(np.uint32).reshape(-1, 3)


def _inner_defects(patch: np.ndarray, inner: np.ndarray, *, boundary: bool = True) -> np.ndarray:
    bad = defect_vertices(patch, boundary=boundary)
    return bad[inner[bad]]


def _cut_then_unpinch(patch: np.ndarray, bad: np.ndarray, inner: np.ndarray) -> np.ndarray | None:
    """Cut the triangles touching ``bad``, then until the holes meet at no vertex; None when a
    cut reaches the border or empties the patch."""
    for _ in range(10):
        patch = _cut(patch, bad, inner)
        if patch is None or len(patch) == 0:
            return None
        bad = _inner_defects(patch, inner, boundary=False)
        if len(bad) == 0:
            return patch
    return None


def _cut(patch: np.ndarray, bad: np.ndarray, inner: np.ndarray) -> np.ndarray | None:
    marked = np.zeros(len(inner), dtype=bool)
    marked[bad] = True
    drop = marked[patch].any(axis=1)
    if not inner[patch[drop]].all():  # the cut would open the patch's border
        return None
    return patch[~drop]


def _fan_fill(
    patch: np.ndarray, points: np.ndarray, inner: np.ndarray, first_id: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The patch with each inner hole closed by a fan, and the fans' centres; None when a
    hole is longer than :data:`MAX_FAN_EDGES`."""
    loops = [loop for loop in boundary_loops(patch) if inner[loop[0]]]
    if any(len(loop) > MAX_FAN_EDGES for loop in loops):
        return None
    return fan_fill(patch, points, loops, first_id)


def fan_fill(
    faces: np.ndarray, points: np.ndarray, loops: list[list[int]], first_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """``faces`` with each of ``loops`` closed by a fan around its centroid (a triangle closes
    a loop of three), and the centroids, numbered from ``first_id``. Exact orientation: the
    faces run u -> v along a loop, its fan runs v -> u."""
    added, centres = [faces], []
    for loop in loops:
        ring = np.asarray(loop)
        if len(ring) == 3:
            added.append(ring[::-1][None, :])
            continue
        centre = first_id + len(centres)
        centres.append(points[ring].mean(axis=0))
        added.append(np.column_stack([np.roll(ring, -1), ring, np.full(len(ring), centre)]))
    return np.concatenate(added), np.asarray(centres, dtype=np.float64).reshape(-1, 3)


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Boundary loops as vertex lists in the direction the faces run along them."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(
        key[:, 0] * (int(faces.max()) + 1) + key[:, 1], return_inverse=True, return_counts=True
    )
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

"""Mesh to layer regions: vectorised triangle–plane intersection and loop chaining.

For a block of layers at once, every (triangle, plane) pair that crosses gives one segment whose
end points lie on two triangle edges. A vertex counts as *above* a plane when ``z >= plane``, so
every edge either crosses or not and no degenerate case exists. Segments are oriented from the
mesh's winding (outer contours come out counter-clockwise seen from above) and chained into loops
through the ids of the edges they start and end on: the successor of a segment is the one that
starts on the edge this one ends on. Loops are found with pointer jumping (numpy only, no Python
loop over segments), then nested by an even-odd containment count into shapely polygons.
"""

from __future__ import annotations

import math

import numpy as np
import shapely

from app.errors import PrintingError
from app.progress import CancelToken, Progress, check_cancel, ensure

_BLOCK_LAYERS = 48
_EMPTY = shapely.MultiPolygon()


def layer_heights(height: float, first: float, layer: float) -> tuple[np.ndarray, np.ndarray]:
    """Print heights (top of each layer) and layer thicknesses for an object ``height`` mm tall.

    The first layer is ``first`` thick, the rest ``layer``; the last layer is thinned to end at the
    object's top (or dropped when it would be thinner than a quarter of a layer).
    """
    if height < first / 2:
        msg = f"the part is {height:.3f} mm tall, thinner than half a first layer; check its scale"
        raise PrintingError(msg)
    count = 1 + max(0, math.ceil((height - first) / layer - 1e-6))
    tops = first + layer * np.arange(count, dtype=np.float64)
    tops[0] = first
    if count > 1 and tops[-1] > height + 1e-6:
        if height - tops[-2] < 0.25 * layer:
            tops = tops[:-1]
        else:
            tops[-1] = height
    thickness = np.diff(np.concatenate([[0.0], tops]))
    return tops, thickness


def _merge_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weld vertices closer than 1e-5 mm so neighbouring triangles share edge ids."""
    rounded = np.round(vertices / 1e-5).astype(np.int64)
    unique, inverse = np.unique(rounded, axis=0, return_inverse=True)
    if len(unique) == len(vertices):
        return vertices, faces
    welded = np.zeros((len(unique), 3))
    welded[inverse.ravel()] = vertices
    faces = inverse.ravel()[faces]
    keep = (
        (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    )
    return welded, faces[keep]


def slice_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    slice_z: np.ndarray,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[shapely.Geometry]:
    """Cross-sections of a closed triangle mesh at heights ``slice_z``: one (Multi)Polygon each."""
    progress = ensure(progress)
    vertices, faces = _merge_vertices(np.asarray(vertices, np.float64), np.asarray(faces, np.int64))
    tri_z = vertices[:, 2][faces]
    zmin, zmax = tri_z.min(axis=1), tri_z.max(axis=1)
    first_layer = np.searchsorted(slice_z, zmin, side="right")
    end_layer = np.searchsorted(slice_z, zmax, side="right")
    crossing = end_layer > first_layer
    tri_ids = np.flatnonzero(crossing)
    order = np.argsort(first_layer[tri_ids], kind="stable")
    tri_ids = tri_ids[order]
    tri_first = first_layer[tri_ids]
    tri_end = end_layer[tri_ids]
    regions: list[shapely.Geometry] = []
    n_layers = len(slice_z)
    for block in range(0, n_layers, _BLOCK_LAYERS):
        check_cancel(cancel)
        progress.update(block / max(n_layers, 1), "slicing layers")
        stop = min(block + _BLOCK_LAYERS, n_layers)
        upto = np.searchsorted(tri_first, stop, side="left")
        sel = tri_end[:upto] > block
        ids = tri_ids[:upto][sel]
        lo = np.maximum(tri_first[:upto][sel], block)
        hi = np.minimum(tri_end[:upto][sel], stop)
        regions.extend(
            _slice_block(
                vertices, faces, ids, lo=lo, hi=hi, slice_z=slice_z, block=block, stop=stop
            )
        )
    progress.update(1.0, "slicing layers")
    return regions


def _slice_block(
    vertices: np.ndarray,
    faces: np.ndarray,
    ids: np.ndarray,
    *,
    lo: np.ndarray,
    hi: np.ndarray,
    slice_z: np.ndarray,
    block: int,
    stop: int,
) -> list[shapely.Geometry]:
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return [_EMPTY] * (stop - block)
    tri = np.repeat(ids, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    layer = np.repeat(lo, counts) + (np.arange(total) - starts)
    z = slice_z[layer]
    f = faces[tri]  # (k, 3) vertex ids
    above = vertices[f, 2] >= z[:, None]
    lone_is_above = above.sum(axis=1) == 1
    lone = np.where(lone_is_above, np.argmax(above, axis=1), np.argmin(above, axis=1))
    rows = np.arange(total)
    v_l = f[rows, lone]
    v_a = f[rows, (lone + 1) % 3]
    v_b = f[rows, (lone + 2) % 3]
    p_la = _cut(vertices, v_l, v_a, z)
    p_bl = _cut(vertices, v_b, v_l, z)
    n_vert = np.int64(len(vertices))
    key_la = np.minimum(v_l, v_a) * n_vert + np.maximum(v_l, v_a)
    key_bl = np.minimum(v_b, v_l) * n_vert + np.maximum(v_b, v_l)
    # lone vertex above: segment runs from edge (L, A) to edge (B, L); below: the reverse
    start_pt = np.where(lone_is_above[:, None], p_la, p_bl)
    start_key = np.where(lone_is_above, key_la, key_bl)
    end_key = np.where(lone_is_above, key_bl, key_la)
    span = n_vert * n_vert
    start_key = start_key + layer * span
    end_key = end_key + layer * span
    chain_of, order, closed = _chain(start_key, end_key)
    return _rings_to_regions(
        start_pt[order], chain_of, closed, layer=layer[order], block=block, stop=stop
    )


def _cut(vertices: np.ndarray, a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    pa, pb = vertices[a], vertices[b]
    dz = pb[:, 2] - pa[:, 2]
    t = np.where(np.abs(dz) > 0, (z - pa[:, 2]) / np.where(dz == 0, 1.0, dz), 0.0)
    return pa[:, :2] + (pb[:, :2] - pa[:, :2]) * t[:, None]


def _chain(start_key: np.ndarray, end_key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order segments into chains.

    Returns ``(chain id per ordered segment, order, closed flag per chain id)``: ``order`` lists
    segment indices chain by chain, in walking order.
    """
    n = len(start_key)
    idx = np.arange(n)
    by_start = np.argsort(start_key, kind="stable")
    sorted_start = start_key[by_start]
    # the r-th segment ending on an edge continues with the r-th one starting on it, so a
    # non-manifold edge (shared by 4 triangles) still gives each start exactly one predecessor
    by_end = np.argsort(end_key, kind="stable")
    sorted_end = end_key[by_end]
    group_first = np.searchsorted(sorted_end, sorted_end, side="left")
    rank = np.empty(n, dtype=np.int64)
    rank[by_end] = np.arange(n) - group_first
    pos = np.searchsorted(sorted_start, end_key, side="left") + rank
    pos_ok = pos < n
    pos = np.minimum(pos, n - 1)
    found = pos_ok & (sorted_start[pos] == end_key)
    succ = np.where(found, by_start[pos], idx)
    steps = max(1, math.ceil(math.log2(n + 1)) + 1)
    # smallest index reachable forward: equal for all members of a cycle
    low = idx.copy()
    jump = succ.copy()
    for _ in range(steps):
        low = np.minimum(low, low[jump])
        jump = jump[jump]
    in_cycle = succ[jump] != jump
    # break every cycle just before its smallest member
    cut = in_cycle & (succ == low)
    succ = np.where(cut, idx, succ)
    # list ranking: distance to the chain's tail, and the tail as the chain id
    dist = (succ != idx).astype(np.int64)
    jump = succ.copy()
    for _ in range(steps):
        dist = dist + dist[jump]
        jump = jump[jump]
    tail = jump
    order = np.lexsort((-dist, tail))
    chain_of = tail[order]
    closed = np.zeros(n, dtype=bool)
    closed[tail[in_cycle]] = True
    return chain_of, order, closed


def _rings_to_regions(
    points: np.ndarray,
    chain_of: np.ndarray,
    closed: np.ndarray,
    *,
    layer: np.ndarray,
    block: int,
    stop: int,
) -> list[shapely.Geometry]:
    """Chains (ordered points, chain ids) to one region per layer by even-odd nesting."""
    boundaries = np.flatnonzero(np.diff(chain_of)) + 1
    first = np.concatenate([[0], boundaries])
    size = np.diff(np.concatenate([first, [len(chain_of)]]))
    chain_ids = chain_of[first]
    is_closed = closed[chain_ids]
    if not is_closed.all():
        # open chains come from holes or non-manifold edges in the mesh: close the short gaps
        last = first + size - 1
        gap = np.linalg.norm(points[first] - points[last], axis=1)
        is_closed |= gap < 2.0
    keep = is_closed & (size >= 3)
    if not keep.any():
        return [_EMPTY] * (stop - block)
    seg_keep = np.repeat(keep, size)
    ring_index = np.repeat(np.arange(len(first)), size)[seg_keep]
    ring_index = np.unique(ring_index, return_inverse=True)[1]
    coords = points[seg_keep]
    ring_layer = layer[first[keep]]
    polys = shapely.polygons(shapely.linearrings(coords, indices=ring_index))
    area = shapely.area(polys)
    ok = area > 1e-6
    polys, ring_layer, area = polys[ok], ring_layer[ok], area[ok]
    if not len(polys):
        return [_EMPTY] * (stop - block)
    first_pt = shapely.get_point(shapely.get_exterior_ring(polys), 0)
    # separate layers in x so one spatial query nests every layer of the block
    shift = (ring_layer - block).astype(np.float64) * 1.0e5
    moved = _shift_x(polys, shift)
    moved_pt = _shift_x(first_pt, shift)
    tree = shapely.STRtree(moved)
    pt_idx, poly_idx = tree.query(moved_pt, predicate="within")
    depth = np.bincount(pt_idx, minlength=len(polys))
    parent = np.full(len(polys), -1)
    direct = depth[poly_idx] == depth[pt_idx] - 1
    parent[pt_idx[direct]] = poly_idx[direct]
    return _assemble(polys, depth, parent, ring_layer=ring_layer, block=block, stop=stop)


def _shift_x(geoms: np.ndarray, shift: np.ndarray) -> np.ndarray:
    _, index = shapely.get_coordinates(geoms, return_index=True)
    offset = np.zeros((len(index), 2))
    offset[:, 0] = shift[index]
    return shapely.transform(geoms, lambda c: c + offset)


def _assemble(
    polys: np.ndarray,
    depth: np.ndarray,
    parent: np.ndarray,
    *,
    ring_layer: np.ndarray,
    block: int,
    stop: int,
) -> list[shapely.Geometry]:
    shells = np.flatnonzero(depth % 2 == 0)
    holes_of: dict[int, list[int]] = {}
    for hole in np.flatnonzero(depth % 2 == 1):
        if parent[hole] >= 0:
            holes_of.setdefault(int(parent[hole]), []).append(int(hole))
    exteriors = shapely.get_exterior_ring(polys)
    by_layer: dict[int, list[shapely.Geometry]] = {}
    for shell in shells:
        ring = exteriors[shell]
        holes = [exteriors[h] for h in holes_of.get(int(shell), [])]
        poly = shapely.Polygon(ring, holes) if holes else shapely.Polygon(ring)
        by_layer.setdefault(int(ring_layer[shell]), []).append(poly)
    out: list[shapely.Geometry] = []
    for layer in range(block, stop):
        parts = by_layer.get(layer)
        if not parts:
            out.append(_EMPTY)
            continue
        geom = shapely.MultiPolygon(parts) if len(parts) > 1 else parts[0]
        if not shapely.is_valid(geom):
            geom = shapely.make_valid(shapely.buffer(geom, 0))
            geom = shapely.union_all(
                [g for g in shapely.get_parts(geom) if isinstance(g, shapely.Polygon)]
            )
        out.append(geom)
    return out

"""A mesh's cross-section on the slice views: the mesh ∩ slice plane as line segments in the
view's 2D millimetres, fast enough to recompute on every scroll.

The slice views show the volume on its own voxel grid (:mod:`app.viewers.geometry`), so a
slice is the plane "voxel index along the view's normal = s". Mapping the mesh's LPS vertices
into (display column, display row, slice) is affine, and an affine map keeps planes and lines,
so cutting in that space is exact, whatever the grid's obliquity or flips. Each view keeps
the mesh's triangles binned by the slices they cross (built once per mesh version and view);
a slice change then cuts only that slice's triangles, vectorised over them.

This module has no Qt in it; it is tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.imaging.volume import Volume
from app.viewers.geometry import ORIENTATIONS, SliceGeometry


def index_points(geometry: SliceGeometry, lps: np.ndarray) -> np.ndarray:
    """(N, 3) LPS mm -> (N, 3) continuous voxel indices (i, j, k); the same for all views."""
    affine = geometry.affine
    return (np.asarray(lps, dtype=float) - affine[:3, 3]) @ np.linalg.inv(affine[:3, :3]).T


def display_points(geometry: SliceGeometry, ijk: np.ndarray) -> np.ndarray:
    """(N, 3) voxel indices -> (N, 3) (display mm across, display mm down, slice index)."""
    col, row = ijk[:, geometry.h_axis], ijk[:, geometry.v_axis]
    if geometry.h_flip:
        col = geometry.width - 1 - col
    if geometry.v_flip:
        row = geometry.height - 1 - row
    sx, sy = geometry.pixel_mm
    return np.column_stack([col * sx, row * sy, ijk[:, geometry.n_axis]])


@dataclass(frozen=True)
class Cut:
    """One slice's cross-section: ``segments`` (M, 2, 2) in display mm, ordered so that each
    joins the next within a chain; ``starts`` the first segment of each chain; ``values`` (M,)
    the vertex scalar interpolated at each segment's middle (None without a scalar)."""

    segments: np.ndarray
    starts: np.ndarray
    values: np.ndarray | None = None

    def polylines(self, split_at: np.ndarray | None = None) -> list[np.ndarray]:
        """The chains as (K, 2) point arrays (a closed loop repeats its first point); also
        split where ``split_at`` (M,) changes, e.g. a colour bin."""
        if not len(self.segments):
            return []
        starts = self.starts
        if split_at is not None and len(split_at):
            starts = np.union1d(starts, np.flatnonzero(np.diff(split_at)) + 1)
        ends = np.append(starts[1:], len(self.segments))
        return [
            np.vstack([self.segments[a:b, 0], self.segments[b - 1 : b, 1]])
            for a, b in zip(starts, ends, strict=True)
        ]


def _empty_cut(with_values: bool) -> Cut:
    values = np.zeros(0) if with_values else None
    return Cut(np.zeros((0, 2, 2)), np.zeros(0, dtype=np.int64), values)


def _successors(first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """For each segment, the one starting at the node where it ends (itself when none).

    On a consistently wound closed mesh every node starts one segment and ends one, so the
    two sorted key lists line up; otherwise each end is looked up among the starts."""
    index = np.arange(len(first))
    by_first, by_last = np.argsort(first, kind="stable"), np.argsort(last, kind="stable")
    if np.array_equal(first[by_first], last[by_last]):
        nxt = np.empty_like(index)
        nxt[by_last] = by_first
        return nxt
    sorted_first = first[by_first]
    at = np.minimum(np.searchsorted(sorted_first, last), len(first) - 1)
    return np.where(sorted_first[at] == last, by_first[at], index)


def _chain_order(first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order segments, given as (start node, end node) ids, into chains: (order, starts).

    Cycles are broken at their lowest segment, then every segment's distance to its chain's
    tail is found by pointer jumping (log2 M numpy steps, no Python loop over segments) and
    gives its place. A node two segments start from (a mesh wound inconsistently) only adds
    a break: the chains stay true.
    """
    n = len(first)
    index = np.arange(n)
    nxt = _successors(first, last)
    steps = int(np.ceil(np.log2(n + 1))) + 1
    low, ahead = index.copy(), nxt.copy()
    for _ in range(steps):
        low, ahead = np.minimum(low, low[ahead]), ahead[ahead]
    on_cycle = nxt[ahead] != ahead
    nxt = np.where(on_cycle & (nxt == low), index, nxt)
    rank, ahead = (nxt != index).astype(np.int64), nxt.copy()
    for _ in range(steps):
        rank, ahead = rank + rank[ahead], ahead[ahead]
    # Chains one after another (grouped by their tail), each from its head to its tail.
    sizes = np.bincount(ahead, minlength=n)
    place = (np.cumsum(sizes) - sizes)[ahead] + sizes[ahead] - 1 - rank
    order = np.empty(n, dtype=np.int64)
    order[place] = index
    joined = last[order[:-1]] == first[order[1:]]
    starts = np.concatenate([[0], np.flatnonzero(~joined) + 1]).astype(np.int64)
    return order, starts


def _runs_backwards(corners: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Segments pointing against the way their triangle's normal turns about the view's
    normal: flipped, every loop of a consistently wound mesh runs one way round. Only the
    normal's two in-plane components matter."""
    e1, e2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    normal_x = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
    normal_y = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
    direction = segments[:, 1] - segments[:, 0]
    return direction[:, 1] * normal_x - direction[:, 0] * normal_y < 0


@dataclass(frozen=True)
class MeshSection:
    """A mesh in one view's display space, its triangles binned per slice index.

    ``members[starts[s]:starts[s + 1]]`` are the triangles that reach slice ``s``.
    """

    points: np.ndarray  # (V, 3): display mm across, down, slice index
    faces: np.ndarray  # (F, 3) vertex indices (int32)
    starts: np.ndarray  # (n_slices + 1,) offsets into members
    members: np.ndarray  # triangle indices, grouped by slice
    values: np.ndarray | None = None  # (V,) a scalar per vertex (e.g. distance in mm)

    @classmethod
    def build(
        cls,
        geometry: SliceGeometry,
        vertices: np.ndarray,
        faces: np.ndarray,
        values: np.ndarray | None = None,
    ) -> MeshSection:
        """Bin a mesh (LPS mm) for ``geometry``'s view."""
        return cls.from_index(geometry, index_points(geometry, vertices), faces, values)

    @classmethod
    def from_index(
        cls,
        geometry: SliceGeometry,
        ijk: np.ndarray,
        faces: np.ndarray,
        values: np.ndarray | None = None,
    ) -> MeshSection:
        """Bin a mesh whose vertices are given as voxel indices (shared by the three views).

        Vertices and triangles are stored in slice order (integer keys: radix sorts), so a
        slice's cut reads neighbouring memory rather than the whole mesh at random.
        """
        points = display_points(geometry, ijk)
        by_height = np.argsort(np.floor(points[:, 2]).astype(np.int32), kind="stable")
        renumber = np.empty(len(by_height), dtype=np.int32)
        renumber[by_height] = np.arange(len(by_height), dtype=np.int32)
        points = points[by_height]
        faces = renumber[np.asarray(faces)]
        along = points[:, 2][faces]
        first = np.maximum(np.ceil(along.min(axis=1)), 0).astype(np.int64)
        last = np.minimum(np.floor(along.max(axis=1)), geometry.n_slices - 1).astype(np.int64)
        in_order = np.argsort(first, kind="stable")
        faces, first, last = faces[in_order], first[in_order], last[in_order]
        counts = np.maximum(last - first + 1, 0)
        members = np.repeat(np.arange(len(faces), dtype=np.int32), counts)
        # Each triangle's slices: its first slice plus 0, 1, ... within its own run.
        runs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        slices = np.repeat(first, counts) + runs
        order = np.argsort(slices, kind="stable")
        per_slice = np.bincount(slices, minlength=geometry.n_slices)
        starts = np.concatenate([[0], np.cumsum(per_slice)])
        vals = None if values is None else np.asarray(values, dtype=float)[by_height]
        return cls(points, faces, starts, members[order], vals)

    def cut(self, slice_index: int) -> Cut:
        """The mesh ∩ the plane of slice ``slice_index``: one segment per crossing triangle,
        chained.

        A vertex on the plane counts as above it, so neighbouring triangles agree; a point is
        named by the mesh edge it lies on, and each segment runs the way its triangle's
        winding says, so the segments of a closed mesh join up into closed loops.
        """
        if not 0 <= slice_index < len(self.starts) - 1:
            return _empty_cut(self.values is not None)
        tri = self.faces[self.members[self.starts[slice_index] : self.starts[slice_index + 1]]]
        d = self.points[:, 2][tri] - slice_index
        above = d >= 0
        n_above = above.sum(axis=1)
        crossing = np.flatnonzero((n_above == 1) | (n_above == 2))
        if not len(crossing):
            return _empty_cut(self.values is not None)
        tri, d, above, n_above = tri[crossing], d[crossing], above[crossing], n_above[crossing]
        lone = np.where(n_above == 1, np.argmax(above, axis=1), np.argmin(above, axis=1))
        corners = self.points[tri]  # (n, 3 corners, 3)
        # Flat indices of each triangle's lone corner and the two others (one gather each).
        base = 3 * np.arange(len(tri))
        flat_d, flat_tri, flat_xy = d.reshape(-1), tri.reshape(-1), corners.reshape(-1, 3)[:, :2]
        ends, weights, nodes = [], [], []
        for step in (1, 2):
            at_lone, at_other = base + lone, base + (lone + step) % 3
            da, db = flat_d[at_lone], flat_d[at_other]
            t = da / (da - db)
            pa, pb = flat_xy[at_lone], flat_xy[at_other]
            ends.append(pa + t[:, None] * (pb - pa))
            a, b = flat_tri[at_lone], flat_tri[at_other]
            weights.append((a, b, t))
            low, high = np.minimum(a, b).astype(np.int64), np.maximum(a, b)
            nodes.append(low * len(self.points) + high)
        segments, nodes = np.stack(ends, axis=1), np.stack(nodes, axis=1)
        backwards = _runs_backwards(corners, segments)
        segments[backwards] = segments[backwards, ::-1]
        nodes[backwards] = nodes[backwards, ::-1]
        order, starts = _chain_order(nodes[:, 0], nodes[:, 1])
        values = self._middle_values(weights)
        return Cut(segments[order], starts, None if values is None else values[order])

    def _middle_values(self, weights: list[tuple]) -> np.ndarray | None:
        if self.values is None:
            return None
        at_ends = [(1 - t) * self.values[a] + t * self.values[b] for a, b, t in weights]
        return (at_ends[0] + at_ends[1]) / 2


@dataclass(frozen=True)
class ContourLayer:
    """One mesh drawn on the slice views: its sections per orientation and how to draw them.

    ``style`` is ``solid`` or ``dash``; with ``value_range`` the segments are coloured by the
    mesh's vertex values (e.g. distance in mm) instead of ``colour``.
    """

    name: str
    label: str
    colour: tuple[int, int, int]
    sections: dict[str, MeshSection] = field(default_factory=dict)
    style: str = "solid"
    value_range: tuple[float, float] | None = None

    @classmethod
    def build(
        cls,
        name: str,
        label: str,
        colour: tuple[int, int, int],
        volume: Volume,
        *,
        vertices: np.ndarray,
        faces: np.ndarray,
        values: np.ndarray | None = None,
        style: str = "solid",
        value_range: tuple[float, float] | None = None,
    ) -> ContourLayer:
        """Section a mesh (LPS mm) for the three views of ``volume``; seconds on a big bone
        mesh, so call it off the GUI thread."""
        geometries = {o: SliceGeometry.for_volume(volume, o) for o in ORIENTATIONS}
        ijk = index_points(geometries["axial"], vertices)
        sections = {o: MeshSection.from_index(g, ijk, faces, values) for o, g in geometries.items()}
        return cls(name, label, tuple(colour), sections, style, value_range)


def distance_to_mask(volume: Volume, mask: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance in mm from each vertex (LPS) to the surface of a voxel ``mask`` on
    ``volume``'s grid (positive outside, negative inside), read from a distance map of the
    mask's box plus a margin, interpolated linearly; the mask's surface is taken half-way
    between inside and outside voxels."""
    from scipy import ndimage  # noqa: PLC0415 (only this colouring needs it)

    margin = 4
    found = np.argwhere(mask)
    if not len(found):
        return np.full(len(vertices), np.inf)
    low = np.maximum(found.min(axis=0) - margin, 0)
    high = np.minimum(found.max(axis=0) + margin + 1, mask.shape)
    box = np.asarray(mask[tuple(slice(a, b) for a, b in zip(low, high, strict=True))], bool)
    sampling = tuple(reversed(volume.spacing))  # numpy order: k, j, i
    outside = ndimage.distance_transform_edt(~box, sampling=sampling)
    inside = ndimage.distance_transform_edt(box, sampling=sampling)
    half = min(volume.spacing) / 2
    signed = np.where(box, half - inside, outside - half)
    kji = volume.lps_to_index(vertices)[:, ::-1] - low
    return ndimage.map_coordinates(signed, kji.T, order=1, mode="nearest")

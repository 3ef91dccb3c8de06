"""Two mesh versions compared: how far each vertex of the newer lies from the older surface,
and the regions that moved (connected vertices beyond a threshold), per part."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import trimesh

from app.tools.mesh.surface import vertex_deviation

MOVED_MM = 0.05


def moved_regions(
    after: trimesh.Trimesh, distances: np.ndarray, threshold: float = MOVED_MM
) -> list[dict]:
    """Connected groups of vertices of ``after`` further than ``threshold`` from the old
    surface: size, centre (LPS mm), mean and max distance; largest first."""
    moved = distances > threshold
    edges = after.edges_unique
    edges = edges[moved[edges].all(axis=1)]
    nodes = np.flatnonzero(moved)
    groups = trimesh.graph.connected_components(edges, nodes=nodes, min_len=1)
    regions = []
    for group in groups:
        points = after.vertices[group]
        regions.append(
            {
                "vertices": len(group),
                "centre_lps_mm": [round(float(v), 3) for v in points.mean(axis=0)],
                "bbox_min_lps_mm": [round(float(v), 3) for v in points.min(axis=0)],
                "bbox_max_lps_mm": [round(float(v), 3) for v in points.max(axis=0)],
                "mean_mm": round(float(distances[group].mean()), 4),
                "max_mm": round(float(distances[group].max()), 4),
            }
        )
    return sorted(regions, key=lambda r: -r["vertices"])


def part_distances(
    before: Mapping[str, trimesh.Trimesh], after: Mapping[str, trimesh.Trimesh]
) -> dict[str, np.ndarray]:
    """Per part present in both: each vertex of ``after``'s distance (mm) to ``before``."""
    return {n: vertex_deviation(after[n], before[n]) for n in sorted(set(before) & set(after))}


def compare_parts(
    before: Mapping[str, trimesh.Trimesh],
    after: Mapping[str, trimesh.Trimesh],
    threshold: float = MOVED_MM,
    distances: Mapping[str, np.ndarray] | None = None,
) -> dict:
    """Per part present in both: the distance summary and moved regions; parts added or
    removed are named. ``distances`` (from :func:`part_distances`) saves measuring again."""
    distances_of = part_distances(before, after) if distances is None else distances
    parts = {}
    for name in sorted(set(before) & set(after)):
        distances = distances_of[name]
        parts[name] = {
            "max_mm": round(float(distances.max()), 4),
            "mean_mm": round(float(distances.mean()), 4),
            "moved_vertices": int((distances > threshold).sum()),
            "regions": moved_regions(after[name], distances, threshold),
        }
    return {
        "parts": parts,
        "added": sorted(set(after) - set(before)),
        "removed": sorted(set(before) - set(after)),
        "threshold_mm": threshold,
    }

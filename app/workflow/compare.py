"""Version compare: the distance map between two mesh versions of a case, the regions that
moved, and the edit history between them (operation and parameters, who and when)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from app.case import Case
from app.tools.mesh.compare import MOVED_MM, compare_parts, part_distances
from app.tools.mesh.core import make_mesh
from app.tools.mesh.meshio import read_mesh_bytes
from app.workflow import policy, review_report
from app.workflow.actor import Actor


@dataclass
class Compared:
    """:func:`compare`'s report with what a view draws: both versions' parts (name -> mesh)
    and each vertex of the newer's distance to the older (name -> mm)."""

    report: dict
    older: dict[str, trimesh.Trimesh]
    newer: dict[str, trimesh.Trimesh]
    distances: dict[str, np.ndarray]


def compare(
    actor: Actor, case: Case, older: int, newer: int, *, threshold: float = MOVED_MM
) -> dict:
    """How mesh ``newer`` differs from ``older`` (per part), and the edits in between."""
    return compare_meshes(actor, case, older, newer, threshold=threshold).report


def compare_meshes(
    actor: Actor, case: Case, older: int, newer: int, *, threshold: float = MOVED_MM
) -> Compared:
    """:func:`compare`, keeping the meshes and distances (the review panel draws them)."""
    policy.allow(actor, "review.view", case.pseudonym)
    before, after = _parts(case, older), _parts(case, newer)
    distances = part_distances(before, after)
    result = compare_parts(before, after, threshold, distances)
    lineage = review_report.history(case, newer)
    numbers = [s["version"] for s in lineage]
    since = numbers.index(older) + 1 if older in numbers else 0
    report = result | {
        "from": older,
        "to": newer,
        "history": lineage[since:],
        "related": older in numbers,
    }
    return Compared(report, before, after, distances)


def _parts(case: Case, version: int) -> dict:
    stored = case.load_mesh_version(version)
    return {n: make_mesh(*read_mesh_bytes(d, "stl")) for n, d in stored.parts.items()}

"""Version compare: the distance map between two mesh versions of a case, the regions that
moved, and the edit history between them (operation and parameters, who and when)."""

from __future__ import annotations

from app.case import Case
from app.tools.mesh.compare import MOVED_MM, compare_parts
from app.tools.mesh.core import make_mesh
from app.tools.mesh.meshio import read_mesh_bytes
from app.workflow import policy, review_report
from app.workflow.actor import Actor


def compare(
    actor: Actor, case: Case, older: int, newer: int, *, threshold: float = MOVED_MM
) -> dict:
    """How mesh ``newer`` differs from ``older`` (per part), and the edits in between."""
    policy.allow(actor, "review.view", case.pseudonym)
    result = compare_parts(_parts(case, older), _parts(case, newer), threshold)
    lineage = review_report.history(case, newer)
    numbers = [s["version"] for s in lineage]
    since = numbers.index(older) + 1 if older in numbers else 0
    return result | {
        "from": older,
        "to": newer,
        "history": lineage[since:],
        "related": older in numbers,
    }


def _parts(case: Case, version: int) -> dict:
    stored = case.load_mesh_version(version)
    return {n: make_mesh(*read_mesh_bytes(d, "stl")) for n, d in stored.parts.items()}

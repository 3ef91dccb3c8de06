"""Named mesh edits with plain parameters: what ``medprint edit`` and the Mesh panel apply.

An edit takes one part and a dict of JSON-able parameters (stored with the new version):

``cut``
    ``point`` and ``normal`` (LPS mm) of the plane; ``keep`` ``front`` (the side the normal
    points to) or ``back``.
``mirror``
    ``normal`` of the mirror plane through the model's centre (default left-right, x).
``scale``
    ``factor`` about the model's centre (1.0 keeps the size).
``hollow``
    ``wall_mm``; ``hole_mm`` the drain hole at the lowest point of every cavity (0: none);
    cavities under 0.1 ml (``drain.MIN_CAVITY_ML``) are filled back to solid first.
``flat_base``
    ``thickness_mm`` of a plate under the model.
``label``
    ``mode`` emboss or engrave, ``height_mm``, ``depth_mm``: the case pseudonym, automatically
    placed (never free text).
``union``, ``difference``
    ``with_version``: another mesh version, given as ``other``.
``connector``
    ``diameter_mm`` of a rod joining the two largest components at their closest points.

Everything here is Qt-free and stores nothing: :mod:`app.workflow.mesh` stores the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from app.errors import MeshError
from app.progress import CancelToken, Progress, ensure
from app.tools.mesh import drain, edit
from app.tools.mesh.core import concatenate
from app.tools.mesh.label import (
    DEFAULT_DEPTH_MM,
    DEFAULT_HEIGHT_MM,
    LabelInfo,
    label_with_pseudonym,
)

AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}

# Operation -> its parameters and their defaults (None: required).
OPERATIONS: dict[str, dict[str, Any]] = {
    "cut": {"point": None, "normal": None, "keep": "front"},
    "mirror": {"normal": AXES["x"]},
    "scale": {"factor": None},
    "hollow": {"wall_mm": 2.0, "hole_mm": 4.0},
    "flat_base": {"thickness_mm": 3.0},
    "label": {"mode": "emboss", "height_mm": DEFAULT_HEIGHT_MM, "depth_mm": DEFAULT_DEPTH_MM},
    "union": {"with_version": None},
    "difference": {"with_version": None},
    "connector": {"diameter_mm": 5.0},
}
NEEDS_OTHER = ("union", "difference")


def edit_params(operation: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``params`` completed with the defaults of ``operation`` as plain JSON values."""
    if operation not in OPERATIONS:
        msg = f"unknown edit {operation!r}; use one of {', '.join(OPERATIONS)}"
        raise MeshError(msg)
    given = dict(params or {})
    unknown = sorted(set(given) - set(OPERATIONS[operation]))
    if unknown:
        msg = f"{operation} takes {', '.join(OPERATIONS[operation])}, not {', '.join(unknown)}"
        raise MeshError(msg)
    full = OPERATIONS[operation] | given
    missing = [name for name, value in full.items() if value is None]
    if missing:
        msg = f"{operation} needs {', '.join(missing)}"
        raise MeshError(msg)
    return {name: _plain(value) for name, value in full.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | tuple | list):
        return [float(v) for v in np.asarray(value, dtype=np.float64).ravel()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def apply_edit(
    mesh: trimesh.Trimesh,
    operation: str,
    params: Mapping[str, Any],
    *,
    pseudonym: str | None = None,
    other: trimesh.Trimesh | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[trimesh.Trimesh, LabelInfo | None]:
    """(edited mesh, the label when one was added) for ``operation`` with ``params``."""
    p = edit_params(operation, params)
    if operation == "cut":
        return _cut(mesh, p), None
    if operation == "mirror":
        return edit.mirror(mesh, np.asarray(p["normal"])), None
    if operation == "scale":
        return edit.scale(mesh, float(p["factor"])), None
    if operation == "hollow":
        return _hollow(mesh, p, progress, cancel), None
    if operation == "flat_base":
        return edit.flat_base(mesh, thickness_mm=float(p["thickness_mm"])), None
    if operation == "label":
        if pseudonym is None:
            msg = "the label is the case pseudonym; edit a mesh version of a case"
            raise MeshError(msg)
        sizes = {"height_mm": float(p["height_mm"]), "depth_mm": float(p["depth_mm"])}
        return label_with_pseudonym(mesh, pseudonym, mode=p["mode"], **sizes)
    if operation in NEEDS_OTHER:
        if other is None:
            msg = f"{operation} needs the other mesh version"
            raise MeshError(msg)
        fn = edit.union if operation == "union" else edit.difference
        return fn(mesh, other), None
    return _connect(mesh, float(p["diameter_mm"])), None


def _cut(mesh: trimesh.Trimesh, p: Mapping[str, Any]) -> trimesh.Trimesh:
    if p["keep"] not in ("front", "back"):
        msg = "a cut keeps 'front' (the side the normal points to) or 'back'"
        raise MeshError(msg)
    front, back = edit.plane_cut(mesh, np.asarray(p["point"]), np.asarray(p["normal"]))
    kept = front if p["keep"] == "front" else back
    if len(kept.faces) == 0:
        msg = "nothing of the model is on that side of the plane; move the plane or keep the other side"
        raise MeshError(msg)
    return kept


def _hollow(
    mesh: trimesh.Trimesh,
    p: Mapping[str, Any],
    progress: Progress | None,
    cancel: CancelToken | None,
) -> trimesh.Trimesh:
    hole = float(p["hole_mm"])
    hollowed = edit.hollow(mesh, float(p["wall_mm"]), progress=ensure(progress), cancel=cancel)
    hollowed, _ = drain.fill_small_cavities(hollowed, drain.MIN_CAVITY_ML)  # too small to drain
    if hole <= 0:
        return hollowed
    return drain.drill(hollowed, drain.cavity_holes(hollowed), hole)  # every cavity, lowest point


def _connect(mesh: trimesh.Trimesh, diameter_mm: float) -> trimesh.Trimesh:
    a, b = _two_parts(mesh)
    pa, pb = _closest_points(a, b)
    return edit.connector_rod(a, b, pa, pb, diameter_mm=diameter_mm)


def _two_parts(mesh: trimesh.Trimesh) -> tuple[trimesh.Trimesh, trimesh.Trimesh]:
    """The largest connected component of ``mesh`` and all the others."""
    parts = sorted(mesh.split(only_watertight=False), key=lambda m: -len(m.faces))
    if len(parts) < 2:
        msg = "the model is one piece; a connector joins two separate components"
        raise MeshError(msg)
    return parts[0], concatenate(parts[1:]) if len(parts) > 2 else parts[1]


def _closest_points(a: trimesh.Trimesh, b: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """The pair of vertices of ``a`` and ``b`` closest to each other."""
    dist, index = cKDTree(np.asarray(a.vertices)).query(np.asarray(b.vertices))
    j = int(np.argmin(dist))
    return np.asarray(a.vertices)[index[j]], np.asarray(b.vertices)[j]

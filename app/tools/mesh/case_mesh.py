"""A case's printable mesh in one call: build, label with the pseudonym, QA, store a version.

What ``medprint demo`` runs (and what ``medprint mesh CASE --label`` and the Mesh panel's
build + label steps amount to); every step is the public function of its own module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh

from app.errors import MeshError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, ensure
from app.tools.mesh.pipeline import build_mesh
from app.tools.mesh.qa import QAReport, qa_report
from app.tools.mesh.store import save_mesh_version

# Where a label goes, tried in order: a ray from the front (anterior is -y in LPS), then from
# the patient's right and left, then from below.
_LABEL_APPROACHES = ((0, 1, 0), (-1, 0, 0), (1, 0, 0), (0, 0, 1))


@dataclass
class CaseMesh:
    mesh: trimesh.Trimesh
    qa: QAReport
    stored: str
    info: dict


def _label_candidates(mesh: trimesh.Trimesh):
    """(point, outward normal, up) candidates: front, sides, back, below; text across the model
    or running along its long axis; at mid-height first."""
    from app.tools.mesh.edit import to_manifold  # noqa: PLC0415

    solid = to_manifold(mesh)
    lo, hi = mesh.bounds
    reach = float(np.linalg.norm(hi - lo)) + 10.0
    ups = (np.array([0.0, 0.0, 1.0]), None)
    for approach in _LABEL_APPROACHES:
        direction = np.asarray(approach, dtype=np.float64)
        side = np.cross(direction, [0.0, 0.0, 1.0])
        side = side if np.linalg.norm(side) > 0 else np.array([1.0, 0.0, 0.0])
        for height in (0.5, 0.35, 0.65):
            centre = lo + (hi - lo) * np.array([0.5, 0.5, height])
            hits = solid.ray_cast(
                tuple(centre - reach * direction), tuple(centre + reach * direction)
            )
            if not hits:
                continue
            for up in ups:
                yield np.asarray(hits[0].position), -direction, side if up is None else up


def label_with_pseudonym(
    mesh: trimesh.Trimesh,
    pseudonym: str,
    *,
    mode: str = "emboss",
    height_mm: float | None = None,
    depth_mm: float | None = None,
):
    """Emboss (or engrave) the pseudonym at the first candidate site where the text fits."""
    from app.tools.mesh.core import topology  # noqa: PLC0415
    from app.tools.mesh.label import add_label  # noqa: PLC0415
    from app.tools.mesh.repair import repair_mesh  # noqa: PLC0415

    for point, normal, up in _label_candidates(mesh):
        try:
            sizes = {"height_mm": height_mm, "depth_mm": depth_mm}
            sizes = {k: v for k, v in sizes.items() if v is not None}
            labelled, info = add_label(mesh, pseudonym, point, normal, mode=mode, up=up, **sizes)
        except MeshError:
            continue
        # The union is exact, but its STL (float32 vertices) can pinch where letters meet
        # the surface: mend that locally, or try the next site.
        if not topology(labelled).closed_manifold:
            labelled, _ = repair_mesh(labelled)
        if topology(labelled).closed_manifold:
            return labelled, info
    msg = "no surface of this model is large and flat enough for the label; place it by hand"
    raise MeshError(msg)


def mesh_for_print(
    case,
    mask: np.ndarray,
    volume: Volume,
    *,
    part: str,
    build_volume_mm: tuple[float, float, float] | None = None,
    smoothing: float | None = None,
    reduction: float | None = 0.8,
    label: bool = True,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> CaseMesh:
    """Build the mesh of ``mask``, emboss the case pseudonym, check it and store a version."""
    progress = ensure(progress)
    options = {} if smoothing is None else {"smoothing": smoothing}
    built = build_mesh(
        mask, volume, reduction=reduction, progress=progress.sub(0.0, 0.6), cancel=cancel, **options
    )
    mesh, label_info = built.mesh, None
    if label:
        mesh, label_info = label_with_pseudonym(mesh, case.pseudonym)
    qa = qa_report(
        mesh,
        reference=built.reference,
        build_volume_mm=build_volume_mm,
        label=label_info,
        progress=progress.sub(0.6, 1.0),
        cancel=cancel,
    )
    info = built.to_dict() | {"label": label_info.to_dict() if label_info else None, "part": part}
    stored = save_mesh_version(case, mesh, qa, info)
    return CaseMesh(mesh, qa, stored, info)

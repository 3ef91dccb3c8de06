"""One call from a segment mask to a printable mesh: extract, smooth, decimate, repair.

This is what the Mesh panel's "Build" button and ``medprint mesh`` run; the steps are also
public on their own (:mod:`surface`, :mod:`repair`) for the panel's individual tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.repair import DecimationReport, RepairReport, decimate_mesh, repair_mesh
from app.tools.mesh.surface import (
    DEFAULT_ITERATIONS,
    DEFAULT_SMOOTHING,
    MaskCleanReport,
    SmoothingReport,
    extract_surface,
    smooth_surface,
)


@dataclass
class MeshBuild:
    """The printable mesh, the raw segmentation surface it is checked against, and the reports."""

    mesh: trimesh.Trimesh
    reference: trimesh.Trimesh
    cleaning: MaskCleanReport
    smoothing: SmoothingReport
    decimation: DecimationReport | None
    repair: RepairReport
    steps: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "cleaning": self.cleaning.to_dict(),
            "smoothing": self.smoothing.to_dict(),
            "decimation": self.decimation.to_dict() if self.decimation else None,
            "repair": self.repair.to_dict(),
            "steps": self.steps,
        }


def build_mesh(
    mask: np.ndarray,
    volume: Volume,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    iterations: int = DEFAULT_ITERATIONS,
    reduction: float | None = None,
    target_faces: int | None = None,
    method: str = "flying_edges",
    min_island_voxels: int = 64,
    max_cavity_voxels: int = 64,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> MeshBuild:
    """Mask on ``volume``'s grid -> closed 2-manifold surface in LPS mm, with every report.

    Parameters
    ----------
    smoothing
        0..1, 3D Slicer's factor (0.5 = passband 0.01); 0 keeps the voxel staircase.
    reduction, target_faces
        Decimation: fraction of triangles removed (0.8 keeps 20 %) or a triangle budget;
        neither means no decimation.
    """
    progress = ensure(progress)
    reference, cleaning = extract_surface(
        mask,
        volume,
        method=method,
        min_island_voxels=min_island_voxels,
        max_cavity_voxels=max_cavity_voxels,
        progress=progress.sub(0.0, 0.15),
        cancel=cancel,
    )
    smoothed, smooth_report = smooth_surface(
        reference,
        smoothing,
        iterations=iterations,
        progress=progress.sub(0.15, 0.45),
        cancel=cancel,
    )
    check_cancel(cancel)
    mesh = smoothed
    decimation = None
    if reduction or target_faces:
        mesh, decimation = decimate_mesh(
            mesh,
            reduction=reduction,
            target_faces=target_faces,
            repair=False,  # repaired just below, once
            progress=progress.sub(0.45, 0.7),
            cancel=cancel,
        )
    mesh, repair = repair_mesh(mesh, progress=progress.sub(0.7, 1.0), cancel=cancel)
    return MeshBuild(
        mesh=mesh,
        reference=reference,
        cleaning=cleaning,
        smoothing=smooth_report,
        decimation=decimation,
        repair=repair,
        steps={"method": method, "smoothing": smoothing, "iterations": iterations,
               "reduction": reduction, "target_faces": target_faces},
    )  # fmt: skip

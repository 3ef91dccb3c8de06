"""QA report for one mesh version: pass/fail per check, with the numbers behind it.

Checks: watertight, manifold (both as an STL reader sees the mesh), self-intersections,
components, volume/area/bounding box, fit in the printer's build volume, minimum wall thickness
(sampled by casting rays inward along the normals) and deviation from the segmentation surface
against a tolerance. A report that fails any check marks the mesh as not printable; approval
then needs an explicit, audited override (app/security/access).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import trimesh
from vtkmodules.vtkCommonCore import reference
from vtkmodules.vtkCommonDataModel import vtkStaticCellLocator

from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.core import (
    Topology,
    enable_vtk_threads,
    signed_volume,
    to_polydata,
    topology,
)
from app.tools.mesh.export import ORIENTATION
from app.tools.mesh.label import LabelInfo, label_region
from app.tools.mesh.repair import count_self_intersections
from app.tools.mesh.surface import area_samples, doubled_areas, surface_deviation

DEFAULT_TOLERANCE_MM = 0.5
DEFAULT_MIN_WALL_MM = 1.0


@dataclass
class Check:
    """One QA line: what was measured, its value, the limit, pass/fail."""

    name: str
    passed: bool
    value: float | int | bool | None
    limit: str
    unit: str = ""
    detail: str = ""


@dataclass
class QAReport:
    """JSON-serialisable QA report (see :meth:`to_dict`)."""

    checks: list[Check]
    units: str = "mm"
    orientation: str = ORIENTATION
    triangles: int = 0
    vertices: int = 0
    components: int = 0
    volume_mm3: float = 0.0
    area_mm2: float = 0.0
    bbox_min: list[float] = field(default_factory=list)
    bbox_max: list[float] = field(default_factory=list)
    size_mm: list[float] = field(default_factory=list)
    self_intersections: int = 0
    wall: dict = field(default_factory=dict)
    deviation: dict | None = None
    build_volume_mm: list[float] | None = None
    tolerance_mm: float = DEFAULT_TOLERANCE_MM

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict:
        return dict(asdict(self), passed=self.passed)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_plain)

    @classmethod
    def from_dict(cls, data: dict) -> QAReport:
        data = dict(data)
        data.pop("passed", None)
        data["checks"] = [Check(**c) for c in data["checks"]]
        return cls(**data)

    def lines(self) -> list[str]:
        """Human-readable report, one check per line."""
        out = [f"QA {'PASS' if self.passed else 'FAIL'}  ({self.orientation})"]
        for c in self.checks:
            value = f"{c.value:.3f}" if isinstance(c.value, float) else str(c.value)
            out.append(
                f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {value} {c.unit} (limit {c.limit})"
                + (f" - {c.detail}" if c.detail else "")
            )
        out.append(
            f"  volume {self.volume_mm3:.1f} mm3, area {self.area_mm2:.1f} mm2, size "
            + " x ".join(f"{s:.1f}" for s in self.size_mm)
            + f" mm, {self.triangles} triangles, {self.components} components"
        )
        return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


def _label_regions(labels: Sequence[LabelInfo]) -> Callable[[np.ndarray], np.ndarray]:
    """``points -> bool mask`` of the points inside any of the labels' blocks."""
    regions = [label_region(label) for label in labels]

    def inside(points: np.ndarray) -> np.ndarray:
        return np.logical_or.reduce([region(points) for region in regions])

    return inside


def wall_thickness(
    mesh: trimesh.Trimesh,
    samples: int = 1000,
    max_mm: float = 50.0,
    seed: int = 0,
    exclude: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Thickness (mm) at ``samples`` surface points: the distance along the inward normal to
    the next surface. Points whose ray leaves through nothing within ``max_mm`` give ``inf``.
    Points for which ``exclude(points)`` is true are dropped (a label's letters are as thin as
    the label settings make them, not the anatomy).

    The rays go through one VTK cell locator over the mesh (built once, on all cores).
    """
    points, normals = area_samples(mesh, samples, np.random.default_rng(seed))
    inward = -normals
    if exclude is not None:
        keep = ~exclude(points)
        points, inward = points[keep], inward[keep]
    eps = 1e-3
    starts = points + eps * inward
    return eps + _first_hits(mesh, starts, starts + max_mm * inward)


def _first_hits(mesh: trimesh.Trimesh, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distance from each start to the first triangle on the segment to its end (or inf)."""
    enable_vtk_threads()
    locator = vtkStaticCellLocator()
    locator.SetDataSet(to_polydata(mesh))
    locator.BuildLocator()
    out = np.full(len(starts), np.inf)
    t, x, pcoords = reference(0.0), [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    sub, cell = reference(0), reference(0)
    for n, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if locator.IntersectWithLine(a, b, 0.0, t, x, pcoords, sub, cell):
            out[n] = float(t) * float(np.linalg.norm(np.subtract(b, a)))
    return out


def qa_report(
    mesh: trimesh.Trimesh,
    *,
    reference: trimesh.Trimesh | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    min_wall_mm: float = DEFAULT_MIN_WALL_MM,
    max_thin_fraction: float = 0.02,
    wall_samples: int = 1000,
    labels: Sequence[LabelInfo] = (),
    crossings: int | None = None,
    topo: Topology | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> QAReport:
    """Check ``mesh`` for printing; ``reference`` is the unsmoothed segmentation surface.

    ``crossings`` (the number of self-intersecting triangles) and ``topo`` are taken when the
    caller has just measured them on exactly this mesh (repair does); otherwise they are
    measured here.

    Pass rules: watertight and manifold as an STL reader sees the mesh; no self-intersections;
    fits the build volume in some axis-aligned orientation; at most ``max_thin_fraction`` of
    the sampled walls thinner than ``min_wall_mm``; the 95th percentile deviation from the
    segmentation surface within ``tolerance_mm`` (mean and max are reported alongside); the
    regions of ``labels`` (embossed/engraved pseudonyms) are left out of the deviation and of
    the wall thickness (the label's own text would otherwise decide the verdict).
    """
    progress = ensure(progress)
    checks: list[Check] = []
    progress.update(0.0, "checking topology")
    if topo is None:
        topo = topology(mesh)
    checks.append(
        Check("watertight", topo.watertight, topo.watertight, "no open or shared-by-3 edges", "",
              f"{topo.boundary_edges} open edges, {topo.nonmanifold_edges} non-manifold edges")
    )  # fmt: skip
    checks.append(
        Check("manifold", topo.manifold, topo.manifold, "a closed, oriented 2-manifold", "",
              f"{topo.nonmanifold_vertices} pinch vertices, {topo.inconsistent_edges} flipped edges, "
              f"{topo.degenerate_faces} degenerate triangles")
    )  # fmt: skip
    check_cancel(cancel)
    progress.update(0.2, "looking for self-intersections")
    if crossings is None:
        crossings = count_self_intersections(mesh)
    checks.append(Check("self-intersections", crossings == 0, crossings, "0", "triangles"))
    lo, hi = np.asarray(mesh.vertices).min(axis=0), np.asarray(mesh.vertices).max(axis=0)
    size = hi - lo
    if build_volume_mm is not None:
        build = np.asarray(build_volume_mm, dtype=np.float64)
        as_is = bool(np.all(size <= build))
        rotated = bool(np.all(np.sort(size) <= np.sort(build)))
        detail = (
            "fits as oriented"
            if as_is
            else ("fits after turning by 90°" if rotated else "too large")
        )
        checks.append(
            Check("fits build volume", rotated, rotated,
                  " x ".join(f"{b:g}" for b in build) + " mm", "", detail)
        )  # fmt: skip
    check_cancel(cancel)
    progress.update(0.4, "sampling wall thickness")
    wall: dict = {}
    if topo.closed_manifold:
        thick = wall_thickness(
            mesh, wall_samples, exclude=_label_regions(labels) if labels else None
        )
        finite = thick[np.isfinite(thick)]
        thin = float(np.mean(thick < min_wall_mm)) if len(thick) else 0.0
        wall = {
            "samples": len(thick),
            "min_mm": float(finite.min()) if len(finite) else None,
            "p5_mm": float(np.percentile(finite, 5)) if len(finite) else None,
            "median_mm": float(np.median(finite)) if len(finite) else None,
            "fraction_below_min": thin,
            "min_wall_mm": min_wall_mm,
        }
        checks.append(
            Check("minimum wall thickness", thin <= max_thin_fraction, wall["min_mm"],
                  f"<= {100 * max_thin_fraction:g}% of samples under {min_wall_mm:g} mm", "mm",
                  f"{100 * thin:.1f}% of {len(thick)} samples under {min_wall_mm:g} mm, "
                  + (f"5th percentile {wall['p5_mm']:.2f} mm" if len(finite) else
                     "every wall thicker than the 50 mm probed"))
        )  # fmt: skip
    else:
        checks.append(Check("minimum wall thickness", False, None, f"{min_wall_mm:g} mm", "mm",
                            "not measurable on an open mesh; repair it first"))  # fmt: skip
    deviation = None
    if reference is not None:
        check_cancel(cancel)
        progress.update(0.7, "measuring deviation from the segmentation")  # both ways at once
        exclude = _label_regions(labels) if labels else None
        dev = surface_deviation(mesh, reference, exclude=exclude, cancel=cancel)
        deviation = dev.to_dict()
        checks.append(
            Check("deviation from segmentation", dev.p95_mm <= tolerance_mm, dev.p95_mm,
                  f"95th percentile <= {tolerance_mm:g} mm", "mm",
                  f"mean {dev.mean_mm:.3f} mm, p95 {dev.p95_mm:.3f} mm, max {dev.max_mm:.3f} mm")
        )  # fmt: skip
    progress.update(1.0, "QA done")
    return QAReport(
        checks=checks,
        triangles=len(mesh.faces),
        vertices=len(mesh.vertices),
        components=topo.components,
        volume_mm3=signed_volume(mesh),
        area_mm2=float(0.5 * doubled_areas(mesh).sum()),  # kept from the sampling
        bbox_min=lo.tolist(),
        bbox_max=hi.tolist(),
        size_mm=size.tolist(),
        self_intersections=crossings,
        wall=wall,
        deviation=deviation,
        build_volume_mm=list(build_volume_mm) if build_volume_mm is not None else None,
        tolerance_mm=tolerance_mm,
    )

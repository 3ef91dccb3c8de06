"""Verification of a printed model: register its scan to the approved mesh, measure the deviation.

A surface scan (STL/PLY/OBJ, in the units the user declares) or a mesh made from a CT of the
printed part is brought into millimetres, aligned to the approved mesh with proper rotations
only (principal axes and the four sign choices of them with determinant +1, or three landmark
pairs), refined by point-to-plane ICP on a subsample with a KD-tree, and compared by the signed
distance of every scan vertex to the approved surface (positive: the print has material where
the plan has none). The best reflected fit is computed too: when it is clearly better, the scan
looks mirrored and no pass or fail is given. A scan whose size does not match the approved mesh
gets "check the units" instead of a verdict.

The verdict passes when the 95th percentile of the absolute deviation is within the tolerance
and no region beyond the tolerance is larger than ``max_region_mm2`` (a local defect, such as a
blob of support left on a guide, fails the print even when the rest is accurate).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from app.errors import MedPrintError

UNITS = {"mm": 1.0, "cm": 10.0, "inch": 25.4, "m": 1000.0}
PASS, FAIL, MIRRORED, CHECK_UNITS = "pass", "fail", "mirrored", "check-units"
DEFAULT_TOLERANCE_MM = 0.5
MAX_REGION_MM2 = 4.0
SCALE_LIMIT = 0.15  # a scan more than 15 % larger or smaller than the plan is in other units
COARSE_POINTS, FINE_POINTS = 3000, 20000
AMBIGUOUS_SPREAD = 0.1  # principal spreads this close leave the turn between them open
TURN_STEP_DEG = 30  # the extra starts about an ambiguous axis
ANNEAL_MM = 2.0  # ICP's first inlier limit; it narrows by 0.7 per iteration to the noise


@dataclass(frozen=True)
class Registration:
    """A rigid transform from the scan (mm) to the approved mesh, and how well it fits."""

    matrix: np.ndarray  # 4x4, proper rotation
    residual_mm: float  # RMS point-to-surface distance of the inlier sample
    inliers: float  # fraction of the sample within the robust limit
    fit_mm: float  # 90th percentile of the sample's distance (outliers count: wrong poses lose)
    reflected_fit_mm: float  # the same for the best mirrored fit
    method: str

    @property
    def rotation(self) -> np.ndarray:
        return self.matrix[:3, :3]

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]


@dataclass(frozen=True)
class Region:
    """A connected patch of scan vertices beyond the tolerance (in the approved mesh's frame)."""

    centre_mm: tuple[float, float, float]
    size_mm: float  # diagonal of its bounding box
    area_mm2: float
    vertices: int
    peak_mm: float  # the signed deviation of largest magnitude

    def to_dict(self) -> dict:
        return {
            "centre_mm": [round(c, 2) for c in self.centre_mm],
            "size_mm": round(self.size_mm, 2),
            "area_mm2": round(self.area_mm2, 2),
            "vertices": self.vertices,
            "peak_mm": round(self.peak_mm, 3),
        }


@dataclass(frozen=True)
class Deviation:
    """Signed distance of every scan vertex to the approved surface, and its summary."""

    distances: np.ndarray
    mean_mm: float
    p95_mm: float  # of the absolute distance
    max_mm: float  # of the absolute distance
    regions: list[Region]

    def to_dict(self) -> dict:
        return {
            "mean_mm": round(self.mean_mm, 4),
            "p95_mm": round(self.p95_mm, 4),
            "max_mm": round(self.max_mm, 4),
            "regions": [r.to_dict() for r in self.regions],
        }


@dataclass(frozen=True)
class ScanCheck:
    """The outcome: a verdict (pass, fail, mirrored, check-units) with one line saying why."""

    verdict: str
    message: str
    tolerance_mm: float
    units: str
    scale_ratio: float
    scan_vertices: int
    scan_faces: int
    registration: Registration | None = None
    deviation: Deviation | None = None
    aligned: np.ndarray | None = field(default=None, repr=False)  # scan vertices, plan frame
    faces: np.ndarray | None = field(default=None, repr=False)  # the scan's triangles

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def to_dict(self) -> dict:
        reg = self.registration
        return {
            "verdict": self.verdict,
            "message": self.message,
            "tolerance_mm": self.tolerance_mm,
            "units": self.units,
            "scale_ratio": round(self.scale_ratio, 4),
            "scan": {"vertices": self.scan_vertices, "faces": self.scan_faces},
            "registration": None
            if reg is None
            else {
                "matrix": np.round(reg.matrix, 6).tolist(),
                "residual_mm": round(reg.residual_mm, 4),
                "inliers": round(reg.inliers, 4),
                "fit_mm": round(reg.fit_mm, 4),
                "reflected_fit_mm": round(reg.reflected_fit_mm, 4),
                "method": reg.method,
            },
            "deviation": None if self.deviation is None else self.deviation.to_dict(),
        }


# --- input ------------------------------------------------------------------------------------


def to_millimetres(vertices: np.ndarray, units: str) -> np.ndarray:
    """``vertices`` in ``units`` (mm, cm, inch, m) as millimetres."""
    if units not in UNITS:
        msg = f"unknown units '{units}'; choose one of {', '.join(UNITS)}"
        raise MedPrintError(msg)
    return np.asarray(vertices, dtype=np.float64) * UNITS[units]


def mesh_from_mask(mask: np.ndarray, volume: object) -> trimesh.Trimesh:
    """The surface of a segmented CT of the printed part (the mesh pipeline, lightly smoothed)."""
    from app.tools.mesh.pipeline import build_mesh  # noqa: PLC0415 (VTK on demand)

    if not np.any(mask):
        msg = "the CT of the print holds no segmented part; check the threshold"
        raise MedPrintError(msg)
    return build_mesh(mask, volume, smoothing=0.3).mesh  # type: ignore[arg-type]


# --- the whole check --------------------------------------------------------------------------


def check_scan(
    scan: trimesh.Trimesh,
    plan: trimesh.Trimesh,
    *,
    units: str = "mm",
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    max_region_mm2: float = MAX_REGION_MM2,
    seed: int = 0,
) -> ScanCheck:
    """Register ``scan`` (in ``units``) to ``plan`` (mm) and judge its deviation.

    Parameters
    ----------
    scan, plan
        The scanned print and the approved mesh.
    units
        The scan's units as declared by the user.
    tolerance_mm
        The limit for the 95th percentile of the absolute deviation and for regions.
    landmarks
        Three (or more) picked point pairs ``(scan_points, plan_points)`` (scan units) for the
        coarse alignment instead of the principal axes.
    """
    if tolerance_mm <= 0:
        msg = "the tolerance must be a positive number of millimetres"
        raise MedPrintError(msg)
    vertices = to_millimetres(scan.vertices, units)
    faces = np.asarray(scan.faces)
    base = {
        "tolerance_mm": tolerance_mm,
        "units": units,
        "scan_vertices": len(vertices),
        "scan_faces": len(faces),
    }
    ratio = _scale_ratio(vertices, faces, plan)
    if abs(ratio - 1.0) > SCALE_LIMIT:
        return ScanCheck(CHECK_UNITS, _units_message(ratio, units), scale_ratio=ratio, **base)
    marks = None if landmarks is None else (to_millimetres(landmarks[0], units), landmarks[1])
    reg = register(vertices, faces, plan, landmarks=marks, seed=seed)
    if _looks_mirrored(reg):
        msg = "the scan looks mirrored: a reflected fit is much closer "
        msg += f"({reg.reflected_fit_mm:.2f} mm against {reg.fit_mm:.2f} mm); check "
        msg += "the scanner's export or whether the mirror-image part was printed"
        return ScanCheck(MIRRORED, msg, scale_ratio=ratio, registration=reg, **base)
    aligned = vertices @ reg.rotation.T + reg.translation
    dev = deviation(aligned, faces, plan, tolerance_mm=tolerance_mm)
    verdict, msg = _verdict(dev, tolerance_mm, max_region_mm2)
    return ScanCheck(
        verdict, msg, scale_ratio=ratio, registration=reg, deviation=dev, aligned=aligned,
        faces=faces, **base,
    )  # fmt: skip


def _verdict(dev: Deviation, tolerance_mm: float, max_region_mm2: float) -> tuple[str, str]:
    big = [r for r in dev.regions if r.area_mm2 > max_region_mm2]
    summary = f"p95 {dev.p95_mm:.2f} mm (limit {tolerance_mm:.2f}), mean {dev.mean_mm:+.2f} mm, "
    summary += f"max {dev.max_mm:.2f} mm"
    if dev.p95_mm > tolerance_mm:
        return FAIL, f"fail: {summary}"
    if big:
        worst = max(big, key=lambda r: abs(r.peak_mm))
        where = ", ".join(f"{c:.1f}" for c in worst.centre_mm)
        text = f"fail: {len(big)} region(s) beyond {tolerance_mm:.2f} mm larger than "
        text += f"{max_region_mm2:g} mm², worst {worst.peak_mm:+.2f} mm over {worst.area_mm2:.0f}"
        return FAIL, text + f" mm² at ({where}); {summary}"
    return PASS, f"pass: {summary}"


def _looks_mirrored(reg: Registration) -> bool:
    return reg.reflected_fit_mm < 0.5 * reg.fit_mm and reg.fit_mm - reg.reflected_fit_mm > 0.1


def _units_message(ratio: float, units: str) -> str:
    guess = min(UNITS, key=lambda u: abs(np.log(ratio * UNITS[u] / UNITS[units])))
    msg = f"the scan is {ratio:.3g} times the size of the approved mesh in {units}; check the "
    msg += "units"
    if guess != units and abs(ratio * UNITS[guess] / UNITS[units] - 1) <= SCALE_LIMIT:
        msg += f" (it fits in {guess}: --units {guess})"
    return msg


# --- shape facts --------------------------------------------------------------------------------


def _area_frame(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Area-weighted centroid, principal axes (columns, right-handed) and total area."""
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    centres = tri.mean(axis=1)
    total = float(area.sum())
    if total <= 0:
        msg = "the scan has no surface (all triangles are degenerate)"
        raise MedPrintError(msg)
    centroid = (centres * area[:, None]).sum(axis=0) / total
    offset = centres - centroid
    cov = (offset * area[:, None]).T @ offset / total
    _, axes = np.linalg.eigh(cov)
    axes = axes[:, ::-1]
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1
    return centroid, axes, total


def _ambiguous_axes(vertices: np.ndarray, faces: np.ndarray) -> list[int]:
    """The principal axes about which a turn is not fixed by the shape's spread: for two
    spreads within :data:`AMBIGUOUS_SPREAD` of each other, the third axis (a square plate, a
    box with a small pin); all three for a cube-like part."""
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    offset = tri.mean(axis=1) - (tri.mean(axis=1) * area[:, None]).sum(axis=0) / area.sum()
    spread = np.linalg.eigvalsh((offset * area[:, None]).T @ offset / area.sum())[::-1]
    close = [
        3 - i - j
        for i, j in ((0, 1), (1, 2), (0, 2))
        if abs(spread[i] - spread[j]) <= AMBIGUOUS_SPREAD * max(spread[i], 1e-12)
    ]
    return sorted(set(close)) if len(close) < 2 else [0, 1, 2]


def _scale_ratio(vertices: np.ndarray, faces: np.ndarray, plan: trimesh.Trimesh) -> float:
    """How much larger the scan is than the plan (square root of the area ratio)."""
    _, _, scan_area = _area_frame(vertices, faces)
    return float(np.sqrt(scan_area / plan.area))


# --- registration ------------------------------------------------------------------------------


@dataclass
class _Target:
    """The approved surface as points with normals in a KD-tree (for ICP)."""

    points: np.ndarray
    normals: np.ndarray
    tree: cKDTree
    spacing: float  # mean distance between neighbouring samples

    @classmethod
    def of(cls, plan: trimesh.Trimesh, seed: int = 0) -> _Target:
        """Even samples of the surface with their faces' normals (sharp edges stay sharp)."""
        count = int(min(max(2 * len(plan.vertices), 50_000), 200_000))
        points, faces = trimesh.sample.sample_surface(plan, count, seed=seed)
        points = np.asarray(points, dtype=np.float64)
        spacing = float(np.sqrt(plan.area / count))
        return cls(points, np.asarray(plan.face_normals)[faces], cKDTree(points), spacing)


def register(
    vertices: np.ndarray,
    faces: np.ndarray,
    plan: trimesh.Trimesh,
    *,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> Registration:
    """The proper rigid transform taking the scan (``vertices`` in mm, ``faces``) onto
    ``plan``, and the best
    mirrored fit's residual for comparison."""
    target = _Target.of(plan, seed)
    rng = np.random.default_rng(seed)
    fine = _sample(vertices, FINE_POINTS, rng)
    coarse = fine[:COARSE_POINTS]
    if landmarks is not None:
        starts = [_kabsch(np.asarray(landmarks[0]), np.asarray(landmarks[1]))]
        method = "landmarks"
    else:
        starts = _axis_candidates(vertices, faces, plan, proper=True)
        method = "principal-axes"
    best = _best_fit(starts, coarse, fine, target)
    mirrored = _best_fit(
        _axis_candidates(vertices, faces, plan, proper=False), coarse, coarse, target
    )
    return Registration(best[0], best[1], best[2], best[3], mirrored[3], method)


def _sample(vertices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    if len(vertices) <= count:
        return vertices[rng.permutation(len(vertices))]
    return vertices[rng.choice(len(vertices), count, replace=False)]


def _best_fit(
    starts: list[np.ndarray], coarse: np.ndarray, fine: np.ndarray, target: _Target
) -> tuple[np.ndarray, float, float, float]:
    """Short ICP from every start on the coarse sample, then the best one refined on ``fine``."""
    tried = [_icp(coarse, target, start, iterations=12) for start in starts]
    start = min(tried, key=lambda fit: fit[3])[0]
    return _icp(fine, target, start, iterations=60)


def _axis_candidates(
    vertices: np.ndarray, faces: np.ndarray, plan: trimesh.Trimesh, *, proper: bool
) -> list[np.ndarray]:
    """Transforms matching the scan's principal axes to the plan's: the four sign choices with
    determinant +1 (``proper``) or -1 (mirror images); where the plan's axes are ambiguous,
    each also turned about them in steps of :data:`TURN_STEP_DEG`."""
    scan_c, scan_axes, _ = _area_frame(vertices, faces)
    plan_v, plan_f = np.asarray(plan.vertices), np.asarray(plan.faces)
    plan_c, plan_axes, _ = _area_frame(plan_v, plan_f)
    turns = [np.eye(3)] + [
        _rotation(plan_axes[:, axis] * np.radians(angle))
        for axis in _ambiguous_axes(plan_v, plan_f)
        for angle in range(TURN_STEP_DEG, 360, TURN_STEP_DEG)
    ]
    found = []
    for signs in itertools.product((1.0, -1.0), repeat=3):
        aligned = plan_axes @ np.diag(signs) @ scan_axes.T
        if (np.linalg.det(aligned) > 0) == proper:
            for turn in turns:
                rotation = turn @ aligned
                found.append(_matrix(rotation, plan_c - rotation @ scan_c))
    return found


def _matrix(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = translation
    return matrix


def _kabsch(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The proper rigid transform taking ``source`` points onto ``target`` (least squares)."""
    if source.shape != target.shape or source.shape[0] < 3:
        msg = "landmarks come in at least three pairs of points"
        raise MedPrintError(msg)
    sc, tc = source.mean(axis=0), target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - sc).T @ (target - tc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return _matrix(rotation, tc - rotation @ sc)


def _icp(
    points: np.ndarray, target: _Target, start: np.ndarray, *, iterations: int
) -> tuple[np.ndarray, float, float, float]:
    """Point-to-plane ICP with a robust (median-based) inlier limit; the transform, the RMS
    residual of the inliers, their fraction and the fit (:func:`_fit`).

    The limit starts wide and narrows (:data:`ANNEAL_MM`): a part made mostly of flat faces
    has few points on the faces that fix a slide along the others, and a tight limit from the
    start would drop them as outliers, leaving the slide of the coarse start uncorrected."""
    matrix = start.copy()
    for i in range(iterations):
        moved = points @ matrix[:3, :3].T + matrix[:3, 3]
        residual, normals, keep = _correspond(moved, target, ANNEAL_MM * 0.7**i)
        if np.count_nonzero(keep) < 6:  # too few inliers to fix six degrees of freedom
            break
        step = _plane_step(moved[keep], normals[keep], residual[keep])
        matrix = step @ matrix
        if np.abs(step - np.eye(4)).max() < 1e-7:
            break
    moved = points @ matrix[:3, :3].T + matrix[:3, 3]
    residual, _, keep = _correspond(moved, target)
    rms = float(np.sqrt(np.mean(residual[keep] ** 2))) if keep.any() else float("inf")
    return matrix, rms, float(keep.mean()), _fit(moved, target)


def _fit(moved: np.ndarray, target: _Target) -> float:
    """90th percentile of each point's distance to the surface: the plane distance near the
    surface, the distance to the nearest sample farther away (so misplaced points count)."""
    distance, index = target.tree.query(moved, workers=_workers(len(moved)))
    plane = np.abs(np.einsum("ij,ij->i", moved - target.points[index], target.normals[index]))
    near = distance <= 2.0 * target.spacing
    return float(np.percentile(np.where(near, plane, distance), 90))


def _correspond(
    moved: np.ndarray, target: _Target, floor_mm: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    distance, index = target.tree.query(moved, workers=_workers(len(moved)))
    normals = target.normals[index]
    residual = np.einsum("ij,ij->i", moved - target.points[index], normals)
    spread = 1.4826 * np.median(np.abs(residual - np.median(residual)))
    limit = max(3.0 * spread, floor_mm)
    keep = (np.abs(residual) <= limit) & (distance <= max(4.0 * np.median(distance), 1e-3))
    return residual, normals, keep


def _plane_step(points: np.ndarray, normals: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """The small rigid motion minimising the point-to-plane residuals (linearised about the
    points' centroid, then made an exact rotation)."""
    centre = points.mean(axis=0)
    a = np.hstack([np.cross(points - centre, normals), normals])
    x = np.linalg.lstsq(a.T @ a, -(a.T @ residual), rcond=None)[0]
    rotation = _rotation(x[:3])
    return _matrix(rotation, centre + x[3:] - rotation @ centre)


def _rotation(vector: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(vector))
    if angle < 1e-15:
        return np.eye(3)
    k = vector / angle
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * (cross @ cross)


# --- deviation ---------------------------------------------------------------------------------


def signed_distance(points: np.ndarray, plan: trimesh.Trimesh) -> np.ndarray:
    """Signed distance of each point to the closest point of ``plan`` (positive outside).

    VTK's implicit distance: the exact closest point (a cell locator), signed by the
    angle-weighted pseudonormal there, which is right at corners too, where the normal of one
    of the faces meeting there can point the wrong way.
    """
    from vtkmodules.util import numpy_support  # noqa: PLC0415 (VTK on demand)

    from app.tools.mesh import _vtk as vtk  # noqa: PLC0415
    from app.tools.mesh.core import to_polydata  # noqa: PLC0415

    implicit = vtk.vtkImplicitPolyDataDistance()
    implicit.SetInput(to_polydata(plan))
    queries = np.ascontiguousarray(np.reshape(points, (-1, 3)), dtype=np.float64)
    found = vtk.vtkDoubleArray()
    implicit.FunctionValue(numpy_support.numpy_to_vtk(queries, deep=True), found)
    return numpy_support.vtk_to_numpy(found).copy()


def _workers(count: int) -> int:
    """Threads for a KD-tree query: starting them costs more than small queries take."""
    return -1 if count > 50_000 else 1


def deviation(
    aligned: np.ndarray, faces: np.ndarray, plan: trimesh.Trimesh, *, tolerance_mm: float
) -> Deviation:
    """The signed deviation of the aligned scan and the regions beyond ``tolerance_mm``."""
    distances = signed_distance(aligned, plan)
    magnitude = np.abs(distances)
    return Deviation(
        distances,
        float(distances.mean()),
        float(np.percentile(magnitude, 95)),
        float(magnitude.max()),
        regions(aligned, faces, distances, tolerance_mm),
    )


def regions(
    vertices: np.ndarray, faces: np.ndarray, distances: np.ndarray, tolerance_mm: float
) -> list[Region]:
    """Connected patches of vertices beyond the tolerance, largest first."""
    out = np.abs(distances) > tolerance_mm
    if not out.any():
        return []
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = edges[out[edges[:, 0]] & out[edges[:, 1]]]
    n = len(vertices)
    graph = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    area = _vertex_areas(vertices, faces)
    found = []
    for label in np.unique(labels[out]):
        members = np.flatnonzero((labels == label) & out)
        points = vertices[members]
        peak = distances[members][np.abs(distances[members]).argmax()]
        found.append(
            Region(
                tuple(float(c) for c in points.mean(axis=0)),  # type: ignore[arg-type]
                float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))),
                float(area[members].sum()),
                len(members),
                float(peak),
            )
        )
    return sorted(found, key=lambda r: r.area_mm2, reverse=True)


def _vertex_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    return np.bincount(faces.ravel(), np.repeat(area / 3.0, 3), minlength=len(vertices))

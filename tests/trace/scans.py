"""Synthetic scans of a printed model: the plan moved, re-triangulated, noisy, with a bump."""

from __future__ import annotations

from dataclasses import dataclass

import fast_simplification
import numpy as np
import trimesh

from app.tools.mesh.verify import UNITS


@dataclass(frozen=True)
class Scan:
    mesh: trimesh.Trimesh  # in ``units``
    matrix: np.ndarray  # 4x4: plan frame -> scan frame (mm)
    bump_centre: np.ndarray | None  # in the plan frame (mm)


def rigid(angles_deg: tuple[float, float, float], shift_mm: tuple[float, float, float]):
    """A proper rigid transform: rotations about x, y, z, then a shift."""
    return trimesh.transformations.compose_matrix(angles=np.deg2rad(angles_deg), translate=shift_mm)


def retriangulate(plan: trimesh.Trimesh, keep: float = 0.7) -> trimesh.Trimesh:
    """Another triangulation of the same surface: subdivided once, then decimated to ``keep``
    of that (a denser, different mesh, as a scanner gives)."""
    fine = plan.subdivide()
    vertices, faces = fast_simplification.simplify(
        fine.vertices.astype(np.float32), fine.faces, target_reduction=1.0 - keep
    )
    return trimesh.Trimesh(vertices.astype(np.float64), faces, process=True)


def make_scan(
    plan: trimesh.Trimesh,
    *,
    matrix: np.ndarray,
    noise_mm: float = 0.05,
    bump_mm: float = 0.0,
    bump_radius_mm: float = 4.0,
    units: str = "mm",
    mirror: bool = False,
    seed: int = 1,
) -> Scan:
    """``plan`` re-triangulated, with a Gaussian bump along the normals at the vertex farthest
    along +x (when ``bump_mm``), Gaussian noise, moved by ``matrix``, mirrored (x -> -x) when
    asked, in ``units``."""
    rng = np.random.default_rng(seed)
    scan = retriangulate(plan)
    vertices = scan.vertices.copy()
    centre = None
    if bump_mm:
        centre = vertices[vertices[:, 0].argmax()].copy()
        r2 = ((vertices - centre) ** 2).sum(axis=1)
        vertices += (
            scan.vertex_normals * (bump_mm * np.exp(-r2 / (2 * (bump_radius_mm / 2) ** 2)))[:, None]
        )
    vertices += rng.normal(0.0, noise_mm, vertices.shape)
    vertices = vertices @ matrix[:3, :3].T + matrix[:3, 3]
    if mirror:
        vertices[:, 0] *= -1
    faces = scan.faces[:, ::-1] if mirror else scan.faces
    return Scan(trimesh.Trimesh(vertices / UNITS[units], faces, process=False), matrix, centre)


def printed_phantom(
    plan: trimesh.Trimesh,
    *,
    matrix: np.ndarray,
    bump_mm: float = 0.0,
    noise_mm: float = 0.03,
    max_edge_mm: float = 1.5,
    seed: int = 1,
) -> trimesh.Trimesh:
    """A scan of the printed calibration phantom (a CAD part of flat faces, which
    :func:`retriangulate` would round off): its faces split to ``max_edge_mm``, a Gaussian bump
    of ``bump_mm`` on the plate's top at (30, 22), noise, moved by ``matrix``."""
    vertices, faces = trimesh.remesh.subdivide_to_size(
        plan.vertices, plan.faces, max_edge=max_edge_mm
    )
    part = trimesh.Trimesh(vertices, faces)
    top = np.abs(part.vertices[:, 2] - 4.0) < 1e-6
    r2 = ((part.vertices[:, :2] - (30.0, 22.0)) ** 2).sum(axis=1)
    lift = np.where(top, bump_mm * np.exp(-r2 / (2 * 1.5**2)), 0.0)
    moved = part.vertices + np.column_stack([np.zeros((len(lift), 2)), lift])
    moved += np.random.default_rng(seed).normal(0.0, noise_mm, moved.shape)
    return trimesh.Trimesh(moved, part.faces, process=False).apply_transform(matrix)


def box_with_a_pin() -> trimesh.Trimesh:
    """30 × 30 × 20 mm: two equal principal spreads; only a small pin on top tells the turns."""
    box = trimesh.creation.box(extents=(30.0, 30.0, 20.0))
    pin = trimesh.creation.cylinder(radius=2.0, height=4.0, sections=32)
    pin.apply_translation([8.0, 5.0, 12.0])
    return trimesh.boolean.union([box, pin], engine="manifold")

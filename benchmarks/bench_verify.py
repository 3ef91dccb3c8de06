"""Verification of a printed model: our registration + signed distance vs trimesh's plain ICP.

Input: the TCIA lumbar block's bone surface (the mesh pipeline) refined to ~200k triangles (the
approved mesh), and a "scan" of it: subdivided and decimated to ~500k triangles, 0.05 mm noise,
moved by 4° and 3 mm. Ours: :func:`app.tools.mesh.verify.register` (principal axes, point-to-
plane ICP on a KD-tree) then :func:`~app.tools.mesh.verify.signed_distance` of every scan
vertex. Anchor: ``trimesh.registration.icp`` on 20,000 sampled scan points (from the identity,
the scan being close) then ``trimesh.proximity.signed_distance`` of every scan vertex; that
last call is too slow to run on all vertices here, so it is timed on 20,000 of them and
extrapolated linearly (noted in the table). Residual: the mean absolute distance of all scan
vertices to the approved mesh after each registration (the same exact measure for both).
"""

from __future__ import annotations

import time

import fast_simplification
import numpy as np
import trimesh

from benchmarks.common import Row

SAMPLE = 20_000


def _simplify(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    reduction = max(0.0, 1.0 - faces / len(mesh.faces))
    v, f = fast_simplification.simplify(
        mesh.vertices.astype(np.float32), mesh.faces, target_reduction=reduction
    )
    return trimesh.Trimesh(v.astype(np.float64), f, process=True)


def _inputs(quick: bool) -> tuple[trimesh.Trimesh, trimesh.Trimesh, np.ndarray]:
    from scipy import ndimage

    from app.imaging.load import load_series
    from app.tools.mesh.pipeline import build_mesh
    from benchmarks.inputs import TCIA

    volume = load_series(TCIA)
    array = volume.array[30:70, 230:360, 190:320]
    labels, _ = ndimage.label(array >= 226)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    from app.imaging.volume import Volume

    origin = volume.index_to_lps(np.array([190.0, 230.0, 30.0]))
    block = Volume(array, origin=tuple(origin), spacing=volume.spacing,
                   direction=volume.direction, modality="CT")  # fmt: skip
    plan = build_mesh(labels == sizes.argmax(), block).mesh
    plan_faces, scan_faces = (50_000, 125_000) if quick else (200_000, 500_000)
    plan = _simplify(plan.subdivide(), plan_faces)
    scan = _simplify(plan.subdivide(), scan_faces)
    rng = np.random.default_rng(3)
    motion = trimesh.transformations.compose_matrix(
        angles=np.deg2rad([2.0, -3.0, 1.5]), translate=[2.0, -1.5, 1.5]
    )
    vertices = scan.vertices + rng.normal(0.0, 0.05, scan.vertices.shape)
    scan = trimesh.Trimesh(vertices @ motion[:3, :3].T + motion[:3, 3], scan.faces, process=False)
    return plan, scan, motion


def _mean_abs(plan: trimesh.Trimesh, scan: trimesh.Trimesh, matrix: np.ndarray) -> float:
    from app.tools.mesh.verify import signed_distance

    moved = scan.vertices @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.abs(signed_distance(moved, plan)).mean())


def run(quick: bool = False) -> list[Row]:
    from app.tools.mesh.verify import register, signed_distance

    plan, scan, _ = _inputs(quick)
    start = time.perf_counter()
    ours = register(scan.vertices, np.asarray(scan.faces), plan)
    moved = scan.vertices @ ours.rotation.T + ours.translation
    signed_distance(moved, plan)
    ours_s = time.perf_counter() - start

    rng = np.random.default_rng(0)
    sample = scan.vertices[rng.choice(len(scan.vertices), SAMPLE, replace=False)]
    start = time.perf_counter()
    matrix, _, _ = trimesh.registration.icp(sample, plan, max_iterations=50)
    icp_s = time.perf_counter() - start
    part = scan.vertices[rng.choice(len(scan.vertices), SAMPLE, replace=False)]
    part = part @ matrix[:3, :3].T + matrix[:3, 3]
    start = time.perf_counter()
    trimesh.proximity.signed_distance(plan, part)
    sd_s = (time.perf_counter() - start) * len(scan.vertices) / SAMPLE
    anchor_s = icp_s + sd_s

    ours_res, anchor_res = _mean_abs(plan, scan, ours.matrix), _mean_abs(plan, scan, matrix)
    size = f"{len(scan.faces) // 1000}k-triangle scan vs {len(plan.faces) // 1000}k mesh"
    note = f"trimesh icp {icp_s:.1f} s + signed_distance {sd_s:.1f} s (timed on {SAMPLE} "
    note += "vertices, extrapolated linearly)"
    return [
        Row(f"verify: register + distance ({size})", ours_s, "trimesh icp + signed_distance",
            anchor_s, goal="<= 0.5x", note=note),
        Row("verify: mean |distance| after registration", ours_res, "trimesh icp", anchor_res,
            unit=" ", goal="<= 1.0x", note="in mm"),
    ]  # fmt: skip

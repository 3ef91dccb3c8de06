"""Resin: our drain-hole placement and trapped-volume check vs PrusaSlicer's SLA export.

The input is the GE head CT skull of :mod:`benchmarks.bench_slicer` (100k triangles; 25k with
``--quick``) scaled to fit the Prusa SL1S (127 x 80 x 150 mm) and hollowed with 2 mm walls
(cavities left closed), cached as STL in :func:`benchmarks.inputs.cache_dir`. Ours, in this
process: :func:`app.tools.mesh.drain.cavity_holes` (a drain hole per cavity) plus
:func:`app.tools.mesh.drain.resin_check` as resin slicing runs it (the resin's wall and feature
limits: closed cavities and trapped resin, suction cups, thin walls). The anchor, in the same
run: ``prusa-slicer --export-sla`` of the same STL with our SL1S config (supports and pad on,
whole process). Goal: ours <= 0.5x.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_slicer import skull_mesh
from benchmarks.common import SHARED_DATA, Row
from benchmarks.inputs import cache_dir

FIT_MM = (120.0, 75.0, 140.0)  # inside the SL1S display and height


def hollowed_skull(faces: int) -> Path:
    """The skull scaled into the SL1S and hollowed (2 mm walls), cached as binary STL."""
    path = cache_dir() / f"skull-{faces}-sl1s-hollow2.stl"
    if path.exists():
        return path
    import numpy as np

    from app.tools.mesh import edit

    mesh = skull_mesh(faces)
    size = mesh.bounds[1] - mesh.bounds[0]
    mesh.apply_scale(float(np.min(np.asarray(FIT_MM) / size)))
    made = edit.hollow(mesh, 2.0)
    made.export(path.with_suffix(".part"), file_type="stl")
    path.with_suffix(".part").rename(path)
    return path


def _ours(stl: Path) -> tuple[float, str]:
    import trimesh

    from app.printing.profiles import get_material
    from app.tools.mesh.drain import cavity_holes, resin_check

    mesh = trimesh.load(stl, force="mesh")
    resin = get_material("resin")
    start = time.perf_counter()
    holes = cavity_holes(mesh)
    check = resin_check(mesh, min_wall_mm=resin.min_wall_mm, min_feature_mm=resin.min_feature_mm)
    wall = time.perf_counter() - start
    note = (
        f"{len(mesh.faces)} tri; {len(holes)} holes; {check.closed_cavities} cavities, "
        f"{check.trapped_ml:.1f} ml trapped; {check.suction_cups} cups; voxel {check.voxel_mm} mm"
    )
    return wall, note


def _prusaslicer(exe: str, stl: Path, folder: Path) -> tuple[float, int]:
    from app.printing.profiles import get_material, get_printer
    from app.printing.slicer.sla import SlaSettings, config_ini, read_sl1

    ini = folder / "sla.ini"
    ini.write_text(config_ini(get_printer("prusa-sl1s"), get_material("resin"), SlaSettings()))
    out = folder / "out.sl1"
    cmd = [exe, "--export-sla", "--load", str(ini), "--output", str(out), str(stl)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not out.exists():
        msg = f"prusa-slicer --export-sla failed ({proc.returncode}): {proc.stderr[-300:]}"
        raise RuntimeError(msg)
    return wall, read_sl1(out.read_bytes()).layers


def run(quick: bool) -> list[Row]:
    from app.printing.slicer.prusaslicer import find_executable

    exe = find_executable()
    if exe is None or not (SHARED_DATA / "dicom").is_dir():
        print("bench_resin: needs prusa-slicer and ../shared/data; skipped", file=sys.stderr)
        return []
    faces = 25_000 if quick else 100_000
    stl = hollowed_skull(faces)
    folder = Path(tempfile.mkdtemp(prefix="medprint-bench-"))
    try:
        ours, note = _ours(stl)
        theirs, layers = _prusaslicer(exe, stl, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [
        Row(
            "resin: drain holes + trapped-volume check",
            ours,
            "PrusaSlicer 2.5 --export-sla",
            theirs,
            "s",
            "<= 0.5x",
            f"hollowed skull {faces // 1000}k; {note}; SL1 {layers} layers",
        )
    ]


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(f"{row.name:50} {row.ours:9.2f} {row.anchor:9.2f} {row.ratio:6.2f}  {row.note}")

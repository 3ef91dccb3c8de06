"""Built-in slicer vs PrusaSlicer 2.5 on a real skull (~100k triangles) and a 60k-triangle torus.

Both slice the same STL with the same settings (0.2 mm layers, 2 perimeters, 15% grid infill,
with and without supports; PrusaSlicer gets :func:`config_ini`'s translation of our profile).
Each run is a fresh process: wall time from start to G-code on disk, and the child's peak RSS
(``ru_maxrss`` of the waited child). The skull comes from the GE head CT in ``../shared/data``:
bone iso-surface at 226 HU (VTK flying edges, 1 mm voxels), largest piece, decimated to 100k.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, SHARED_DATA, Row

_CHILD = """
import json, sys, time
start = time.perf_counter()
import trimesh
from app.printing.profiles import get_material, get_printer
from app.printing.slicer import Part, SliceSettings, slice_parts
mesh = trimesh.load(sys.argv[1], force="mesh")
settings = SliceSettings(supports=sys.argv[2] == "1")
result = slice_parts([Part("bench", mesh.vertices, mesh.faces)], get_printer("generic-marlin-220"),
                     get_material("pla"), settings)
result.write(sys.argv[3])
s = result.summary
print(json.dumps({"layers": s.layers, "filament_mm": s.filament_mm, "time_s": s.time_s,
                  "inner_s": time.perf_counter() - start}))
"""

_WRAPPER = """
import resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("RESULT", proc.returncode, wall, peak)
print(proc.stdout[-2000:])
print(proc.stderr[-2000:], file=sys.stderr)
"""


def _measure(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak MiB, child stdout) of ``cmd`` run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, cwd=REPO, check=True
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    _, code, wall, peak = line.split()
    if int(code) != 0:
        msg = f"benchmark child failed ({code}): {out.stderr[-500:]}"
        raise RuntimeError(msg)
    return float(wall), float(peak), out.stdout


def skull_mesh(target_faces: int) -> object:
    """The GE head CT skull as a trimesh with about ``target_faces`` triangles."""
    sys.path.insert(0, str(REPO / "tests" / "printing"))
    try:
        from conftest import bone_mesh  # the same recipe as the tests' real-bone fixture
    finally:
        sys.path.pop(0)
    folder = SHARED_DATA / "dicom" / "ct-head-ge-gantry-tilt-28"
    return bone_mesh(folder, (slice(None), slice(None), slice(None)), target_faces)


def torus_mesh(target_faces: int) -> object:
    """A torus lying flat (overhangs underneath), about ``target_faces`` triangles."""
    import trimesh

    minor = 60
    major = max(8, target_faces // (2 * minor))
    return trimesh.creation.torus(40.0, 15.0, major_sections=major, minor_sections=minor)


def _prusaslicer_cmd(exe: str, ini: Path, stl: Path, out: Path) -> list[str]:
    return [
        exe,
        "--export-gcode",
        "--load",
        str(ini),
        "--center",
        "110,110",
        "-o",
        str(out),
        str(stl),
    ]


def run(quick: bool) -> list[Row]:
    from app.printing.profiles import get_material, get_printer
    from app.printing.slicer import SliceSettings
    from app.printing.slicer.prusaslicer import config_ini, find_executable

    exe = find_executable()
    if exe is None:
        print(
            "bench_slicer: prusa-slicer not installed (apt install prusa-slicer); skipped",
            file=sys.stderr,
        )
        return []
    printer, material = get_printer("generic-marlin-220"), get_material("pla")
    meshes = {"test torus 60k": torus_mesh(15_000 if quick else 60_000)}
    if (SHARED_DATA / "dicom").is_dir():
        meshes["skull 100k"] = skull_mesh(25_000 if quick else 100_000)
    rows: list[Row] = []
    folder = Path(tempfile.mkdtemp(prefix="medprint-bench-"))
    try:
        for name, mesh in meshes.items():
            stl = folder / "mesh.stl"
            mesh.export(stl)
            faces = len(mesh.faces)
            for supports in (False, True) if not quick else (False,):
                ini = folder / "config.ini"
                ini.write_text(config_ini(printer, material, SliceSettings(supports=supports)))
                label = f"{name} {'supports' if supports else 'no supports'}"
                print(f"bench_slicer: {label} ({faces} triangles)", file=sys.stderr, flush=True)
                ours_wall, ours_peak, ours_out = _measure(
                    [
                        sys.executable,
                        "-c",
                        _CHILD,
                        str(stl),
                        "1" if supports else "0",
                        str(folder / "ours.gcode"),
                    ]
                )
                ours = json.loads(ours_out.strip().splitlines()[-1])
                ps_wall, ps_peak, _ = _measure(_prusaslicer_cmd(exe, ini, stl, folder / "ps.gcode"))
                theirs = _summary(folder / "ps.gcode", printer, material)
                note = (
                    f"{faces} tri; layers {ours['layers']} vs {theirs['layers']}; filament "
                    f"{ours['filament_mm'] / theirs['filament_mm']:.2f}x; est. time "
                    f"{ours['time_s'] / theirs['time_s']:.2f}x"
                )
                rows.append(
                    Row(
                        f"slice {label}: built-in wall",
                        ours_wall,
                        "PrusaSlicer 2.5",
                        ps_wall,
                        "s",
                        "<= 1.0x",
                        note,
                    )
                )
                rows.append(
                    Row(
                        f"slice {label}: built-in peak RSS",
                        ours_peak,
                        "PrusaSlicer 2.5",
                        ps_peak,
                        "M",
                        "",
                        "whole process",
                    )
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def _summary(path: Path, printer: object, material: object) -> dict[str, float]:
    from app.printing.gcode import MotionLimits, parse_gcode

    analysis = parse_gcode(
        path,
        filament_diameter=printer.filament_diameter,  # type: ignore[attr-defined]
        density=material.density,  # type: ignore[attr-defined]
        limits=MotionLimits.from_profile(printer.motion),  # type: ignore[attr-defined]
    )
    s = analysis.summary()
    return {"layers": s.layers, "filament_mm": s.filament_mm, "time_s": s.time_s}


if __name__ == "__main__":
    started = time.perf_counter()
    for row in run(quick="--quick" in sys.argv):
        print(f"{row.name:60} {row.ours:9.2f} {row.anchor:9.2f} {row.ratio:6.2f}  {row.note}")
    print(f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)

"""PrusaSlicer as a second engine: same profile and settings, its G-code through our analysis.

The parts are placed by our own arrangement, written as one STL named ``part.stl`` (on a printer
with several extruders: kept in place as one object with a volume and an extruder per part,
``part.3mf``, see :mod:`app.printing.slicer.toolmodel`) into a private folder (in RAM under ``/dev/shm`` when the system has it), sliced by ``prusa-slicer
--export-gcode`` in a subprocess that a cancel kills, and the folder is removed afterwards.
Its G-code is stripped of anything that could name a source (object labels, file names,
thumbnails, the generation date) before it is analysed like any other G-code.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from app.errors import PrintingError
from app.printing.gcode import MotionLimits, parse_gcode
from app.printing.profiles import MaterialProfile, PrinterProfile, check_pair
from app.printing.slicer.arrange import arrange, place_together, placed
from app.printing.slicer.engine import EngineInfo
from app.printing.slicer.result import SliceResult
from app.printing.slicer.settings import Part, SliceSettings
from app.printing.slicer.toolmodel import tool_model_3mf
from app.progress import CancelToken, Progress, check_cancel, ensure

ENGINE = "prusaslicer"
EXECUTABLES = ("prusa-slicer", "prusaslicer", "PrusaSlicer")
INSTALL_HINT = "apt install prusa-slicer"
_PROGRESS_RE = re.compile(r"^\s*(\d+)\s*=>")
_DROP_COMMENTS = re.compile(
    r"^;\s*(printing object|stop printing object|input_filename|output_filename|notes|"
    r"printer_notes|filament_notes|print_settings_id|printer_settings_id|filament_settings_id|"
    r"physical_printer_settings_id|thumbnails?\b)",
    re.IGNORECASE,
)


def find_executable() -> str | None:
    """Path of the PrusaSlicer command-line program, or None."""
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


def engine_info() -> EngineInfo:
    """PrusaSlicer as the GUI lists it (unavailable: with the install hint)."""
    exe = find_executable()
    if exe is None:
        return EngineInfo(ENGINE, "PrusaSlicer", False, "", f"not installed: {INSTALL_HINT}")
    return EngineInfo(ENGINE, "PrusaSlicer", True, _version(exe), "")


def _version(exe: str) -> str:
    try:
        out = subprocess.run(
            [exe, "--help"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.search(r"PrusaSlicer-([\w.+-]+)", out)
    return match.group(1) if match else ""


def _escape(gcode: str) -> str:
    return gcode.replace("\\", "\\\\").replace("\n", "\\n")


def config_ini(printer: PrinterProfile, material: MaterialProfile, settings: SliceSettings) -> str:
    """A PrusaSlicer .ini with the same printer, material and slicing settings as ours."""
    x, y, z = printer.build_volume
    w = settings.width(printer.nozzle_diameter)
    sp, r, m = printer.speeds, printer.retraction, printer.motion
    values: dict[str, object] = {
        "printer_technology": "FFF",
        "bed_shape": f"0x0,{x:g}x0,{x:g}x{y:g},0x{y:g}",
        "max_print_height": f"{z:g}",
        "gcode_flavor": "marlin2",
        "nozzle_diameter": printer.nozzle_diameter,
        "filament_diameter": printer.filament_diameter,
        "use_relative_e_distances": int(printer.relative_e),
        "layer_gcode": "G92 E0" if printer.relative_e else "",  # PrusaSlicer asks it of relative E
        "layer_height": settings.layer_height,
        "first_layer_height": settings.first_layer_height,
        "perimeters": settings.perimeters,
        "external_perimeters_first": int(settings.external_perimeter_first),
        "top_solid_layers": settings.top_layers,
        "bottom_solid_layers": settings.bottom_layers,
        "fill_density": f"{settings.infill_density:g}%",
        "fill_pattern": settings.infill_pattern,
        "fill_angle": settings.infill_angle,
        "infill_overlap": f"{settings.infill_overlap:g}%",
        "solid_infill_below_area": settings.solid_below_area,
        "ensure_vertical_shell_thickness": 0,
        "temperature": material.temperature,
        "first_layer_temperature": material.first_layer_temperature,
        "bed_temperature": material.bed_temperature,
        "first_layer_bed_temperature": material.first_layer_bed_temperature,
        "filament_density": material.density,
        "filament_type": material.type,
        "cooling": 1,
        "min_fan_speed": material.fan_min,
        "max_fan_speed": material.fan_max,
        "disable_fan_first_layers": material.fan_off_layers,
        "fan_below_layer_time": settings.fan_below_layer_time,
        "slowdown_below_layer_time": settings.min_layer_time,
        "min_print_speed": 10,
        "perimeter_speed": sp.perimeter,
        "external_perimeter_speed": sp.external_perimeter,
        "infill_speed": sp.infill,
        "solid_infill_speed": sp.solid_infill,
        "top_solid_infill_speed": sp.top_solid_infill,
        "support_material_speed": sp.support,
        "support_material_interface_speed": "100%",
        "travel_speed": sp.travel,
        "first_layer_speed": sp.first_layer,
        "retract_length": r.length,
        "retract_speed": r.speed,
        "retract_lift": r.lift,
        "retract_before_travel": r.min_travel,
        "retract_layer_change": 1,
        "machine_limits_usage": "time_estimate_only",
        "machine_max_acceleration_extruding": m.acceleration,
        "machine_max_acceleration_retracting": m.retract_acceleration,
        "machine_max_acceleration_travel": m.travel_acceleration,
        "machine_max_acceleration_x": max(m.acceleration, m.travel_acceleration),
        "machine_max_acceleration_y": max(m.acceleration, m.travel_acceleration),
        "machine_max_feedrate_x": m.max_feedrate_xy,
        "machine_max_feedrate_y": m.max_feedrate_xy,
        "machine_max_feedrate_z": m.max_feedrate_z,
        "machine_max_feedrate_e": m.max_feedrate_e,
        "machine_max_jerk_x": m.jerk_xy,
        "machine_max_jerk_y": m.jerk_xy,
        "machine_max_jerk_e": m.jerk_e,
        "skirts": settings.skirt_loops,
        "skirt_distance": settings.skirt_distance,
        "skirt_height": 1,
        "min_skirt_length": 0,
        "brim_width": settings.brim_width,
        "support_material": int(settings.supports),
        "support_material_auto": 1,
        "support_material_threshold": max(1, round(90 - settings.support_angle)),
        "support_material_contact_distance": settings.support_z_gap,
        "support_material_xy_spacing": settings.support_xy_distance,
        "support_material_spacing": settings.support_spacing,
        "support_material_pattern": "rectilinear",
        "support_material_angle": 0,
        "support_material_interface_layers": settings.support_interface_layers,
        "support_material_interface_spacing": settings.support_interface_spacing,
        "gcode_label_objects": 0,
        "gcode_comments": 0,
        "thumbnails": "",
        "start_gcode": _escape(printer.start_gcode),
        "end_gcode": _escape(printer.end_gcode),
    }
    for key in (
        "extrusion_width",
        "first_layer_extrusion_width",
        "perimeter_extrusion_width",
        "external_perimeter_extrusion_width",
        "infill_extrusion_width",
        "solid_infill_extrusion_width",
        "top_infill_extrusion_width",
        "support_material_extrusion_width",
    ):
        values[key] = w
    if printer.extruders > 1:
        values |= _per_tool(values, printer.extruders)
    lines = ["# MedPrint: PrusaSlicer settings equal to the built-in slicer's"]
    lines += [f"{key} = {_fmt(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


_TOOL_KEYS = (
    "nozzle_diameter", "filament_diameter", "temperature", "first_layer_temperature",
    "filament_density", "filament_type", "retract_length", "retract_speed", "retract_lift",
    "retract_before_travel", "retract_layer_change", "min_fan_speed", "max_fan_speed",
    "disable_fan_first_layers", "fan_below_layer_time", "slowdown_below_layer_time",
)  # fmt: skip


def _per_tool(values: dict[str, object], extruders: int) -> dict[str, object]:
    """Per-extruder settings repeated for each tool (one material on every tool), and no wipe
    tower (a tool head per part on a tool changer oozes little; the tower's place could clash
    with an anatomy-sized model)."""
    tools = {key: ",".join([_fmt(values[key])] * extruders) for key in _TOOL_KEYS}
    return tools | {"wipe_tower": 0, "single_extruder_multi_material": 0}


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def strip_gcode(text: str, object_names: list[str]) -> str:
    """Remove what could identify a source from PrusaSlicer's G-code; add our object names."""
    out: list[str] = []
    in_thumbnail = False
    for line in text.splitlines():
        low = line.lower()
        if low.startswith("; thumbnail") and "begin" in low:
            in_thumbnail = True
            continue
        if in_thumbnail:
            if low.startswith("; thumbnail") and "end" in low:
                in_thumbnail = False
            continue
        if line.startswith("; generated by"):
            out.append("; generated by PrusaSlicer via MedPrint")
            out.extend(f"; object = {name}" for name in object_names)
            continue
        if _DROP_COMMENTS.match(line) or line.upper().startswith(("M486", "EXCLUDE_OBJECT")):
            continue
        if "part.stl" in low or "part.3mf" in low or "medprint-ps-" in low:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def _private_dir() -> Path:
    base = (
        Path("/dev/shm") if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) else None
    )
    return Path(tempfile.mkdtemp(prefix="medprint-ps-", dir=base))


def _check_tools(parts: list[Part], printer: PrinterProfile) -> None:
    """Refuse a part assigned to a tool the printer does not have."""
    for part in parts:
        if not 0 <= part.extruder <= printer.extruders:
            msg = (
                f"part '{part.safe_name}' is assigned to extruder {part.extruder}, but "
                f"'{printer.name}' has {printer.extruders}; choose 1..{printer.extruders}"
            )
            raise PrintingError(msg)


def _write_stl(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    tri = vertices[faces].astype(np.float32)
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = (normals / np.where(length > 0, length, 1)).astype(np.float32)
    record = np.zeros(len(faces), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    record["n"] = normals
    record["v"] = tri
    with open(path, "wb") as handle:
        handle.write(b"MedPrint part".ljust(80, b" "))
        handle.write(np.uint32(len(faces)).tobytes())
        handle.write(record.tobytes())


def slice_prusaslicer(
    parts: list[Part],
    printer: PrinterProfile,
    material: MaterialProfile,
    settings: SliceSettings | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout_s: float = 3600.0,
) -> SliceResult:
    """Slice with PrusaSlicer's CLI; raise :class:`PrintingError` if it is missing or fails."""
    settings = settings or SliceSettings()
    progress = ensure(progress)
    exe = find_executable()
    if exe is None:
        msg = (
            f"PrusaSlicer is not installed; install it ({INSTALL_HINT}) or use the built-in slicer"
        )
        raise PrintingError(msg)
    settings.check_against(printer.nozzle_diameter)
    check_pair(printer, material)
    _check_tools(parts, printer)
    tools = printer.extruders > 1
    offsets = (
        place_together(parts, printer) if tools else arrange(parts, printer, settings.part_spacing)
    )
    folder = _private_dir()
    try:
        os.chmod(folder, 0o700)
        stl, ini, out, log = (
            folder / n
            for n in ("part.3mf" if tools else "part.stl", "config.ini", "out.gcode", "log.txt")
        )
        if tools:
            stl.write_bytes(tool_model_3mf(parts, offsets))
        else:
            _write_stl(stl, *placed(parts, offsets))
        ini.write_text(config_ini(printer, material, settings), encoding="utf-8")
        cmd = [
            exe,
            "--export-gcode",
            "--load",
            str(ini),
            "--dont-arrange",
            "-o",
            str(out),
            str(stl),
        ]
        _run(cmd, log, progress.sub(0.0, 0.85), cancel, timeout_s)
        if not out.exists():
            msg = f"PrusaSlicer wrote no G-code ({_last_line(log)}); check the mesh and settings"
            raise PrintingError(msg)
        text = strip_gcode(
            out.read_text(encoding="utf-8", errors="replace"), [p.safe_name for p in parts]
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    progress.update(0.9, "analysing G-code")
    analysis = parse_gcode(
        text,
        filament_diameter=printer.filament_diameter,
        density=material.density,
        limits=MotionLimits.from_profile(printer.motion),
        cancel=cancel,
    )
    progress.update(1.0, "done")
    return SliceResult(ENGINE, text, analysis, [], offsets)


def _run(
    cmd: list[str], log: Path, progress: Progress, cancel: CancelToken | None, timeout_s: float
) -> None:
    started = time.monotonic()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        try:
            while proc.poll() is None:
                time.sleep(0.1)
                check_cancel(cancel)
                if time.monotonic() - started > timeout_s:
                    msg = f"PrusaSlicer took longer than {timeout_s:.0f} s and was stopped; simplify the mesh"
                    raise PrintingError(msg)
                percent = _last_progress(log)
                if percent is not None:
                    progress.update(percent / 100.0, "PrusaSlicer slicing")
        finally:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
    if proc.returncode != 0:
        msg = f"PrusaSlicer failed (exit {proc.returncode}: {_last_line(log)}); check the mesh and settings"
        raise PrintingError(msg)


def _tail(log: Path, size: int = 4096) -> list[str]:
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, log.stat().st_size - size))
            return handle.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _last_progress(log: Path) -> int | None:
    for line in reversed(_tail(log)):
        match = _PROGRESS_RE.match(line)
        if match:
            return int(match.group(1))
    return None


def _last_line(log: Path) -> str:
    for line in reversed(_tail(log)):
        text = line.strip()
        if text and "[trace]" not in text:
            text = text.replace(str(log.parent), "")
            return text[-160:]
    return "no output"

"""Resin slicing with PrusaSlicer's SLA engine: parts in, a label-stripped ``.sl1`` archive out.

``prusa-slicer --export-sla`` runs on one neutral STL (all parts merged in place, so a tumour stays
inside its bone) in a private folder; the archive it writes is rebuilt: layers renamed
``partNNNNN.png`` with only their image chunks, ``config.ini`` reduced to the printer's keys with
neutral names, ``prusaslicer.ini`` with every free-text value blanked, fixed zip dates. The archive
is read back for a layer preview and the resin volume and time estimate.
"""

from __future__ import annotations

import io
import math
import os
import re
import shutil
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.errors import PrintingError
from app.printing.profiles import MaterialProfile, PrinterProfile, check_pair
from app.printing.slicer.prusaslicer import (
    INSTALL_HINT,
    _last_line,
    _private_dir,
    _run,
    _write_stl,
    find_executable,
)
from app.progress import CancelToken, Progress, ensure

ENGINE = "prusaslicer-sla"
JOB = "part"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_LAYER_RE = re.compile(r"^[^/]*?(\d{5})\.png$")
_CONFIG_KEYS = (
    "action", "expTime", "expTimeFirst", "expUserProfile", "hollow", "layerHeight", "numFade",
    "numFast", "numSlow", "printTime", "printerModel", "usedMaterial",
)  # fmt: skip
_TEXT_KEYS = re.compile(
    r"(_settings_id|_notes|^inherits|^compatible_|^output_filename_format|^printer_vendor"
    r"|^physical_printer|^thumbnails|^material_vendor|^material_type|^printer_variant)"
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = (b"IHDR", b"PLTE", b"IDAT", b"IEND")


@dataclass(frozen=True)
class SlaSettings:
    """Supports, pad and orientation (degrees about x then y, applied by the engine)."""

    supports: bool = True
    pad: bool = True
    rotate_x: float = 0.0
    rotate_y: float = 0.0
    support_elevation: float = 5.0  # mm the part is lifted on its supports
    layer_height: float | None = None  # default: the printer's


@dataclass(frozen=True)
class SlaArchive:
    """A stripped ``.sl1`` and what it says: layers, layer height, resin (ml), time (s)."""

    data: bytes
    layers: int
    layer_height: float
    resin_ml: float
    print_time_s: float

    def resin_g(self, material: MaterialProfile) -> float:
        return self.resin_ml * material.density

    def cost(self, material: MaterialProfile) -> float:
        return self.resin_g(material) / 1000.0 * material.cost_per_kg

    def layer_png(self, index: int) -> bytes:
        """Layer ``index`` (0 = on the build plate) as PNG bytes, for a preview."""
        return layer_png(self.data, index)

    def summary_lines(self, material: MaterialProfile) -> list[str]:
        hours, minutes = divmod(round(self.print_time_s / 60), 60)
        return [
            f"layers: {self.layers} at {self.layer_height:g} mm",
            f"resin: {self.resin_ml:.1f} ml ({self.resin_g(material):.1f} g, "
            f"{self.cost(material):.2f} at {material.cost_per_kg:g}/kg)",
            f"print time: {hours} h {minutes:02d} min",
        ]


# ---------------------------------------------------------------------------------------------
# configuration


def config_ini(printer: PrinterProfile, material: MaterialProfile, settings: SlaSettings) -> str:
    """PrusaSlicer's SLA configuration from MedPrint's profiles (no names, no notes)."""
    resin = printer.resin
    w, h = resin.display_width, resin.display_height
    values = {
        "printer_technology": "SLA",
        "printer_model": resin.model,
        "layer_height": settings.layer_height or resin.layer_height,
        "initial_layer_height": settings.layer_height or resin.layer_height,
        "display_width": w,
        "display_height": h,
        "display_pixels_x": resin.display_pixels_x,
        "display_pixels_y": resin.display_pixels_y,
        "display_orientation": "landscape" if w >= h else "portrait",
        "bed_shape": f"0x0,{w}x0,{w}x{h},0x{h}",
        "max_print_height": printer.build_volume[2],
        "exposure_time": material.exposure_time,
        "initial_exposure_time": material.initial_exposure_time,
        "material_density": material.density,
        "bottle_volume": 1000,
        "bottle_weight": material.density,
        "bottle_cost": round(material.cost_per_kg * material.density, 2),
        "supports_enable": int(settings.supports),
        "support_object_elevation": settings.support_elevation if settings.supports else 0,
        "pad_enable": int(settings.pad),
        "output_filename_format": f"{JOB}.sl1",
    }
    return "".join(f"{k} = {v}\n" for k, v in values.items())


# ---------------------------------------------------------------------------------------------
# slicing


def slice_sla(
    parts: list[tuple[np.ndarray, np.ndarray]],
    printer: PrinterProfile,
    material: MaterialProfile,
    settings: SlaSettings | None = None,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout_s: float = 3600.0,
) -> SlaArchive:
    """Slice ``parts`` (vertices, faces in mm, kept where they are relative to each other)."""
    settings = settings or SlaSettings()
    progress = ensure(progress)
    exe = find_executable()
    if exe is None:
        msg = f"PrusaSlicer is not installed; install it ({INSTALL_HINT}) to slice for resin"
        raise PrintingError(msg)
    if not printer.is_resin:
        msg = f"'{printer.name}' is not a resin printer; choose an SLA/MSLA profile"
        raise PrintingError(msg)
    if printer.connection.kind == "formlabs":
        msg = f"'{printer.name}' is sliced by Formlabs PreForm, not into an SL1 archive; send the "
        msg += "approved mesh to PreForm instead"
        raise PrintingError(msg)
    check_pair(printer, material)
    vertices, faces = merged(parts)
    folder = _private_dir()
    try:
        os.chmod(folder, 0o700)
        stl, ini, out, log = (folder / n for n in ("part.stl", "sla.ini", f"{JOB}.sl1", "log.txt"))
        _write_stl(stl, vertices, faces)
        ini.write_text(config_ini(printer, material, settings), encoding="utf-8")
        _run(_command(exe, ini, out, stl, settings), log, progress.sub(0.0, 0.9), cancel, timeout_s)
        if not out.exists():
            msg = f"PrusaSlicer wrote no SL1 archive ({_last_line(log)}); check the mesh"
            raise PrintingError(msg)
        data = strip_sl1(out.read_bytes())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    progress.update(1.0, "done")
    return read_sl1(data)


def merged(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All parts as one vertex and face list, each where it is."""
    if not parts:
        msg = "there is nothing to slice; build a mesh version first"
        raise PrintingError(msg)
    vertices = np.concatenate([np.asarray(v, dtype=np.float64) for v, _ in parts])
    base = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    faces = np.concatenate([np.asarray(f) + b for (_, f), b in zip(parts, base, strict=True)])
    return vertices, faces


def _command(exe: str, ini: Path, out: Path, stl: Path, settings: SlaSettings) -> list[str]:
    cmd = [exe, "--export-sla", "--load", str(ini)]
    if settings.rotate_x:
        cmd += ["--rotate-x", f"{settings.rotate_x:g}"]
    if settings.rotate_y:
        cmd += ["--rotate-y", f"{settings.rotate_y:g}"]
    return [*cmd, "--output", str(out), str(stl)]


# ---------------------------------------------------------------------------------------------
# stripping and reading the archive


def strip_sl1(data: bytes) -> bytes:
    """The archive rebuilt with neutral names, whitelisted config keys and bare PNG layers."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        layers = sorted(_layer_entries(source))
        config = _ini(source.read("config.ini").decode("utf-8", errors="replace"))
        engine = source.read("prusaslicer.ini").decode("utf-8", errors="replace")
        entries = [
            ("config.ini", _neutral_config(config, len(layers))),
            ("prusaslicer.ini", _neutral_engine_ini(engine)),
        ]
        entries += [(f"{JOB}{i:05d}.png", bare_png(source.read(name))) for i, name in layers]
    return _zip(entries)


def _layer_entries(archive: zipfile.ZipFile) -> list[tuple[int, str]]:
    found = []
    for name in archive.namelist():
        match = _LAYER_RE.match(name)
        if match:  # thumbnails and anything else are left out
            found.append((int(match.group(1)), name))
    return found


def _ini(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _neutral_config(config: dict[str, str], layers: int) -> bytes:
    kept = {k: config[k] for k in _CONFIG_KEYS if k in config}
    kept |= {"jobDir": JOB, "materialName": "resin", "printProfile": "medprint"}
    kept |= {"printerProfile": "medprint", "printerVariant": "default"}
    kept["numFast"] = str(int(kept.get("numFast", layers)))
    return "".join(f"{k} = {kept[k]}\n" for k in sorted(kept)).encode("ascii")


def _neutral_engine_ini(text: str) -> bytes:
    out = []
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue  # the generator comment names the PrusaSlicer build and a date
        key, value = (part.strip() for part in line.split("=", 1))
        out.append(f"{key} = {'' if _TEXT_KEYS.search(key) else value}")
    return ("\n".join(out) + "\n").encode("ascii", errors="replace")


def bare_png(data: bytes) -> bytes:
    """``data`` with only its image chunks (no text, time or profile chunks)."""
    if not data.startswith(_PNG_SIGNATURE):
        msg = "a layer of the SL1 archive is not a PNG image; slice again"
        raise PrintingError(msg)
    out, at = [_PNG_SIGNATURE], len(_PNG_SIGNATURE)
    while at + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        if kind in _PNG_KEEP:
            out.append(data[at : at + 12 + length])
        at += 12 + length
    return b"".join(out)


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = (
                zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            )
            info.create_system = 0
            archive.writestr(info, data)
    return buffer.getvalue()


def read_sl1(data: bytes) -> SlaArchive:
    """The facts of an ``.sl1`` archive: layer count, layer height, resin ml, print time."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            config = _ini(archive.read("config.ini").decode("utf-8", errors="replace"))
            layers = len(_layer_entries(archive))
    except (zipfile.BadZipFile, KeyError) as error:
        msg = f"the SL1 archive is damaged ({error}); slice again"
        raise PrintingError(msg) from error
    return SlaArchive(
        data=data,
        layers=layers,
        layer_height=_float(config, "layerHeight"),
        resin_ml=_float(config, "usedMaterial"),
        print_time_s=_float(config, "printTime"),
    )


def _float(config: dict[str, str], key: str) -> float:
    try:
        value = float(config[key])
    except (KeyError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def layer_png(data: bytes, index: int) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        layers = dict(_layer_entries(archive))
        if index not in layers:
            msg = f"the archive has no layer {index} (it has {len(layers)})"
            raise PrintingError(msg)
        return archive.read(layers[index])

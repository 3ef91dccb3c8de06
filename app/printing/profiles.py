"""Printer and material profiles: typed, validated data loaded from JSON files.

Shipped profiles live in ``resources/printers/`` (printers) and ``resources/printers/materials/``;
the user's own copies live in :attr:`app.settings.Paths.printers` (same layout) and override a
shipped profile with the same id. A profile file never holds a secret: the API key of a networked
printer is kept in the OS keystore under :func:`api_key_name`.

Start and end G-code may use PrusaSlicer-style placeholders, e.g. ``M104 S[first_layer_temperature]``;
the names in :data:`PLACEHOLDERS` are known, anything else in square brackets is refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.atomic import atomic_write_bytes
from app.errors import PrintingError
from app.resources import resources_root
from app.settings import Paths, resolve_paths

SHIPPED_DIR = resources_root() / "printers"
PRINTER_FORMAT = "medprint-printer/1"
MATERIAL_FORMAT = "medprint-material/1"
CONNECTION_KINDS = ("usb", "octoprint", "moonraker", "prusalink", "formlabs")
TECHNOLOGIES = ("fdm", "sla", "msla")  # filament, or resin (laser SLA / masked LCD)
FIRMWARES = ("marlin",)
PLACEHOLDERS = (
    "temperature",
    "first_layer_temperature",
    "bed_temperature",
    "first_layer_bed_temperature",
)
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$")
_PLACEHOLDER_RE = re.compile(r"\[([A-Za-z_][A-Za-z0-9_]*)\]")


@dataclass(frozen=True)
class Connection:
    """How MedPrint reaches the printer: a USB serial port or an OctoPrint/Moonraker URL."""

    kind: str = "usb"
    port: str = "auto"
    baud_rate: int = 115200
    url: str = ""


@dataclass(frozen=True)
class Speeds:
    """Feed rates in mm/s for each kind of move."""

    perimeter: float = 60.0
    external_perimeter: float = 30.0
    infill: float = 80.0
    solid_infill: float = 20.0
    top_solid_infill: float = 15.0
    support: float = 60.0
    skirt: float = 30.0
    travel: float = 130.0
    first_layer: float = 30.0
    z_travel: float = 12.0


@dataclass(frozen=True)
class Retraction:
    """Filament retraction before travel moves."""

    length: float = 2.0
    speed: float = 40.0
    lift: float = 0.0
    min_travel: float = 2.0


@dataclass(frozen=True)
class Motion:
    """Machine limits used for time estimates (and written to PrusaSlicer's config)."""

    acceleration: float = 1500.0
    travel_acceleration: float = 1500.0
    retract_acceleration: float = 1500.0
    max_feedrate_xy: float = 500.0
    max_feedrate_z: float = 12.0
    max_feedrate_e: float = 120.0
    jerk_xy: float = 10.0
    jerk_e: float = 2.5


@dataclass(frozen=True)
class Resin:
    """A resin printer's layer height and exposure display (exposure times are the material's
    and the engine's; the display sets the slicing raster)."""

    layer_height: float = 0.05
    display_width: float = 120.96
    display_height: float = 68.04
    display_pixels_x: int = 2560
    display_pixels_y: int = 1440
    model: str = "SL1S"  # the printer model the engine's archive names (SL1S, SL1 or generic)


@dataclass(frozen=True)
class PrinterProfile:
    """One printer: its build volume, hardware, speeds, G-code and connection."""

    id: str
    name: str
    build_volume: tuple[float, float, float] = (220.0, 220.0, 250.0)
    nozzle_diameter: float = 0.4
    filament_diameter: float = 1.75
    extruders: int = 1  # tool heads (or MMU slots): a multi-part model prints a part per tool
    firmware: str = "marlin"
    relative_e: bool = False
    max_nozzle_temperature: float = 285.0
    max_bed_temperature: float = 110.0
    speeds: Speeds = field(default_factory=Speeds)
    retraction: Retraction = field(default_factory=Retraction)
    motion: Motion = field(default_factory=Motion)
    start_gcode: str = "G28 ; home\nG1 Z5 F3000"
    end_gcode: str = "M104 S0\nM140 S0\nM107\nM84"
    default_material: str = "pla"
    connection: Connection = field(default_factory=Connection)
    technology: str = "fdm"
    resin: Resin = field(default_factory=Resin)
    serial: str = ""  # the machine's serial number, for the print record when it reports none
    origin: str = field(default="shipped", compare=False)

    @property
    def is_resin(self) -> bool:
        return self.technology in ("sla", "msla")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("origin")
        data["build_volume"] = list(self.build_volume)
        return {"format": PRINTER_FORMAT, **data}


@dataclass(frozen=True)
class MaterialProfile:
    """One filament: temperatures, fan, density (for mass) and cost."""

    id: str
    name: str
    type: str = "PLA"
    density: float = 1.24
    temperature: float = 210.0
    first_layer_temperature: float = 215.0
    bed_temperature: float = 60.0
    first_layer_bed_temperature: float = 60.0
    fan_min: float = 35.0
    fan_max: float = 100.0
    fan_off_layers: int = 1
    cost_per_kg: float = 0.0
    exposure_time: float = 2.0  # resin only: seconds per layer, and for the first layers
    initial_exposure_time: float = 25.0
    min_wall_mm: float = 0.8  # resin only: thinnest wall and smallest feature that print reliably
    min_feature_mm: float = 0.4
    origin: str = field(default="shipped", compare=False)

    @property
    def is_resin(self) -> bool:
        return self.type.upper() == "RESIN"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("origin")
        return {"format": MATERIAL_FORMAT, **data}


# ---------------------------------------------------------------------------------------------
# validation


def _fail(where: str, what: str) -> PrintingError:
    return PrintingError(f"{where}: {what}")


def _number(where: str, key: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(where, f"'{key}' must be a number, not {type(value).__name__}; fix the value")
    if not low <= float(value) <= high:
        raise _fail(where, f"'{key}' = {value} is outside {low:g}..{high:g}; fix the value")
    return float(value)


def _text(where: str, key: str, value: object, max_len: int = 4000) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"'{key}' must be text, not {type(value).__name__}; fix the value")
    if len(value) > max_len:
        raise _fail(where, f"'{key}' is longer than {max_len} characters; shorten it")
    return value


_RANGES: dict[str, tuple[float, float]] = {
    "nozzle_diameter": (0.1, 2.0),
    "extruders": (1.0, 16.0),
    "filament_diameter": (1.0, 3.5),
    "max_nozzle_temperature": (150.0, 500.0),
    "max_bed_temperature": (0.0, 200.0),
    "density": (0.5, 3.0),
    "temperature": (150.0, 350.0),
    "first_layer_temperature": (150.0, 350.0),
    "bed_temperature": (0.0, 150.0),
    "first_layer_bed_temperature": (0.0, 150.0),
    "fan_min": (0.0, 100.0),
    "fan_max": (0.0, 100.0),
    "fan_off_layers": (0.0, 100.0),
    "cost_per_kg": (0.0, 10000.0),
    # speeds (mm/s)
    "perimeter": (1.0, 1000.0),
    "external_perimeter": (1.0, 1000.0),
    "infill": (1.0, 1000.0),
    "solid_infill": (1.0, 1000.0),
    "top_solid_infill": (1.0, 1000.0),
    "support": (1.0, 1000.0),
    "skirt": (1.0, 1000.0),
    "travel": (1.0, 1000.0),
    "first_layer": (1.0, 1000.0),
    "z_travel": (0.1, 200.0),
    # retraction
    "length": (0.0, 20.0),
    "speed": (1.0, 200.0),
    "lift": (0.0, 10.0),
    "min_travel": (0.0, 100.0),
    # motion
    "acceleration": (10.0, 100000.0),
    "travel_acceleration": (10.0, 100000.0),
    "retract_acceleration": (10.0, 100000.0),
    "max_feedrate_xy": (1.0, 2000.0),
    "max_feedrate_z": (0.1, 200.0),
    "max_feedrate_e": (0.1, 500.0),
    "jerk_xy": (0.0, 100.0),
    "jerk_e": (0.0, 100.0),
    "baud_rate": (1200.0, 1000000.0),
    # resin
    "exposure_time": (0.1, 300.0),
    "initial_exposure_time": (0.1, 600.0),
    "min_wall_mm": (0.05, 20.0),
    "min_feature_mm": (0.05, 20.0),
    "layer_height": (0.01, 0.3),
    "display_width": (10.0, 1000.0),
    "display_height": (10.0, 1000.0),
    "display_pixels_x": (100.0, 20000.0),
    "display_pixels_y": (100.0, 20000.0),
}


def _build(cls: type, where: str, raw: object, prefix: str = "") -> dict[str, Any]:
    """Check ``raw`` against the fields of dataclass ``cls``; return validated keyword arguments."""
    if not isinstance(raw, dict):
        raise _fail(where, f"'{prefix or 'profile'}' must be a JSON object; fix the file")
    known = {f.name: f for f in fields(cls) if f.name != "origin"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise _fail(where, f"unknown field '{name}'; remove it or check its spelling")
        sub = _SUBSECTIONS.get(key)
        if sub is not None:
            values[key] = sub(**_build(sub, where, value, f"{key}."))
        elif key in _RANGES:
            low, high = _RANGES[key]
            number = _number(where, name, value, low, high)
            values[key] = int(number) if key in _INTEGERS else number
        elif key == "relative_e":
            if not isinstance(value, bool):
                raise _fail(where, f"'{name}' must be true or false; fix the value")
            values[key] = value
        elif key == "build_volume":
            if not isinstance(value, list) or len(value) != 3:
                raise _fail(where, "'build_volume' must be [x, y, z] in mm; fix the value")
            values[key] = tuple(
                _number(where, f"build_volume[{i}]", v, 10.0, 2000.0) for i, v in enumerate(value)
            )
        else:
            values[key] = _text(where, name, value)
    return values


_INTEGERS = ("extruders", "baud_rate", "fan_off_layers", "display_pixels_x", "display_pixels_y")
_SUBSECTIONS: dict[str, type] = {
    "resin": Resin,
    "speeds": Speeds,
    "retraction": Retraction,
    "motion": Motion,
    "connection": Connection,
}


def _check_id(where: str, value: str) -> None:
    if not _ID_RE.match(value):
        msg = "'id' must be 1-64 lower-case letters, digits, '.', '_' or '-'; rename it"
        raise _fail(where, msg)


def _check_gcode(where: str, key: str, text: str) -> None:
    for name in _PLACEHOLDER_RE.findall(text):
        if name not in PLACEHOLDERS:
            known = ", ".join(f"[{p}]" for p in PLACEHOLDERS)
            raise _fail(where, f"'{key}' uses unknown placeholder [{name}]; use one of {known}")


def printer_from_dict(
    raw: object, where: str = "printer profile", origin: str = "user"
) -> PrinterProfile:
    """Validate a printer profile read from JSON; raise :class:`PrintingError` naming the field."""
    if isinstance(raw, dict):
        raw = dict(raw)
        fmt = raw.pop("format", PRINTER_FORMAT)
        if fmt != PRINTER_FORMAT:
            raise _fail(
                where, f"format '{fmt}' is not {PRINTER_FORMAT}; is this a printer profile?"
            )
    values = _build(PrinterProfile, where, raw)
    for key in ("id", "name"):
        if not values.get(key):
            raise _fail(where, f"'{key}' is missing; add it")
    _check_id(where, values["id"])
    if values.get("serial") and not SERIAL_RE.match(values["serial"]):
        msg = "'serial' must be 1-64 letters, digits, '.', '_', ':', '/' or '-'; fix it"
        raise _fail(where, msg)
    if values.get("firmware", "marlin") not in FIRMWARES:
        raise _fail(where, f"firmware '{values['firmware']}' is not supported; use 'marlin'")
    for key in ("start_gcode", "end_gcode"):
        _check_gcode(where, key, values.get(key, ""))
    if values.get("technology", "fdm") not in TECHNOLOGIES:
        raise _fail(where, f"technology '{values['technology']}' must be one of fdm, sla, msla")
    profile = PrinterProfile(**values, origin=origin)
    conn = profile.connection
    if conn.kind not in CONNECTION_KINDS:
        raise _fail(
            where, f"connection.kind '{conn.kind}' must be one of {', '.join(CONNECTION_KINDS)}"
        )
    if conn.kind != "usb" and not re.match(r"^https?://[^\s/]+", conn.url):
        raise _fail(where, f"connection.url must be an http(s) URL for {conn.kind}; fix it")
    if "apikey" in conn.url.lower() or "api_key" in conn.url.lower():
        raise _fail(
            where, "connection.url must not carry an API key; store the key in the keystore"
        )
    if profile.speeds.external_perimeter > profile.motion.max_feedrate_xy:
        raise _fail(where, "speeds exceed motion.max_feedrate_xy; lower them")
    return profile


def material_from_dict(
    raw: object, where: str = "material profile", origin: str = "user"
) -> MaterialProfile:
    """Validate a material profile read from JSON; raise :class:`PrintingError` naming the field."""
    if isinstance(raw, dict):
        raw = dict(raw)
        fmt = raw.pop("format", MATERIAL_FORMAT)
        if fmt != MATERIAL_FORMAT:
            raise _fail(
                where, f"format '{fmt}' is not {MATERIAL_FORMAT}; is this a material profile?"
            )
    values = _build(MaterialProfile, where, raw)
    for key in ("id", "name"):
        if not values.get(key):
            raise _fail(where, f"'{key}' is missing; add it")
    _check_id(where, values["id"])
    material = MaterialProfile(**values, origin=origin)
    if material.fan_min > material.fan_max:
        raise _fail(where, "'fan_min' is above 'fan_max'; swap them")
    return material


def check_pair(printer: PrinterProfile, material: MaterialProfile) -> None:
    """Refuse a resin on a filament printer (and back), or temperatures the printer cannot reach."""
    if printer.is_resin != material.is_resin:
        kind = "a resin" if printer.is_resin else "a filament"
        msg = f"'{printer.name}' prints {kind}, not '{material.name}'; choose {kind} material"
        raise PrintingError(msg)
    if printer.is_resin:
        return
    hot = max(material.temperature, material.first_layer_temperature)
    bed = max(material.bed_temperature, material.first_layer_bed_temperature)
    if hot > printer.max_nozzle_temperature:
        msg = (
            f"material '{material.name}' needs {hot:g} °C but '{printer.name}' reaches "
            f"{printer.max_nozzle_temperature:g} °C; choose another material"
        )
        raise PrintingError(msg)
    if bed > printer.max_bed_temperature:
        msg = (
            f"material '{material.name}' needs a {bed:g} °C bed but '{printer.name}' reaches "
            f"{printer.max_bed_temperature:g} °C; choose another material"
        )
        raise PrintingError(msg)


# ---------------------------------------------------------------------------------------------
# loading and saving


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        msg = f"profile {path.name} is unreadable ({exc.__class__.__name__}); fix or delete it"
        raise PrintingError(msg) from None


def _folders(paths: Paths | None, sub: str = "") -> list[tuple[Path, str]]:
    paths = paths or resolve_paths()
    shipped = SHIPPED_DIR / sub if sub else SHIPPED_DIR
    user = paths.printers / sub if sub else paths.printers
    return [(shipped, "shipped"), (user, "user")]


def load_printers(paths: Paths | None = None) -> dict[str, PrinterProfile]:
    """Every printer profile by id: shipped ones first, user ones override the same id."""
    found: dict[str, PrinterProfile] = {}
    for folder, origin in _folders(paths):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            profile = printer_from_dict(_read_json(path), f"printer profile {path.name}", origin)
            found[profile.id] = profile
    return found


def load_materials(paths: Paths | None = None) -> dict[str, MaterialProfile]:
    """Every material profile by id: shipped ones first, user ones override the same id."""
    found: dict[str, MaterialProfile] = {}
    for folder, origin in _folders(paths, "materials"):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            material = material_from_dict(_read_json(path), f"material profile {path.name}", origin)
            found[material.id] = material
    return found


def _lookup(found: dict[str, Any], key: str, what: str, command: str) -> Any:
    if key in found:
        return found[key]
    by_name = [p for p in found.values() if p.name.lower() == key.lower()]
    if len(by_name) == 1:
        return by_name[0]
    msg = f"no {what} named '{key}'; run `medprint {command}` to list them"
    raise PrintingError(msg)


def get_printer(key: str, paths: Paths | None = None) -> PrinterProfile:
    """A printer profile by id or (case-insensitive) display name."""
    return _lookup(load_printers(paths), key, "printer profile", "printers")


def get_material(key: str, paths: Paths | None = None) -> MaterialProfile:
    """A material profile by id or (case-insensitive) display name."""
    return _lookup(load_materials(paths), key, "material profile", "printers --materials")


def copy_profile(profile: PrinterProfile, new_id: str, new_name: str) -> PrinterProfile:
    """An editable user copy of ``profile`` under a new id and name (not yet saved)."""
    copy = replace(profile, id=new_id, name=new_name, origin="user")
    return printer_from_dict(copy.to_dict(), f"printer profile {new_id}.json")


def edit_profile(profile: PrinterProfile, **changes: Any) -> PrinterProfile:
    """A validated copy of ``profile`` with top-level fields or sub-sections replaced.

    Sub-sections take a dict of the fields to change: ``edit_profile(p, speeds={"infill": 60})``.
    """
    data = profile.to_dict()
    for key, value in changes.items():
        if key in _SUBSECTIONS and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = list(value) if isinstance(value, tuple) else value
    return printer_from_dict(data, f"printer profile {profile.id}.json", origin="user")


def save_printer(profile: PrinterProfile, paths: Paths | None = None) -> Path:
    """Write ``profile`` into the user's printer folder atomically; return the file written."""
    paths = paths or resolve_paths()
    checked = printer_from_dict(profile.to_dict(), f"printer profile {profile.id}.json")
    target = paths.printers / f"{checked.id}.json"
    text = json.dumps(checked.to_dict(), indent=2) + "\n"
    atomic_write_bytes(target, text.encode("utf-8"))
    return target


def save_material(material: MaterialProfile, paths: Paths | None = None) -> Path:
    """Write ``material`` into the user's material folder atomically; return the file written."""
    paths = paths or resolve_paths()
    checked = material_from_dict(material.to_dict(), f"material profile {material.id}.json")
    target = paths.printers / "materials" / f"{checked.id}.json"
    text = json.dumps(checked.to_dict(), indent=2) + "\n"
    atomic_write_bytes(target, text.encode("utf-8"))
    return target


def delete_user_printer(profile_id: str, paths: Paths | None = None) -> None:
    """Remove a user printer profile (shipped profiles cannot be removed)."""
    paths = paths or resolve_paths()
    target = paths.printers / f"{profile_id}.json"
    if not target.exists():
        msg = f"'{profile_id}' is not a user profile; only your own copies can be deleted"
        raise PrintingError(msg)
    target.unlink()


def api_key_name(profile: PrinterProfile | str) -> str:
    """The keystore entry name holding the OctoPrint/Moonraker API key of ``profile``."""
    profile_id = profile if isinstance(profile, str) else profile.id
    return f"printer-api-key/{profile_id}"


def render_gcode(template: str, material: MaterialProfile) -> str:
    """Replace ``[placeholder]`` names in start/end G-code with the material's values."""
    values = {name: f"{getattr(material, name):g}" for name in PLACEHOLDERS}
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)

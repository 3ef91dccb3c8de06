"""The Marlin serial protocol as pure functions: framing, checksums and reply parsers.

Nothing here touches a port or a thread, so every rule of the protocol is testable on strings.
The line framing is ``N<n> <command>*<xor>``: the XOR of every byte before ``*``. The firmware
accepts line ``n`` only if it follows the last accepted line, and otherwise asks for it again with
``Resend: n`` (then ``ok``). That rule, not the host's bookkeeping, is what guarantees that every
line arrives exactly once and in order; the host's job is to answer every resend request from
its history and to never fall silent.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

# Commands that legitimately take long before their ``ok`` (homing, probing, waiting for
# heaters, waiting for moves to finish, PID tuning).
LONG_COMMANDS: dict[str, float] = {
    "G28": 180.0,
    "G29": 600.0,
    "G33": 600.0,
    "G34": 600.0,
    "M109": 900.0,
    "M190": 1800.0,
    "M191": 1800.0,
    "M303": 1800.0,
    "M400": 600.0,
    "M600": 3600.0,
    "M0": 86400.0,
    "M1": 86400.0,
}
DEFAULT_TIMEOUT = 10.0
EMERGENCY_COMMANDS = ("M112", "M108", "M410")

_CODE_RE = re.compile(r"^\s*(?:N\d+\s+)?([GMTD])(\d+)", re.IGNORECASE)
_RESEND_RE = re.compile(r"^(?:resend|rs)\s*:?\s*N?\s*:?\s*(\d+)", re.IGNORECASE)
_TEMP_RE = re.compile(
    r"(?<![A-Za-z@])(T\d*|B|C|P)\s*:\s*(-?\d+(?:\.\d+)?)(?:\s*/\s*(-?\d+(?:\.\d+)?))?"
)
_OK_LINE_RE = re.compile(r"\bN(\d+)")
_FIRMWARE_KEYS = (
    "FIRMWARE_NAME",
    "SOURCE_CODE_URL",
    "PROTOCOL_VERSION",
    "MACHINE_TYPE",
    "EXTRUDER_COUNT",
    "UUID",
)
_FATAL_MARKERS = (
    "kill()",
    "printer halted",
    "mintemp",
    "maxtemp",
    "thermal runaway",
    "heating failed",
    "printer stopped",
    "emergency stop",
)
_LINE_ERROR_MARKERS = ("checksum", "line number", "no line number", "last line")


class PrinterState(enum.Enum):
    """Where a printer connection or a print job is; shown to the user as ``value``."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    IDLE = "idle"
    UPLOADING = "uploading"
    PRINTING = "printing"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FINISHED = "finished"
    ERROR = "error"

    @property
    def active(self) -> bool:
        """True while a job is running or paused (not yet finished, cancelled or failed)."""
        return self in _ACTIVE

    @property
    def done(self) -> bool:
        return self in (PrinterState.FINISHED, PrinterState.CANCELLED, PrinterState.ERROR)


_ACTIVE = {
    PrinterState.UPLOADING,
    PrinterState.PRINTING,
    PrinterState.PAUSING,
    PrinterState.PAUSED,
    PrinterState.RESUMING,
    PrinterState.CANCELLING,
}


@dataclass(frozen=True)
class Temperature:
    """One heater: measured and target temperature in °C (target None when not reported)."""

    actual: float
    target: float | None = None


@dataclass(frozen=True)
class OkReply:
    """An ``ok``: the line number it names (ADVANCED_OK) and any temperatures it carries."""

    line: int | None = None
    temperatures: dict[str, Temperature] = field(default_factory=dict)


@dataclass(frozen=True)
class FirmwareInfo:
    """What ``M115`` said: the name line's fields and the ``Cap:`` capabilities."""

    name: str = "unknown"
    fields: dict[str, str] = field(default_factory=dict)
    capabilities: dict[str, bool] = field(default_factory=dict)

    @property
    def is_marlin(self) -> bool:
        return "marlin" in self.name.lower()

    @property
    def extruder_count(self) -> int:
        try:
            return max(1, int(self.fields.get("EXTRUDER_COUNT", "1")))
        except ValueError:
            return 1

    def has(self, capability: str) -> bool:
        return self.capabilities.get(capability.upper(), False)


# ---------------------------------------------------------------------------------------------
# framing


def checksum(payload: str) -> int:
    """XOR of the bytes of ``payload`` (the part before ``*``), as Marlin computes it."""
    value = 0
    for byte in payload.encode("ascii", errors="replace"):
        value ^= byte
    return value


def format_line(number: int, command: str) -> str:
    """``N<number> <command>*<checksum>``, without the newline."""
    payload = f"N{number} {command}"
    return f"{payload}*{checksum(payload)}"


def split_line(line: str) -> tuple[int | None, str, bool]:
    """Parse a framed line as the firmware does: (line number, command, checksum ok).

    A line without ``*`` has no checksum and counts as valid; a line without ``N`` has no number.
    """
    line = line.strip()
    valid = True
    if "*" in line:
        payload, _, given = line.rpartition("*")
        try:
            valid = int(given) == checksum(payload)
        except ValueError:
            valid = False
        line = payload
    number = None
    if line[:1] in ("N", "n"):
        head, _, rest = line.partition(" ")
        try:
            number = int(head[1:])
        except ValueError:
            return None, line, False
        line = rest
    return number, line.strip(), valid


def clean_command(line: str) -> str:
    """The command in a G-code file line without its ``;`` comment; '' for blank/comment lines."""
    if ";" in line:
        line = line.split(";", 1)[0]
    line = line.strip()
    if "*" in line:  # a '*' would be taken for our checksum marker; no valid command uses one
        line = line.replace("*", "")
    return line


def command_code(command: str) -> str:
    """``G28``, ``M109``, ``T0`` ... (upper case, no leading zeros), or '' for anything else."""
    match = _CODE_RE.match(command)
    if not match:
        return ""
    return f"{match.group(1).upper()}{int(match.group(2))}"


def timeout_for(command: str, default: float = DEFAULT_TIMEOUT) -> float:
    """Seconds of complete silence after which a command counts as lost.

    Long commands (homing, probing, heat-and-wait, M400) get long timeouts; ``G4`` waits for as
    long as it asks plus the default.
    """
    code = command_code(command)
    if code in LONG_COMMANDS:
        return max(LONG_COMMANDS[code], default)
    if code == "G4":
        seconds = param(command, "S") or 0.0
        millis = param(command, "P") or 0.0
        return default + seconds + millis / 1000.0
    return default


def is_emergency(command: str) -> bool:
    """M112 (kill), M108 (break a heating wait), M410 (quick stop) jump the send queue."""
    return command_code(command) in EMERGENCY_COMMANDS


def param(command: str, letter: str) -> float | None:
    """The numeric value of parameter ``letter`` in ``command`` (``G1 X10 F3000``), if present."""
    code = command_code(command)
    body = command.strip()[len(code) :] if code else command
    match = re.search(rf"(?<![A-Za-z]){letter}\s*(-?\d+(?:\.\d*)?|-?\.\d+)", body, re.I)
    return float(match.group(1)) if match else None


# ---------------------------------------------------------------------------------------------
# reply parsers


def parse_ok(line: str) -> OkReply | None:
    """An ``ok`` reply (``ok``, ``ok N12 P15 B3``, ``ok T:210 /210 B:60 /60``) or None."""
    text = line.strip()
    if not (text == "ok" or text.startswith(("ok ", "ok:", "ok\t"))):
        return None
    rest = text[2:]
    number = None
    match = _OK_LINE_RE.search(rest)
    if match:
        number = int(match.group(1))
    return OkReply(number, parse_temperatures(rest))


def parse_resend(line: str) -> int | None:
    """The line number of a resend request (``Resend: 12``, ``Resend:12``, ``rs N12``) or None."""
    match = _RESEND_RE.match(line.strip())
    return int(match.group(1)) if match else None


def parse_temperatures(line: str) -> dict[str, Temperature]:
    """Heater readings in a report, keyed ``T0``, ``T1``, ``B`` (bed), ``C`` (chamber).

    Marlin reports ``T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0``; with several extruders ``T:``
    is the active tool followed by ``T0:``, ``T1:``... A lone ``T:`` is stored as ``T0``.
    Power fields (``@:``, ``B@:``) and the wait counter (``W:``) are ignored.
    """
    found: dict[str, Temperature] = {}
    for match in _TEMP_RE.finditer(line):
        name, actual, target = match.group(1).upper(), match.group(2), match.group(3)
        if name == "P":  # probe temperature (Prusa/Marlin), not a heater
            continue
        value = Temperature(float(actual), float(target) if target is not None else None)
        found[name] = value
    if "T" in found:
        active = found.pop("T")
        found.setdefault("T0", active)
    return found


def parse_firmware(line: str) -> dict[str, str]:
    """The fields of an M115 name line (``FIRMWARE_NAME:Marlin 2.1.2 ... EXTRUDER_COUNT:1``).

    Values may contain spaces; a value runs until the next known ``KEY:``.
    """
    text = line.strip()
    if "FIRMWARE_NAME:" not in text:
        return {}
    positions = []
    for key in _FIRMWARE_KEYS:
        idx = text.find(key + ":")
        if idx >= 0:
            positions.append((idx, key))
    positions.sort()
    fields_: dict[str, str] = {}
    for i, (idx, key) in enumerate(positions):
        end = positions[i + 1][0] if i + 1 < len(positions) else len(text)
        fields_[key] = text[idx + len(key) + 1 : end].strip()
    return fields_


def parse_capability(line: str) -> tuple[str, bool] | None:
    """A ``Cap:NAME:1`` line as (NAME, enabled), else None."""
    text = line.strip()
    if not text.startswith("Cap:"):
        return None
    parts = text[4:].split(":")
    if len(parts) < 2:
        return None
    return parts[0].strip().upper(), parts[1].strip() == "1"


def firmware_info(lines: list[str]) -> FirmwareInfo:
    """Combine the replies to M115 into one :class:`FirmwareInfo`."""
    fields_: dict[str, str] = {}
    caps: dict[str, bool] = {}
    for line in lines:
        fields_.update(parse_firmware(line))
        cap = parse_capability(line)
        if cap is not None:
            caps[cap[0]] = cap[1]
    return FirmwareInfo(fields_.get("FIRMWARE_NAME", "unknown"), fields_, caps)


def is_busy(line: str) -> bool:
    """``echo:busy: processing`` / ``busy:`` / ``wait``: the firmware is alive and working."""
    text = line.strip().lower()
    return text == "wait" or text.startswith(("busy:", "echo:busy")) or "busy:" in text[:12]


def is_start(line: str) -> bool:
    """The banner Marlin prints after a reset."""
    return line.strip() == "start"


def is_error(line: str) -> bool:
    return line.strip().startswith(("Error:", "!!", "error:"))


def is_line_error(line: str) -> bool:
    """An error about framing (checksum, line number); a ``Resend`` follows and fixes it."""
    text = line.strip().lower()
    return is_error(line) and any(m in text for m in _LINE_ERROR_MARKERS)


def is_fatal_error(line: str) -> bool:
    """An error after which the firmware has stopped (kill, thermal protection, halted)."""
    if not is_error(line):
        return False
    text = line.lower()
    return any(m in text for m in _FATAL_MARKERS)


def looks_like_text(data: bytes) -> bool:
    """Whether received bytes look like firmware text (vs noise from a wrong baud rate)."""
    if not data:
        return True
    printable = sum(1 for b in data if 32 <= b < 127 or b in (9, 10, 13))
    return printable / len(data) >= 0.9


# ---------------------------------------------------------------------------------------------
# G-code state, for pause/resume and resuming after a disconnect


@dataclass
class GcodeState:
    """The machine state a stream of executed G-code leaves behind.

    Follows positions (absolute or relative), extrusion mode, feed rate, heater targets and the
    fan, so a pause can park and come back, and a resume after a disconnect can restore them.
    """

    x: float | None = None
    y: float | None = None
    z: float | None = None
    e: float = 0.0
    feedrate: float | None = None
    absolute: bool = True
    absolute_e: bool = True
    hotend: dict[int, float] = field(default_factory=dict)
    bed: float = 0.0
    fan: float = 0.0
    tool: int = 0

    @property
    def e_absolute(self) -> bool:
        """Extrusion is absolute unless G91 or M83 made it relative."""
        return self.absolute and self.absolute_e

    def apply(self, command: str) -> None:
        code = command_code(command)
        handler = _STATE_HANDLERS.get(code)
        if handler is not None:
            handler(self, command)

    def _move(self, command: str) -> None:
        for axis in ("x", "y", "z"):
            value = param(command, axis.upper())
            if value is None:
                continue
            current = getattr(self, axis)
            setattr(self, axis, value if self.absolute else (current or 0.0) + value)
        e = param(command, "E")
        if e is not None:
            self.e = e if self.e_absolute else self.e + e
        f = param(command, "F")
        if f is not None:
            self.feedrate = f

    def _set_position(self, command: str) -> None:
        for axis in ("x", "y", "z", "e"):
            value = param(command, axis.upper())
            if value is not None:
                setattr(self, axis, value)

    def _home(self, command: str) -> None:
        axes = [a for a in "XYZ" if re.search(rf"(?<![A-Za-z]){a}", command[3:], re.I)]
        for axis in axes or ["X", "Y", "Z"]:
            setattr(self, axis.lower(), 0.0)

    def _hotend(self, command: str) -> None:
        value = param(command, "S")
        tool = param(command, "T")
        if value is not None:
            self.hotend[int(tool) if tool is not None else self.tool] = value

    def _bed(self, command: str) -> None:
        value = param(command, "S")
        if value is not None:
            self.bed = value

    def _fan(self, command: str) -> None:
        value = param(command, "S")
        self.fan = 255.0 if value is None else value

    def _tool(self, command: str) -> None:
        self.tool = int(command_code(command)[1:])


def _set(attr: str, value: object):
    def handler(state: GcodeState, command: str) -> None:
        setattr(state, attr, value)

    return handler


_STATE_HANDLERS = {
    "G0": GcodeState._move,
    "G1": GcodeState._move,
    "G2": GcodeState._move,
    "G3": GcodeState._move,
    "G92": GcodeState._set_position,
    "G28": GcodeState._home,
    "G90": _set("absolute", True),
    "G91": _set("absolute", False),
    "M82": _set("absolute_e", True),
    "M83": _set("absolute_e", False),
    "M104": GcodeState._hotend,
    "M109": GcodeState._hotend,
    "M140": GcodeState._bed,
    "M190": GcodeState._bed,
    "M106": GcodeState._fan,
    "M107": _set("fan", 0.0),
    **{f"T{i}": GcodeState._tool for i in range(8)},
}

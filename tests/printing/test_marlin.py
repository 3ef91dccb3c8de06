"""The Marlin protocol's pure functions: framing, reply parsers, timeouts, G-code state."""

from __future__ import annotations

import pytest

from app.printing import marlin
from app.printing.marlin import GcodeState, Temperature


def test_checksum_and_framing_match_marlin():
    # the classic hello every host sends; Marlin's xor over "N0 M110 N0" is 125
    assert marlin.format_line(0, "M110 N0") == "N0 M110 N0*125"
    framed = marlin.format_line(4711, "G1 X10.5 Y-3 E0.02 F1800")
    number, command, valid = marlin.split_line(framed)
    assert (number, command, valid) == (4711, "G1 X10.5 Y-3 E0.02 F1800", True)
    damaged = framed.replace("X10.5", "X10.7")
    assert marlin.split_line(damaged)[2] is False
    assert marlin.split_line("G28")[0:2] == (None, "G28")


def test_clean_command_strips_comments_and_star():
    assert marlin.clean_command("G1 X1 Y2 ; move\n") == "G1 X1 Y2"
    assert marlin.clean_command("; only a comment") == ""
    assert marlin.clean_command("   \n") == ""
    assert marlin.clean_command("M117 a*b") == "M117 ab"


@pytest.mark.parametrize(
    ("line", "number", "temps"),
    [
        ("ok", None, {}),
        ("ok N12 P15 B3", 12, {}),
        (
            "ok T:210.0 /210.0 B:60.0 /60.0 @:127 B@:0",
            None,
            {"T0": Temperature(210.0, 210.0), "B": Temperature(60.0, 60.0)},
        ),
    ],
)
def test_parse_ok(line, number, temps):
    reply = marlin.parse_ok(line)
    assert reply is not None
    assert reply.line == number
    assert reply.temperatures == temps


def test_parse_ok_rejects_other_lines():
    for line in ("okay", "echo:ok", "Resend: 3", "T:20 /0", ""):
        assert marlin.parse_ok(line) is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Resend: 12", 12),
        ("Resend:12", 12),
        ("rs N12", 12),
        ("rs 7", 7),
        ("resend: N3", 3),
        ("ok", None),
        ("Error:checksum mismatch, Last Line: 11", None),
    ],
)
def test_parse_resend(line, expected):
    assert marlin.parse_resend(line) == expected


def test_parse_temperatures_single_and_multi_extruder():
    one = marlin.parse_temperatures(" T:205.31 /210.00 B:59.80 /60.00 @:127 B@:64 W:?")
    assert one == {"T0": Temperature(205.31, 210.0), "B": Temperature(59.8, 60.0)}
    multi = marlin.parse_temperatures(
        "T:200.0 /200.0 B:60.0 /60.0 T0:200.0 /200.0 T1:25.0 /0.0 C:35.2 /40.0 @:0 B@:0 @0:0 @1:0"
    )
    assert multi["T0"] == Temperature(200.0, 200.0)
    assert multi["T1"] == Temperature(25.0, 0.0)
    assert multi["C"] == Temperature(35.2, 40.0)
    assert marlin.parse_temperatures("T:21.5") == {"T0": Temperature(21.5, None)}
    assert marlin.parse_temperatures("echo:busy: processing") == {}


def test_parse_firmware_and_capabilities():
    lines = [
        "FIRMWARE_NAME:Marlin 2.1.2.1 (Github) SOURCE_CODE_URL:github.com/MarlinFirmware/Marlin "
        "PROTOCOL_VERSION:1.0 MACHINE_TYPE:Ender-3 V2 EXTRUDER_COUNT:1 UUID:cede2a2f-41a2",
        "Cap:SERIAL_XON_XOFF:0",
        "Cap:AUTOREPORT_TEMP:1",
        "Cap:EMERGENCY_PARSER:1",
        "ok",
    ]
    fields = marlin.parse_firmware(lines[0])
    assert fields["FIRMWARE_NAME"] == "Marlin 2.1.2.1 (Github)"
    assert fields["MACHINE_TYPE"] == "Ender-3 V2"
    info = marlin.firmware_info(lines)
    assert info.is_marlin and info.extruder_count == 1
    assert info.has("AUTOREPORT_TEMP") and info.has("emergency_parser")
    assert not info.has("SERIAL_XON_XOFF") and not info.has("UNKNOWN_CAP")
    assert marlin.parse_capability("Cap:BROKEN") is None


def test_line_classifiers():
    assert marlin.is_busy("echo:busy: processing") and marlin.is_busy("busy: paused for user")
    assert marlin.is_busy("wait") and not marlin.is_busy("ok")
    assert marlin.is_start("start") and not marlin.is_start("started")
    assert marlin.is_line_error("Error:checksum mismatch, Last Line: 5")
    assert marlin.is_line_error("Error:Line Number is not Last Line Number+1, Last Line: 5")
    assert not marlin.is_fatal_error("Error:checksum mismatch, Last Line: 5")
    assert marlin.is_fatal_error("Error:Printer halted. kill() called!")
    assert marlin.is_fatal_error("Error:Thermal Runaway, system stopped! Heater_ID: 0")
    assert marlin.looks_like_text(b"ok T:20\n") and not marlin.looks_like_text(
        bytes(range(128, 160))
    )


def test_timeouts_are_long_for_slow_commands():
    assert marlin.timeout_for("G1 X1") == marlin.DEFAULT_TIMEOUT
    assert marlin.timeout_for("G28") >= 120
    assert marlin.timeout_for("G29 P1") >= 300
    assert marlin.timeout_for("M109 S210") >= 600
    assert marlin.timeout_for("M190 S60") >= 600
    assert marlin.timeout_for("M400") >= 300
    assert marlin.timeout_for("G4 S30", default=5) == 35
    assert marlin.timeout_for("G4 P1500", default=5) == 6.5
    assert marlin.command_code("N12 g001 X1") == "G1"
    assert (
        marlin.is_emergency("M112")
        and marlin.is_emergency("M410")
        and not marlin.is_emergency("M1")
    )


def test_gcode_state_follows_positions_modes_and_heaters():
    state = GcodeState()
    for command in [
        "M140 S60",
        "M104 S215",
        "G28",
        "G90",
        "M83",
        "G1 Z0.2 F600",
        "G1 X10 Y20 E0.5 F1800",
        "G1 X12 E0.3",
        "M106 S200",
        "G91",
        "G1 X1 Y-2",
        "G90",
        "M82",
        "G92 E0",
        "G1 X5 E1.5",
        "M109 S210 T1",
    ]:
        state.apply(command)
    assert (state.x, state.y, state.z) == (5.0, 18.0, 0.2)
    assert state.e == 1.5 and state.e_absolute and state.absolute
    assert state.feedrate == 1800.0 and state.fan == 200.0
    assert state.bed == 60.0 and state.hotend == {0: 215.0, 1: 210.0}
    relative = GcodeState(x=1.0, y=1.0, z=1.0, e=3.0, absolute_e=False)
    relative.apply("G1 E0.5")
    assert relative.e == 3.5

"""Printer and material profiles: shipped files, validation messages, user copies, keystore name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.errors import PrintingError
from app.printing import profiles
from app.printing.profiles import (
    api_key_name,
    check_pair,
    copy_profile,
    edit_profile,
    get_material,
    get_printer,
    load_materials,
    load_printers,
    material_from_dict,
    printer_from_dict,
    render_gcode,
    save_printer,
)
from app.settings import resolve_paths


def test_shipped_profiles_load(data_dir: Path) -> None:
    printers = load_printers()
    assert {"prusa-mk3s", "creality-ender3", "generic-marlin-220"} <= set(printers)
    assert printers["generic-marlin-220"].build_volume == (220.0, 220.0, 250.0)
    assert printers["prusa-mk3s"].relative_e is True
    assert all(p.origin == "shipped" for p in printers.values())
    materials = load_materials()
    assert {"pla", "petg"} <= set(materials)
    assert materials["petg"].density == pytest.approx(1.27)
    for path in profiles.SHIPPED_DIR.rglob("*.json"):
        assert "api" not in path.read_text().lower()  # never a key in a profile file


def test_lookup_by_id_or_name(data_dir: Path) -> None:
    assert get_printer("Prusa i3 MK3S class (250x210x210)").id == "prusa-mk3s"
    assert get_material("GENERIC PETG").id == "petg"
    with pytest.raises(PrintingError, match="medprint printers"):
        get_printer("no-such-printer")


def _generic() -> dict:
    return json.loads((profiles.SHIPPED_DIR / "generic-marlin-220.json").read_text())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nozzle_diameter": 0}, r"'nozzle_diameter' = 0 is outside"),
        ({"nozzle_diameter": "0.4"}, r"'nozzle_diameter' must be a number"),
        ({"colour": "red"}, r"unknown field 'colour'"),
        ({"speeds": {"infill": -5}}, r"'speeds.infill' = -5 is outside"),
        ({"build_volume": [220, 220]}, r"'build_volume' must be \[x, y, z\]"),
        ({"relative_e": "yes"}, r"'relative_e' must be true or false"),
        ({"firmware": "klipper"}, r"firmware 'klipper' is not supported"),
        ({"id": "Bad Name!"}, r"'id' must be"),
        ({"connection": {"kind": "telnet"}}, r"connection.kind 'telnet'"),
        ({"connection": {"kind": "octoprint", "url": "printer.local"}}, r"http\(s\) URL"),
        (
            {"connection": {"kind": "octoprint", "url": "http://p.local/?apikey=123"}},
            r"must not carry an API key",
        ),
        ({"start_gcode": "M104 S[hotend_temp]"}, r"unknown placeholder \[hotend_temp\]"),
    ],
)
def test_invalid_printer_values_get_a_clear_message(change: dict, message: str) -> None:
    raw = {**_generic(), **change}
    with pytest.raises(PrintingError, match=message) as info:
        printer_from_dict(raw, "printer profile test.json")
    assert "\n" not in str(info.value) and str(info.value).startswith("printer profile test.json")


def test_invalid_material_values() -> None:
    base = {"id": "x", "name": "X"}
    with pytest.raises(PrintingError, match="'fan_min' is above 'fan_max'"):
        material_from_dict({**base, "fan_min": 80, "fan_max": 20})
    with pytest.raises(PrintingError, match="'temperature' = 90 is outside"):
        material_from_dict({**base, "temperature": 90})
    with pytest.raises(PrintingError, match="is this a material profile"):
        material_from_dict({**base, "format": "medprint-printer/1"})


def test_copy_edit_save_and_override(data_dir: Path) -> None:
    paths = resolve_paths()
    mine = copy_profile(get_printer("creality-ender3"), "my-ender", "My Ender")
    mine = edit_profile(
        mine,
        speeds={"infill": 70},
        connection={"kind": "octoprint", "url": "http://127.0.0.1:5000"},
    )
    written = save_printer(mine, paths)
    assert written == paths.printers / "my-ender.json"
    assert not list(paths.printers.glob(".*.tmp"))  # atomic write left no temp file
    loaded = get_printer("my-ender")
    assert loaded.origin == "user" and loaded.speeds.infill == 70
    assert loaded.connection.url == "http://127.0.0.1:5000"
    # a user file with a shipped id overrides the shipped profile
    save_printer(edit_profile(get_printer("generic-marlin-220"), nozzle_diameter=0.6), paths)
    assert get_printer("generic-marlin-220").nozzle_diameter == 0.6
    with pytest.raises(PrintingError, match="must be true or false"):
        edit_profile(loaded, relative_e="no")


def test_broken_user_file_names_the_file(data_dir: Path) -> None:
    folder = resolve_paths().printers
    folder.mkdir(parents=True)
    (folder / "broken.json").write_text("{ not json")
    with pytest.raises(PrintingError, match=r"broken\.json is unreadable"):
        load_printers()


def test_api_key_name_and_keystore(data_dir: Path) -> None:
    printer = get_printer("prusa-mk3s")
    assert api_key_name(printer) == "printer-api-key/prusa-mk3s" == api_key_name("prusa-mk3s")
    assert "key" not in json.dumps(printer.to_dict()).lower().replace("keyring", "")


def test_material_limits_and_gcode_placeholders(data_dir: Path) -> None:
    printer = edit_profile(get_printer("generic-marlin-220"), max_nozzle_temperature=220)
    with pytest.raises(PrintingError, match="needs 240 °C"):
        check_pair(printer, get_material("petg"))
    check_pair(printer, get_material("pla"))
    text = render_gcode(
        "M190 S[first_layer_bed_temperature]\nM109 S[temperature]", get_material("pla")
    )
    assert text == "M190 S60\nM109 S210"

"""Printer technology in profiles: FDM or resin (SLA/MSLA) with a layer height and exposure
display, resin materials with density and price, and a resin never paired with a filament
printer."""

from __future__ import annotations

import pytest

from app.errors import PrintingError
from app.printing.profiles import (
    check_pair,
    load_materials,
    load_printers,
    printer_from_dict,
)


def test_shipped_resin_printers_and_resin():
    printers, materials = load_printers(), load_materials()
    sl1s = printers["prusa-sl1s"]
    assert (sl1s.technology, sl1s.is_resin, sl1s.build_volume) == ("msla", True, (127, 80, 150))
    assert (sl1s.resin.layer_height, sl1s.resin.display_pixels_x) == (0.05, 2560)
    assert printers["generic-msla"].resin.display_width == pytest.approx(130.56)
    assert printers["formlabs-form3b"].technology == "sla"
    assert {printers[k].connection.kind for k in ("formlabs-form3b", "formlabs-form4b")} == {
        "formlabs"
    }
    assert sl1s.connection.kind == "prusalink"
    assert printers["prusa-mk3s"].technology == "fdm" and not printers["prusa-mk3s"].is_resin
    resin = materials["resin"]
    assert (resin.is_resin, resin.density, resin.cost_per_kg) == (True, 1.1, 55)
    assert resin.exposure_time == 2.0 and resin.initial_exposure_time == 25.0


def test_resin_and_filament_do_not_mix():
    printers, materials = load_printers(), load_materials()
    check_pair(printers["prusa-sl1s"], materials["resin"])
    with pytest.raises(PrintingError, match="prints a filament"):
        check_pair(printers["prusa-mk3s"], materials["resin"])
    with pytest.raises(PrintingError, match="prints a resin"):
        check_pair(printers["prusa-sl1s"], materials["pla"])


def test_bad_technology_and_layer_height_are_refused():
    with pytest.raises(PrintingError, match="technology 'dlp'"):
        printer_from_dict({"id": "x", "name": "X", "technology": "dlp"})
    with pytest.raises(PrintingError, match=r"resin\.layer_height"):
        printer_from_dict(
            {"id": "x", "name": "X", "technology": "sla", "resin": {"layer_height": 1}}
        )
    made = printer_from_dict({"id": "x", "name": "X", "technology": "sla"})
    assert printer_from_dict(made.to_dict()) == made

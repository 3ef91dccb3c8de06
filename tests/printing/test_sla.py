"""PrusaSlicer's SLA engine: the .sl1 archive has one layer per layer thickness of the part's
height (plus supports and pad), its estimate matches the mesh volume, and it is rebuilt with
neutral names, whitelisted config keys and bare PNG layers."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import trimesh
from PIL import Image

from app.errors import PrintingError
from app.printing.profiles import get_material, get_printer
from app.printing.slicer import Part, prusaslicer, slice_parts
from app.printing.slicer.sla import SlaSettings, bare_png, config_ini, slice_sla
from app.tools.mesh.drain import resin_check
from app.tools.mesh.operations import apply_edit

pytestmark = pytest.mark.skipif(
    prusaslicer.find_executable() is None, reason="prusa-slicer not installed"
)


def box(height: float = 10.0):
    b = trimesh.creation.box((20.0, 16.0, height))
    return b.vertices, b.faces


def test_layer_count_volume_and_time_without_supports():
    archive = slice_sla(
        [box(10.0)], get_printer("prusa-sl1s"), get_material("resin"),
        SlaSettings(supports=False, pad=False),
    )  # fmt: skip
    assert archive.layers == 200  # 10 mm / 0.05 mm
    assert archive.layer_height == 0.05
    assert archive.resin_ml == pytest.approx(20 * 16 * 10 / 1000, rel=0.02)
    assert 10 * 60 < archive.print_time_s < 3 * 3600
    png = archive.layer_png(100)
    assert png.startswith(b"\x89PNG") and bare_png(png) == png
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    assert image.shape == (1620, 2560)  # the SL1S display, rows x columns
    pixel_mm2 = (127.008 / 2560) * (79.38 / 1620)
    assert (image > 127).sum() * pixel_mm2 == pytest.approx(20 * 16, rel=0.03)  # the section
    names = zipfile.ZipFile(io.BytesIO(archive.data)).namelist()
    assert names[:3] == ["config.ini", "prusaslicer.ini", "part00000.png"] and len(names) == 202


def test_supports_and_pad_lift_the_part():
    settings = SlaSettings(supports=True, pad=True, support_elevation=4.0)
    archive = slice_sla([box(6.0)], get_printer("generic-msla"), get_material("resin"), settings)
    assert archive.layers == round((4.0 + 6.0 + 2.0) / 0.05)  # elevation + part + pad wall
    assert archive.resin_ml > 20 * 16 * 6 / 1000


def test_config_and_refusals():
    ini = config_ini(get_printer("prusa-sl1s"), get_material("resin"), SlaSettings())
    assert "printer_technology = SLA\n" in ini and "layer_height = 0.05\n" in ini
    assert "supports_enable = 1\n" in ini and "material_density = 1.1\n" in ini
    with pytest.raises(PrintingError, match="not a resin printer"):
        slice_sla([box()], get_printer("prusa-mk3s"), get_material("resin"))
    with pytest.raises(PrintingError, match="sliced by Formlabs PreForm"):
        slice_sla([box()], get_printer("formlabs-form4b"), get_material("resin"))
    with pytest.raises(PrintingError, match="not a PNG"):
        bare_png(b"GIF89a")


def test_resin_of_a_hollowed_drained_part_matches_its_mesh_volume():
    solid = trimesh.creation.box((24.0, 20.0, 16.0))
    made, _ = apply_edit(solid, "hollow", {"wall_mm": 2.0, "hole_mm": 3.0})
    check = resin_check(made)
    assert check.passed
    archive = slice_sla(
        [(made.vertices, made.faces)], get_printer("prusa-sl1s"), get_material("resin"),
        SlaSettings(supports=False, pad=False),
    )  # fmt: skip
    assert archive.resin_ml == pytest.approx(check.resin_ml, rel=0.02)
    assert archive.layers == 320  # 16 mm at 0.05 mm


def test_the_fdm_slicers_refuse_a_resin_printer():
    part = Part.from_trimesh("C-7K3M-Q9 box", trimesh.creation.box((10.0, 10.0, 5.0)))
    with pytest.raises(PrintingError, match="is a resin printer"):
        slice_parts([part], get_printer("prusa-sl1s"), get_material("resin"))

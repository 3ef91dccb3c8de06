"""The built-in slicer on a cube, a sphere, real bone and a T-shaped overhang piece."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import shapely
import trimesh

from app.cli import main
from app.errors import Cancelled, PrintingError
from app.printing.gcode import MoveType, parse_gcode
from app.printing.profiles import get_printer
from app.printing.slicer import Part, SliceSettings, slice_parts
from app.printing.slicer.layers import layer_heights, slice_mesh
from app.printing.slicer.regions import bead_area, spacing_of
from app.progress import CancelToken, Progress


def _extrusion_bounds_ok(result, volume) -> None:
    m = result.analysis.moves
    lo = np.minimum(m.start.min(axis=0), m.end.min(axis=0))
    hi = np.maximum(m.start.max(axis=0), m.end.max(axis=0))
    assert (lo >= -1e-3).all(), lo
    assert (hi <= np.asarray(volume) + 1e-3).all(), hi


def test_cube_layers_perimeter_volume_and_bounds(cube_part, generic_printer, pla) -> None:
    settings = SliceSettings()
    result = slice_parts([cube_part], generic_printer, pla, settings)
    analysis = result.analysis
    assert analysis.layer_count == 100
    assert np.allclose(analysis.layer_z[[0, -1]], [0.2, 20.0], atol=1e-4)
    assert np.allclose(result.placements[0], [110.0, 110.0, 10.0])  # mesh -> bed coordinates
    _extrusion_bounds_ok(result, generic_printer.build_volume)

    # the outer wall of every layer is within half a line width of the cube's cross-section
    width = settings.width(generic_printer.nozzle_diameter)
    section = shapely.box(100.0, 100.0, 120.0, 120.0).boundary  # centred on the 220 mm bed
    for i in range(analysis.layer_count):
        segs = analysis.layer_segments_by_type(i)[MoveType.EXTERNAL_PERIMETER]
        pts = segs.reshape(-1, 3)[:, :2].astype(float)
        dist = shapely.distance(shapely.points(pts), section)
        assert dist.max() <= width / 2 + 1e-3, (i, dist.max())
        assert np.ptp(pts[:, 0]) == pytest.approx(20.0 - width, abs=0.01)

    # extruded volume within 10% of walls + solid shells + sparse infill fraction
    h = settings.layer_height
    s = float(spacing_of(width, h))
    inner = 20.0 - 2 * (width / 2 + (settings.perimeters - 1) * s + s / 2)
    walls = 400.0 - inner**2
    solid_layers = settings.top_layers + settings.bottom_layers
    sparse_layers = 100 - solid_layers
    expected = h * (100 * walls + solid_layers * inner**2)
    expected += h * sparse_layers * inner**2 * settings.infill_density / 100
    assert analysis.extruded_volume_mm3() == pytest.approx(expected, rel=0.10)


def test_gcode_text_matches_the_analysis_and_e_mode(cube_part, generic_printer, pla) -> None:
    result = slice_parts([cube_part], generic_printer, pla, SliceSettings(infill_density=20))
    text = result.gcode
    assert "M82" in text and "M83" not in text  # absolute E, as the profile says
    reparsed = parse_gcode(text)
    ours, theirs = result.summary, reparsed.summary()
    assert reparsed.layer_count == result.analysis.layer_count
    assert theirs.filament_mm == pytest.approx(ours.filament_mm, rel=1e-4)
    assert theirs.time_s == pytest.approx(ours.time_s, rel=0.02)
    # E per mm follows line width x layer height x length / filament area
    m = result.analysis.moves
    sel = m.kind == MoveType.INFILL
    length = np.linalg.norm(m.end[sel] - m.start[sel], axis=1)
    area = math.pi * (generic_printer.filament_diameter / 2) ** 2
    per_mm = bead_area(SliceSettings().width(0.4), 0.2) / area
    assert np.allclose(m.e[sel] / length, per_mm, rtol=1e-3)


def test_relative_e_profile_writes_m83(cube_part, pla, data_dir) -> None:
    mk3 = get_printer("prusa-mk3s")
    result = slice_parts([cube_part], mk3, pla, SliceSettings(infill_density=10))
    assert "\nM83" in result.gcode and "\nM82" not in result.gcode
    reparsed = parse_gcode(result.gcode).summary()
    purge = reparsed.extruded_by_type_mm["Custom"]  # the profile's intro line
    assert purge == pytest.approx(12.5, abs=0.01)
    assert reparsed.filament_mm - purge == pytest.approx(result.summary.filament_mm, rel=1e-4)
    _extrusion_bounds_ok(result, mk3.build_volume)


def test_sphere_slices_inside_volume(sphere_part, generic_printer, pla) -> None:
    result = slice_parts([sphere_part], generic_printer, pla, SliceSettings())
    assert result.analysis.layer_count == 120
    _extrusion_bounds_ok(result, generic_printer.build_volume)
    summary = result.summary
    assert summary.filament_g == pytest.approx(summary.filament_cm3 * pla.density)
    assert 0 < summary.time_s < 4 * 3600


def test_real_vertebra_slices(vertebra_part, generic_printer, pla) -> None:
    result = slice_parts([vertebra_part], generic_printer, pla, SliceSettings(supports=True))
    analysis = result.analysis
    tops, _ = layer_heights(float(vertebra_part.size[2]), 0.2, 0.2)
    assert analysis.layer_count == len(tops)
    _extrusion_bounds_ok(result, generic_printer.build_volume)
    kinds = set(np.unique(analysis.moves.kind).tolist())
    assert {MoveType.EXTERNAL_PERIMETER, MoveType.INFILL, MoveType.SOLID_INFILL} <= kinds


def test_mesh_sections_match_trimesh(sphere_part) -> None:
    v = sphere_part.vertices - sphere_part.vertices.min(axis=0)
    tops, heights = layer_heights(float(v[:, 2].max()), 0.2, 0.2)
    z = tops - heights / 2
    regions = slice_mesh(v, sphere_part.faces, z)
    mesh = trimesh.Trimesh(v, sphere_part.faces)
    for i in (0, 30, 60, 119):
        sec = mesh.section(plane_origin=(0, 0, z[i]), plane_normal=(0, 0, 1))
        area = sum(shapely.Polygon(p).area for p in sec.discrete)
        assert regions[i].area == pytest.approx(area, rel=1e-6)


def test_an_invalid_outline_is_repaired_where_geos_refuses_it(caplog) -> None:
    # the canary's slice of a labelled skull once ended in GEOS's TopologyException here
    from app.printing.slicer.regions import _meet, _minus

    bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])  # crosses itself at (1, 1)
    square = shapely.box(0.5, 0.5, 1.5, 1.5)
    with pytest.raises(shapely.errors.GEOSException, match="TopologyException"):
        shapely.difference(square, bowtie)
    fine = shapely.box(0, 0, 1, 1)
    a = np.array([square, fine], dtype=object)
    b = np.array([bowtie, shapely.box(0.5, 0, 2, 1)], dtype=object)
    left, met = _minus(a, b), _meet(a, b)
    repaired = shapely.make_valid(bowtie)
    assert left[0].equals(shapely.difference(square, repaired)) and left[0].area == 0.5
    assert met[0].equals(shapely.intersection(square, repaired)) and met[0].area == 0.5
    assert left[1].equals(shapely.box(0, 0, 0.5, 1)) and met[1].equals(shapely.box(0.5, 0, 1, 1))
    refusals = [r.getMessage() for r in caplog.records if "GEOS refused" in r.getMessage()]
    assert len(refusals) == 2 and all("Self-intersection[1 1]" in m for m in refusals)


def test_t_shape_supports_arms_not_stem(t_shape_part, generic_printer, pla) -> None:
    settings = SliceSettings(supports=True)
    result = slice_parts([t_shape_part], generic_printer, pla, settings)
    m = result.analysis.moves
    support = (m.kind == MoveType.SUPPORT) | (m.kind == MoveType.SUPPORT_INTERFACE)
    pts = np.concatenate([m.start[support], m.end[support]])
    assert len(pts) > 100
    x, z = pts[:, 0], pts[:, 2]
    # stem spans x 105..115 on the bed (the T is centred at 110), arms 90..130 at z 20..25
    clearance = settings.support_xy_distance
    assert not ((x > 105 - clearance + 0.05) & (x < 115 + clearance - 0.05)).any()
    assert (x < 105).any() and (x > 115).any()  # both arms are held
    assert x.min() >= 90 - 1e-3 and x.max() <= 130 + 1e-3
    assert z.max() <= 20.0 - settings.support_z_gap + 1e-3
    no_support = slice_parts([t_shape_part], generic_printer, pla, SliceSettings())
    assert not (no_support.analysis.moves.kind == MoveType.SUPPORT).any()


def test_part_too_large_is_refused_with_its_size(generic_printer, pla) -> None:
    big = Part.from_trimesh("MP-TEST long", trimesh.creation.box((240.0, 20.0, 10.0)))
    with pytest.raises(PrintingError, match=r"240\.0 x 20\.0 x 10\.0 mm"):
        slice_parts([big], generic_printer, pla)


def test_several_parts_are_arranged_apart(cube_part, sphere_part, generic_printer, pla) -> None:
    result = slice_parts([cube_part, sphere_part, cube_part], generic_printer, pla)
    walls = result.analysis.layer_segments_by_type(20)[MoveType.EXTERNAL_PERIMETER]
    lines = shapely.multilinestrings(walls[:, :, :2].astype(float))
    # three separate footprints, at least the part spacing apart
    blobs = lines.buffer(2.0)
    assert len(shapely.get_parts(blobs)) == 3
    _extrusion_bounds_ok(result, generic_printer.build_volume)
    for name in ("MP-TEST cube", "MP-TEST sphere"):
        assert f"; object = {name}" in result.gcode


def test_cancel_and_progress(cube_part, generic_printer, pla) -> None:
    token = CancelToken()
    seen: list[float] = []

    def on_progress(fraction: float, message: str) -> None:
        seen.append(fraction)
        if fraction > 0.5:
            token.cancel()

    with pytest.raises(Cancelled):
        slice_parts([cube_part], generic_printer, pla, progress=Progress(on_progress), cancel=token)
    assert seen and max(seen) < 1.0
    done: list[float] = []
    slice_parts([cube_part], generic_printer, pla, progress=Progress(lambda f, m: done.append(f)))
    assert done[-1] == 1.0 and done == sorted(done)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(PrintingError, match="infill_density"):
        SliceSettings(infill_density=150)
    with pytest.raises(PrintingError, match="infill pattern"):
        SliceSettings(infill_pattern="gyroid")


def test_cli_printers_lists_the_shipped_profiles(data_dir: Path, capsys) -> None:
    """Slicing from the CLI is a case's use case (tests/workflow/test_slice.py); the profile
    listing needs no case."""
    assert main(["printers", "--json"]) == 0
    listing = capsys.readouterr().out
    assert "generic-marlin-220" in listing and "prusa-mk3s" in listing
    assert main(["slice", "C-NONE-00", "--printer", "generic-marlin-220"]) == 2


def test_brim_skirt_rectilinear_temperatures_and_fan(cube_part, generic_printer, pla) -> None:
    settings = SliceSettings(
        brim_width=3.0, infill_pattern="rectilinear", external_perimeter_first=True, perimeters=3
    )
    result = slice_parts([cube_part], generic_printer, pla, settings)
    first = result.analysis.layer_segments_by_type(0)[MoveType.SKIRT].reshape(-1, 3)
    # brim loops hug the cube out to ~3 mm, the skirt runs 6 mm beyond the brim
    assert first[:, 0].min() == pytest.approx(100 - 3 - 6 - 0.225, abs=0.3)
    assert not (result.analysis.moves.kind[result.analysis.layer_slice(1)] == MoveType.SKIRT).any()
    text = result.gcode
    layer_1 = text.split(";LAYER_CHANGE")[2]
    assert "M104 S210" in layer_1 and "M106 S" in layer_1  # print temperature, fan after layer 0
    assert text.index("M140 S60") < text.index("M190 S60") < text.index("M109 S215")
    # outer wall first: in each island the external perimeter comes before the inner walls
    kinds = result.analysis.layer_moves(10).kind
    printed = [k for k in kinds.tolist() if k in (MoveType.EXTERNAL_PERIMETER, MoveType.PERIMETER)]
    assert printed[0] == MoveType.EXTERNAL_PERIMETER

"""Multi-material FDM: PrusaSlicer prints each part with its own extruder (tool changes in the
G-code, each part's moves with its tool); the built-in engine prints the parts as one, in one
colour, and says so."""

from __future__ import annotations

import re

import numpy as np
import pytest
import trimesh

from app.errors import PrintingError
from app.printing.profiles import get_printer
from app.printing.slicer import ONE_COLOUR, Part, SliceSettings, prusaslicer, slice_parts

needs_prusaslicer = pytest.mark.skipif(
    prusaslicer.find_executable() is None, reason="prusa-slicer is not installed"
)
FAST = SliceSettings(layer_height=0.3, first_layer_height=0.3, skirt_loops=0, infill_density=10.0)
_WORD = re.compile(r"([XYZE])(-?[\d.]+)")


def box(name: str, size: tuple[float, float, float], centre: tuple[float, float, float], tool):
    mesh = trimesh.creation.box(size)
    mesh.apply_translation(centre)
    return Part(f"MP-TEST {name}", mesh.vertices, mesh.faces, tool)


@pytest.fixture
def two_parts() -> list[Part]:
    """A 10 mm bone block left of a 16 mm tumour block (patient coordinates, 10 mm apart)."""
    return [
        box("bone", (20, 20, 10), (-15, 0, 5), 1),
        box("tumour", (20, 20, 16), (15, 0, 8), 2),
    ]


def extrusions_by_tool(gcode: str) -> list[tuple[int, float, float, float]]:
    """(tool, x, y, z) of every extruding move, following T, G1 and relative E."""
    tool, pos, out = -1, {"X": 0.0, "Y": 0.0, "Z": 0.0}, []
    for raw in gcode.splitlines():
        line = raw.split(";")[0].strip()
        if re.fullmatch(r"T\d+", line):
            tool = int(line[1:])
        elif line.startswith(("G1 ", "G0 ")):
            words = dict(_WORD.findall(line))
            pos |= {k: float(v) for k, v in words.items() if k != "E"}
            if float(words.get("E", 0)) > 0 and ("X" in words or "Y" in words):
                out.append((tool, pos["X"], pos["Y"], pos["Z"]))
    return out


@needs_prusaslicer
def test_prusaslicer_prints_each_part_with_its_extruder(two_parts, data_dir) -> None:
    xl = get_printer("prusa-xl-2t")
    result = slice_parts(two_parts, xl, _pla(), FAST, engine="prusaslicer")
    moves = np.array(extrusions_by_tool(result.gcode))
    tools = moves[:, 0].astype(int)
    assert set(tools) == {0, 1}, "both tools print"
    assert re.search(r"^T1$", result.gcode, flags=re.M), "a tool change to the second extruder"
    bed_middle = xl.build_volume[0] / 2  # the parts keep their places: bone left, tumour right
    assert (moves[tools == 0, 1] < bed_middle).all() and (moves[tools == 1, 1] > bed_middle).all()
    above_bone = moves[:, 3] > 10.0 + 1e-6
    assert above_bone.any() and (tools[above_bone] == 1).all(), "only the tumour above 10 mm"
    assert moves[tools == 0, 3].max() == pytest.approx(9.9, abs=0.11)
    layers = sorted({round(z, 2) for z in moves[:, 3] if z < 10})
    both = [z for z in layers if {0, 1} <= set(tools[np.isclose(moves[:, 3], z)])]
    assert both == layers, "every layer of the bone's height has both tools"
    assert not result.warnings


@needs_prusaslicer
def test_a_tool_the_printer_lacks_is_refused(two_parts, data_dir) -> None:
    two_parts[1].extruder = 3
    with pytest.raises(PrintingError, match="extruder 3"):
        slice_parts(two_parts, get_printer("prusa-xl-2t"), _pla(), FAST, engine="prusaslicer")


def test_builtin_prints_the_parts_as_one_in_one_colour(two_parts, data_dir) -> None:
    result = slice_parts(two_parts, get_printer("prusa-xl-2t"), _pla(), FAST, engine="builtin")
    assert result.warnings[0] == ONE_COLOUR
    assert "the built-in engine prints all parts in one colour" in ONE_COLOUR
    assert not re.search(r"^T1", result.gcode, flags=re.M)
    assert result.gcode.count("; object = ") == 1
    [placement] = result.placements
    assert placement[2] == pytest.approx(0.0), "the parts sit together on the bed"


def _pla():
    from app.printing.profiles import get_material

    return get_material("pla")

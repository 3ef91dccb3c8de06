"""Slicing a two-part mesh version for a two-tool printer: each part with its extruder (by part
order or an explicit map, also through ``medprint slice --extruder``); the provenance keeps the
part->extruder map."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import trimesh

from app.errors import PrintingError
from app.printing.slicer import SliceSettings, prusaslicer
from app.tools.mesh.meshio import mesh_bytes
from app.workflow import slice as slicing

FAST = SliceSettings(layer_height=0.3, first_layer_height=0.3, skirt_loops=0, infill_density=10.0)
needs_prusaslicer = pytest.mark.skipif(
    prusaslicer.find_executable() is None, reason="prusa-slicer is not installed"
)


def two_part_version(case) -> int:
    bone = trimesh.creation.box((20, 20, 10))
    bone.apply_translation((-15, 0, 5))
    tumour = trimesh.creation.box((20, 20, 16))
    tumour.apply_translation((15, 0, 8))
    data = {
        "bone": mesh_bytes(bone.vertices, bone.faces, "stl"),
        "tumour": mesh_bytes(tumour.vertices, tumour.faces, "stl"),
    }
    styles = {"bone": {"colour": "#e6dcc8"}, "tumour": {"colour": "#c83232"}}
    qa = {"passed": True, "checks": []}
    return case.save_mesh_version(
        data, qa=qa, info={"author": "tess", "part": "all"}, styles=styles
    )


def tools_used(gcode: str) -> set[str]:
    return set(re.findall(r"^(T\d+)\s*$", gcode, flags=re.M))


@needs_prusaslicer
def test_map_goes_to_the_slicer_and_into_the_provenance(sphere_case, people) -> None:
    number = two_part_version(sphere_case)
    sliced = slicing.slice_version(
        people["tess"], sphere_case, version=number, printer="prusa-xl-2t", settings=FAST,
        engine="prusaslicer", extruders={"bone": 2, "tumour": 1},
    )  # fmt: skip
    assert sliced.gcode.provenance["extruders"] == {"bone": 2, "tumour": 1}
    assert tools_used(sliced.gcode.text) == {"T0", "T1"}
    last = sliced.gcode.text.rsplit("\nT", 1)[1].split("\n", 1)[0]
    assert last == "0" and not sliced.warnings, "the taller tumour ends it, on extruder 1 (T0)"


def test_default_is_part_order_and_a_bad_map_is_refused(sphere_case, people) -> None:
    assert slicing.tool_map(["bone", "tumour"], 2, None) == {"bone": 1, "tumour": 2}
    assert slicing.tool_map(["sphere"], 1, None) == {"sphere": 1}
    with pytest.raises(PrintingError, match="3 parts but 2 extruders"):
        slicing.tool_map(["a", "b", "c"], 2, None)
    with pytest.raises(PrintingError, match="name each part"):
        slicing.tool_map(["bone", "tumour"], 2, {"bone": 1})
    with pytest.raises(PrintingError, match=r"1\.\.2"):
        slicing.tool_map(["bone", "tumour"], 2, {"bone": 1, "tumour": 3})


def test_builtin_records_one_tool_and_warns(sphere_case, people) -> None:
    number = two_part_version(sphere_case)
    sliced = slicing.slice_version(
        people["tess"], sphere_case, version=number, printer="prusa-xl-2t", settings=FAST
    )
    assert sliced.gcode.provenance["extruders"] == {"bone": 1, "tumour": 1}
    assert "prints all parts in one colour" in sliced.warnings[0]


@needs_prusaslicer
def test_cli_extruder_options(sphere_case, people, tmp_path) -> None:
    two_part_version(sphere_case)
    out = tmp_path / "model.gcode"
    command = [sys.executable, "-m", "app", "slice", sphere_case.pseudonym, "--printer"]
    command += ["prusa-xl-2t", "--engine", "prusaslicer", "--layer-height", "0.3", "--json"]
    command += ["--extruder", "bone=1", "--extruder", "tumour=2", "--out", str(out)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["extruders"] == {"bone": 1, "tumour": 2}
    assert tools_used(out.read_text()) == {"T0", "T1"}
    bad = subprocess.run(
        [*command[:-4], "--extruder", "bone", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "PART=N" in bad.stderr and "Traceback" not in bad.stderr

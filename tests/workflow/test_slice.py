"""Slicing a stored mesh version: the G-code is stored in the case with its provenance."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.workflow.*

from app.errors import AccessDenied
from app.printing.slicer import SliceSettings
from app.security import audit
from app.workflow import slice as slicing

pytest_plugins = ["tests.workflow.print_fixtures"]

FAST = SliceSettings(layer_height=0.3, first_layer_height=0.3, infill_density=10.0)


def _records(actor, action):
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


def test_slice_stores_gcode_bound_to_the_mesh_version(add_version, sphere_case, people, tmp_path):
    tess = people["tess"]
    v1 = add_version(sphere_case)
    add_version(sphere_case, radius=6.0)  # a later version: slicing v1 names v1, not the latest
    out = tmp_path / "copy.gcode"
    sliced = slicing.slice_version(
        tess, sphere_case, version=v1, printer="generic-marlin-220", settings=FAST, out=out
    )
    stored = sliced.gcode
    assert stored.number == 1 and sphere_case.gcode_versions() == [1]
    prov = sphere_case.load_gcode(1).provenance
    assert prov["mesh_version"] == v1 and prov["mesh_sha256"] == sphere_case.mesh_sha256(v1)
    assert prov["printer"] == "generic-marlin-220" and prov["material"] == "pla"
    assert prov["engine"] == "builtin" and prov["parts"] == ["sphere"] and prov["user"] == "tess"
    assert prov["settings"]["layer_height"] == 0.3 and prov["time_utc"].endswith("Z")
    assert prov["gcode_sha256"] == hashlib.sha256(stored.text.encode()).hexdigest()
    assert sliced.summary_lines() and stored.text.count(";LAYER_CHANGE") > 10

    copy = out.read_text()
    assert copy == stored.text, "the copy is the stored G-code, byte for byte"
    objects = re.findall(r"^; object = (.*)$", copy, flags=re.M)
    assert objects == [f"{sphere_case.pseudonym} sphere"], "names: pseudonym and part only"
    assert "DOE" not in copy and "JANE" not in copy, "no patient name in the G-code"

    [record] = _records(tess, "slice")
    facts = record["facts"]
    assert record["case"] == sphere_case.pseudonym and record["user"] == "tess"
    assert facts["gcode_version"] == 1 and facts["mesh_version"] == v1
    assert facts["mesh_sha256"] == prov["mesh_sha256"] and facts["gcode_sha256"] == stored.sha256
    assert facts["printer"] == "generic-marlin-220" and facts["engine"] == "builtin"


def test_latest_version_by_default_and_numbers_go_up(add_version, sphere_case, people):
    add_version(sphere_case)
    v2 = add_version(sphere_case, radius=6.0)
    first = slicing.slice_version(
        people["ada"], sphere_case, printer="generic-marlin-220", settings=FAST
    )
    again = slicing.slice_version(
        people["ada"], sphere_case, printer="generic-marlin-220", settings=FAST
    )
    assert first.gcode.provenance["mesh_version"] == v2, "an administrator may slice too"
    assert (first.gcode.number, again.gcode.number) == (1, 2)


@pytest.mark.parametrize("who", ["rafael", "nemo"])
def test_reviewer_and_no_role_are_refused_and_audited(add_version, sphere_case, people, who):
    add_version(sphere_case)
    with pytest.raises(AccessDenied, match="may not slice: it needs the administrator or tech"):
        slicing.slice_version(people[who], sphere_case, printer="generic-marlin-220")
    assert sphere_case.gcode_versions() == []
    [denied] = _records(people[who], "access.denied")
    assert denied["user"] == who and denied["facts"]["attempted"] == "slice"
    assert denied["case"] == sphere_case.pseudonym


def test_no_mesh_yet_is_one_clear_line(sphere_case, people):
    with pytest.raises(Exception, match="has no mesh yet; build one first"):
        slicing.slice_version(people["tess"], sphere_case, printer="generic-marlin-220")


def test_cli_slice_stores_and_reports_json(approved_case, people, tmp_path, data_dir):
    """``medprint slice CASE --printer P --out F --json`` (the OS user is the vault founder)."""
    out = tmp_path / "cli.gcode"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "slice",
            approved_case.pseudonym,
            "--version",
            "1",
            "--printer",
            "generic-marlin-220",
            "--layer-height",
            "0.3",
            "--infill",
            "10",
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    stored = approved_case.load_gcode(report["gcode_version"])
    assert report["mesh_version"] == 1 and report["gcode_sha256"] == stored.sha256
    assert report["mesh_sha256"] == approved_case.mesh_sha256(1) and report["out"] == str(out)
    assert out.read_text() == stored.text and report["layers"] > 10

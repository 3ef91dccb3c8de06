"""``medprint demo`` on the bundled sample: every step runs and the package verifies."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

STEPS = [
    "vault",
    "roles",
    "import",
    "bone in one click",
    "surface, label, QA",
    "approval",
    "slicing",
    "signed package",
    "verification",
]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


@pytest.mark.slow
def test_demo_runs_every_step_and_its_package_verifies(tmp_path, keystore_service):
    env = {**os.environ, "MEDPRINT_DATA_DIR": str(tmp_path / "data")}
    demo = _run("demo", str(tmp_path / "out"), env=env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    printed = [line.split("  ")[0].strip() for line in demo.stdout.splitlines()]
    assert printed[: len(STEPS)] == STEPS and printed[-1] == "total"
    assert "QA pass" in demo.stdout
    (package,) = (tmp_path / "out").iterdir()
    manifest = json.loads((package / "manifest.json").read_text())
    paths = [f["path"] for f in manifest["files"]]
    case = manifest["case"]
    assert {f"mesh/{case}_spine.stl", f"mesh/{case}_spine.3mf", "qa/report.html"} <= set(paths)
    assert any(p.endswith(".gcode") for p in paths)
    page = (package / "qa" / "report.html").read_text()
    assert page.count("<svg") == 3 and "PASS" in page and case in page
    assert manifest["approval"]["decision"] == "approved" and manifest["override"] is None
    assert _run("verify", str(package), env=env).returncode == 0
    gcode = next(package.rglob("*.gcode"))
    gcode.write_bytes(gcode.read_bytes() + b"G1 X0\n")
    tampered = _run("verify", str(package), env=env)
    assert tampered.returncode == 1 and "gcode" in tampered.stdout

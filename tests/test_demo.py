"""``medprint demo`` on the bundled sample: every step runs, the package verifies, and the demo
works in its own data folder, leaving the user's untouched."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

STEPS = [
    "vault",
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


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by relative path and SHA-256."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_demo_runs_every_step_in_its_own_vault_and_its_package_verifies(tmp_path, keystore_service):
    data = tmp_path / "data"
    env = {**os.environ, "MEDPRINT_DATA_DIR": str(data)}
    assert _run("vault", "init", env=env).returncode == 0
    before = _snapshot(data)
    demo = _run("demo", str(tmp_path / "out"), env=env)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert _snapshot(data) == before  # the user's data folder is byte for byte the same
    printed = [line.split("  ")[0].strip() for line in demo.stdout.splitlines()]
    assert printed[: len(STEPS)] == STEPS and printed[-1] == "total"
    assert "QA pass" in demo.stdout and "self-approved" in demo.stdout
    (package,) = [p for p in (tmp_path / "out").iterdir() if p.name != "demo-data"]
    assert (tmp_path / "out" / "demo-data" / "vault" / "vault.json").is_file()
    manifest = json.loads((package / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    case = manifest["case"]
    # The sample is a chest CT (BodyPartExamined CHEST): the part is named by segment and region.
    assert {f"mesh/{case}_bone-chest.stl", f"mesh/{case}_bone-chest.3mf", "qa/report.html"} <= paths
    assert not any("spine" in p for p in paths)
    assert any(p.endswith(".gcode") for p in paths)
    page = (package / "qa" / "report.html").read_text()
    assert page.count("<svg") == 3 and "PASS" in page and case in page
    approval = manifest["approval"]
    assert approval["decision"] == "approved" and approval["meaning"] == "self-approved"
    (override,) = manifest["overrides"]
    assert override["kind"] == "self-approval" and override["id"] in approval["override_ids"]
    demo_env = {**env, "MEDPRINT_DATA_DIR": str(tmp_path / "out" / "demo-data")}
    assert _run("verify", str(package), env=demo_env).returncode == 0
    gcode = next(package.rglob("*.gcode"))
    gcode.write_bytes(gcode.read_bytes() + b"G1 X0\n")
    tampered = _run("verify", str(package), env=demo_env)
    assert tampered.returncode == 1 and "gcode" in tampered.stdout

"""The end-to-end PHI canary with two people: identifiers planted in every identifying place of
a real CT reach no file outside the vault's encrypted files, wherever the program writes as
either account (shared data folder, temp folders, output folder, package, standard output).

The CT is the eight-slice ring of the tilted head CT that ``tests/test_end_to_end.py`` plants
(every identifying place of every slice); the whole head only made every step slower."""

from __future__ import annotations

import json
import time

import pytest

from tests.multiuser.conftest import Lab
from tests.multiuser.harness import make_readable
from tests.multiuser.test_team import APPROVE
from tests.test_end_to_end import _plant

pytestmark = pytest.mark.slow

# Coarse layers, one perimeter, no infill: the G-code still carries every name the slicer
# writes (the canary's point), in a fraction of the time.
QUICK = ("--layer-height", "0.3", "--first-layer-height", "0.3", "--perimeters", "1")
QUICK += ("--infill", "0")


def _texts(*folders) -> dict[str, str]:
    files = [p for folder in folders for p in folder.rglob("*") if p.is_file()]
    return {str(p): p.read_bytes().decode("latin-1") for p in files}


def _leaks(texts: dict[str, str], markers: list[str]) -> list[tuple[str, str]]:
    return [
        (where, marker)
        for where, text in texts.items()
        for marker in markers
        if marker in text or marker.lower() in text or marker in where
    ]


def test_two_people_leave_no_identifier_outside_the_vault(lab: Lab, dicom_dir):
    incoming = lab.station.base / "incoming-canary"
    markers = _plant(dicom_dir / "ct-head-ge-gantry-tilt-28", incoming)
    make_readable(incoming)
    out = lab.station.shared_folder("out-canary")
    said: dict[str, str] = {}

    def step(who: str, *args: str, codes: tuple[int, ...] = (0,)) -> str:
        started = time.monotonic()
        proc = lab.run_as(who, *args)
        print(f"{time.monotonic() - started:6.1f} s  {who}: {' '.join(args[:2])}")
        said[f"{who}: {' '.join(args)}"] = proc.stdout + proc.stderr
        assert proc.returncode in codes, f"{who}: {' '.join(args)}\n{proc.stderr[-3000:]}"
        return proc.stdout

    step("admin", "vault", "init")
    for who, role in (("tech", "technician"), ("rev", "reviewer")):
        step(who, "whoami", "--json")
        step("admin", "users", "enrol", lab.name(who), role)
    case = step("tech", "import", str(incoming)).split()[0]
    step("tech", "segment", case, "--tool", "bone")
    built = step("tech", "mesh", case, "--triangles", "20000", codes=(0, 1))  # 1: QA failed
    approve = APPROVE
    if "QA FAIL" in built:  # a thin-walled skull can fail QA: identifiers are under test here
        reason = ("--reason", "PHI canary: QA is not under test")
        step("admin", "review", "override", case, "--version", "1", "--kind", "qa-failure", *reason)
        approve = ("--meaning", "approved with QA override")
    step("rev", "review", "approve", case, "--version", "1", *approve)
    step("tech", "slice", case, "--version", "1", "--printer", "generic-marlin-220", *QUICK)
    step("tech", "package", case, "--version", "1", "--out", str(out))
    # The receiver trusts the lab's founding key, as the administrator gives it to them.
    members = json.loads((lab.data / "vault" / "vault.json").read_text())["members"]
    lab_key = members[lab.name("admin")]["identity"]["signing_key"]
    for package in out.iterdir():
        step("rev", "verify", str(package), "--trusted-key", lab_key)
    step("admin", "audit", "export", "--format", "json")

    texts = _texts(lab.data, out, *lab.temp.values())
    assert any("vault" in where for where in texts), "the vault's files are scanned too"
    assert _leaks({**said, **texts}, markers) == []

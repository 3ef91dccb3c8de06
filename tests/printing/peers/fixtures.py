"""Pytest fixtures for the printer peers; test modules import the ones they use.

(``tests/printing/conftest.py`` belongs to the slicing work, so these live here and are pulled in
with ``from tests.printing.peers.fixtures import ...``.)
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.printing.peers.gcode_samples import synthetic_gcode
from tests.printing.peers.marlin_sim import SimulatedMarlin
from tests.printing.peers.moonraker_server import MoonrakerContract
from tests.printing.peers.octoprint_server import OctoPrintServer, Unavailable, start_octoprint
from tests.printing.peers.preform_server import PreFormContract
from tests.printing.peers.prusalink_server import PrusaLinkContract

REFERENCE_INI = (
    Path(__file__).resolve().parents[3]
    / ".."
    / "shared"
    / "reference"
    / ("prusaslicer-generic-220.ini")
)


@pytest.fixture
def marlin() -> Iterator[Callable[..., SimulatedMarlin]]:
    """A factory of started simulated printers, all stopped at the end of the test."""
    made: list[SimulatedMarlin] = []

    def make(**kwargs: object) -> SimulatedMarlin:
        sim = SimulatedMarlin(**kwargs).start()
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.stop()


def slice_with_prusaslicer(folder: Path) -> Path | None:
    """A real sliced print: a 16 mm cylinder, 10 mm high, through the PrusaSlicer CLI."""
    exe = shutil.which("prusa-slicer")
    if exe is None:
        return None
    import trimesh

    mesh = trimesh.creation.cylinder(radius=8.0, height=10.0, sections=64)
    mesh.apply_translation([0, 0, 5.0])
    stl = folder / "cylinder.stl"
    mesh.export(stl)
    out = folder / "cylinder.gcode"
    command = [exe, "--export-gcode", "--center", "110,110", "-o", str(out), str(stl)]
    if REFERENCE_INI.exists():
        command[1:1] = ["--load", str(REFERENCE_INI.resolve())]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return None
    return out if out.exists() and out.stat().st_size > 0 else None


@pytest.fixture(scope="session")
def sliced_gcode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PrusaSlicer G-code when the CLI is installed, else a synthetic 20k-line one."""
    folder = tmp_path_factory.mktemp("sliced")
    return slice_with_prusaslicer(folder) or synthetic_gcode(folder / "synthetic.gcode")


@pytest.fixture(scope="session")
def octoprint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OctoPrintServer]:
    """One real OctoPrint (virtual printer) for the session; skipped if it cannot run here."""
    try:
        server = start_octoprint(tmp_path_factory.mktemp("octoprint"))
    except Unavailable as exc:
        pytest.skip(f"OctoPrint unavailable: {exc}")
    yield server
    server.stop()


@pytest.fixture
def moonraker() -> Iterator[MoonrakerContract]:
    server = MoonrakerContract(api_key="moonraker-test-key").start()
    yield server
    server.stop()


@pytest.fixture
def prusalink() -> Iterator[PrusaLinkContract]:
    server = PrusaLinkContract(password="pl-secret").start()
    yield server
    server.stop()


@pytest.fixture
def preform() -> Iterator[PreFormContract]:
    server = PreFormContract().start()
    yield server
    server.stop()

"""Our PreForm Local API client against the contract PreFormServer: scene, import, prepare,
validate, estimate, the mesh-hash check, print and follow."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.errors import PrinterConnectionError, PrintingError
from app.printing.backends.formlabs import (
    FormlabsJob,
    MeshPart,
    PreFormClient,
    PreFormPrint,
    SceneSettings,
)
from app.printing.connection import ConnectionSettings, check_connection
from app.printing.marlin import PrinterState
from tests.printing.peers.octoprint_server import free_port
from tests.printing.peers.preform_server import PRINTER

pytest_plugins = ["tests.printing.peers.fixtures"]


@pytest.fixture
def parts(tmp_path: Path) -> list[MeshPart]:
    """Two approved parts as STL files, named by their job (no patient identity)."""
    found = []
    for number, mesh in enumerate(
        (trimesh.creation.box((20, 20, 10)), trimesh.creation.icosphere(3, radius=8)), start=1
    ):
        path = tmp_path / f"C-TEST-04-m2-p{number}.stl"
        path.write_bytes(mesh.export(file_type="stl"))
        found.append(MeshPart(f"p{number}", path, hashlib.sha256(path.read_bytes()).hexdigest()))
    return found


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def __call__(self, event, facts):
        self.events.append((event, facts))


def make_job(server, parts, recorder=None, **kwargs) -> FormlabsJob:
    backend = PreFormPrint(
        PreFormClient(server.url), parts, SceneSettings.for_model("FORM4B", 0.05), PRINTER
    )
    return FormlabsJob(
        backend,
        printer="form4b",
        remote_name="C-TEST-04-m2",
        on_event=recorder,
        poll_interval=0.05,
        **kwargs,
    )


def test_prepare_check_print_and_follow(preform, parts):
    recorder = Recorder()
    progress = []
    job = make_job(preform, parts, recorder, on_progress=lambda s: progress.append(s.progress))
    job.start()
    assert job.wait(30) == PrinterState.FINISHED, job.status().message
    (scene,) = preform.scenes
    steps = [
        (m, p.split("/")[-2].replace(scene, "scene"))
        for m, p, _ in preform.requests
        if p.startswith("/scene/")
    ]
    assert steps == [
        ("POST", "scene"),
        ("POST", "import-model"),
        ("POST", "import-model"),
        ("GET", "scene"),  # the scene read back: the first mesh check
        ("POST", "auto-orient"),
        ("POST", "auto-support"),
        ("POST", "auto-layout"),
        ("GET", "print-validation"),
        ("GET", "scene"),
        ("GET", "estimate-print-time"),
        ("GET", "scene"),
        ("GET", "scene"),  # read back again just before sending: the second check
        ("POST", "print"),
    ]
    imports = [body for _, p, body in preform.requests if p.endswith("/import-model/")]
    assert [b["file"] for b in imports] == [str(p.path) for p in parts]
    assert {(b["units"], b["repair_behavior"]) for b in imports} == {("MILLIMETERS", "ERROR")}
    (sent,) = preform.printed
    assert sent["job_name"] == "C-TEST-04-m2"
    assert [m["raw_mesh_hash"] for m in sent["models"]] == [p.sha256 for p in parts]
    assert any(0.0 < p < 1.0 for p in progress) and job.status().progress == 1.0
    (event, facts) = recorder.events[0]
    assert event == "finish" and facts["parts_sha256"] == [p.sha256 for p in parts]
    assert facts["estimated_s"] > 0 and facts["resin_ml"] > 0 and facts["preform_job"]


def test_a_different_mesh_in_preform_stops_the_print(preform, parts):
    preform.swap_mesh = True
    job = make_job(preform, parts)
    with pytest.raises(PrintingError, match="reports a different mesh for part p1"):
        job.start()
    assert job.state == PrinterState.ERROR and not preform.printed
    assert "/auto-orient/" not in " ".join(preform.paths()), "stopped at the first check"
    assert not preform.scenes, "the scene that was not sent is deleted"


def test_a_mesh_changed_while_preparing_stops_the_print(preform, parts):
    preform.swap_after_support = True
    job = make_job(preform, parts)
    with pytest.raises(PrintingError, match=r"different mesh .* the print was not sent"):
        job.start()
    assert not preform.printed


def test_a_part_changed_on_disk_is_not_imported(preform, parts):
    parts[1].path.write_bytes(parts[0].path.read_bytes())
    with pytest.raises(PrintingError, match="exported part p2 is not the approved mesh"):
        make_job(preform, parts).start()
    assert not preform.printed


def test_validation_problems_are_named(preform, parts):
    preform.cups = 2
    with pytest.raises(PrintingError, match=r"unprintable \(p1: 2 cups"):
        make_job(preform, parts).start()
    assert not preform.printed


def test_busy_printer_and_unknown_printer(preform, parts):
    preform.busy = True
    with pytest.raises(PrinterConnectionError, match=f"printer '{PRINTER}' is busy"):
        make_job(preform, parts).start()
    assert not preform.scenes, "nothing prepared for a busy printer"
    client = PreFormClient(preform.url)
    with pytest.raises(PrinterConnectionError, match="does not see printer 'Form4-Other'"):
        client.check_printer("Form4-Other")


def test_bad_scene_settings_server_down_and_garbage(preform, parts):
    client = PreFormClient(preform.url)
    with pytest.raises(PrinterConnectionError, match=r"HTTP 400 \(Unknown material FLXXXX01\)"):
        client.create_scene(SceneSettings("FORM-4-0", "FLXXXX01"))
    with pytest.raises(PrintingError, match="PreForm printer type for 'FORM9' is unknown"):
        SceneSettings.for_model("FORM9", 0.05)
    preform.garbage = True
    with pytest.raises(PrinterConnectionError, match="not JSON; is the URL that of PreForm"):
        client.devices()
    down = PreFormClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PrinterConnectionError, match=r"PreForm at .* does not answer"):
        down.devices()


def test_connection_test_and_no_pause_over_the_local_api(preform, parts):
    settings = ConnectionSettings(kind="formlabs", url=preform.url)
    assert check_connection(settings) == (
        f"PreForm Local API, 1 printer: {PRINTER} (Form 4B, IDLE)"
    )
    preform.layers_per_second = 5
    job = make_job(preform, parts)
    job.start()
    with pytest.raises(PrinterConnectionError, match="pause it on the printer's screen"):
        job.backend.pause()
    job.close()


def test_preform_that_stops_answering_times_out_in_one_line(preform):
    preform.delay = 1.5
    with pytest.raises(PrinterConnectionError, match=r"does not answer \(timed out\)"):
        PreFormClient(preform.url, timeout=0.5).devices()

"""Printing through the workflow on PrusaLink (G-code and SL1) and Formlabs (the approved mesh,
through PreForm): the approval gate applies to both, PreForm's mesh hashes are checked before
sending, and every step is audited. The printers are the contract servers of
tests/printing/peers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.*

from app.case import Case
from app.errors import AccessDenied, PrintingError
from app.printing.connection import login_name, login_secret
from app.printing.marlin import PrinterState
from app.security import audit
from app.security.keystore import Keystore
from app.workflow import printing
from tests.printing.peers.preform_server import PRINTER as FORM4
from tests.printing.peers.prusalink_server import SERIAL

pytest_plugins = ["tests.printing.peers.fixtures", "tests.workflow.print_fixtures"]

FDM = "prusa-mk3s"
SL1S = "prusa-sl1s"
FORM = "formlabs-form4b"
GCODE = "M140 S60\nM104 S215\nG28\n" + "".join(f"G1 X{i % 50} Y10 E0.1\n" for i in range(300))


def records(actor, action) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == action]


def store_gcode(case: Case, version: int) -> int:
    provenance = {"mesh_version": version, "mesh_sha256": case.mesh_sha256(version)}
    return case.save_gcode(GCODE, provenance | {"printer": FDM}).number


def store_sl1(case: Case, version: int) -> int:
    archive = b"PK\x03\x04" + bytes(range(256)) * 20
    provenance = {"mesh_version": version, "mesh_sha256": case.mesh_sha256(version)}
    return case.save_sla(archive, provenance | {"printer": SL1S}).number


@pytest.fixture
def login(keystore_service) -> None:
    for profile in (FDM, SL1S):
        Keystore().set(login_name(profile), login_secret("maker", "pl-secret"))


# --- PrusaLink ------------------------------------------------------------------------------------


def test_prusalink_prints_approved_gcode_with_the_serial_on_record(
    approved_case, people, prusalink, login
):
    tess = people["tess"]
    number = store_gcode(approved_case, 1)
    where = {"url": prusalink.url, "kind": "prusalink"}
    job = printing.start(tess, approved_case, printer=FDM, poll_interval=0.05, **where)
    assert job.wait(30) == PrinterState.FINISHED, job.status().message
    assert prusalink.files[f"{approved_case.pseudonym}-g{number}.gcode"] == GCODE.encode()
    [started] = records(tess, "print.start")
    assert started["facts"]["transport"] == "prusalink" and started["facts"]["mesh_version"] == 1
    [finished] = records(tess, "print.finish")
    assert finished["facts"]["serial"] == SERIAL


def test_prusalink_refuses_unapproved_gcode_and_sends_nothing(
    add_version, sphere_case, people, prusalink, login
):
    tess = people["tess"]
    store_gcode(sphere_case, add_version(sphere_case))  # never reviewed
    where = {"url": prusalink.url, "kind": "prusalink"}
    with pytest.raises(AccessDenied, match=r"mesh v1 of .* cannot be printed"):
        printing.start(tess, sphere_case, printer=FDM, **where)
    assert not prusalink.files and not records(tess, "print.start")


def test_sl1_of_an_approved_version_prints_on_the_sl1s(approved_case, people, prusalink, login):
    tess = people["tess"]
    number = store_sl1(approved_case, 1)
    job = printing.start_resin(
        tess, approved_case, printer=SL1S, url=prusalink.url, poll_interval=0.05
    )
    assert job.wait(30) == PrinterState.FINISHED
    assert f"{approved_case.pseudonym}-s{number}.sl1" in prusalink.files
    [started] = records(tess, "print.start")
    assert started["facts"]["sla_version"] == number and started["facts"]["sl1_sha256"]


def test_sl1_of_an_unapproved_version_is_refused(
    add_version, sphere_case, people, prusalink, login
):
    tess = people["tess"]
    store_sl1(sphere_case, add_version(sphere_case))
    with pytest.raises(AccessDenied, match="cannot be printed"):
        printing.start_resin(tess, sphere_case, printer=SL1S, url=prusalink.url)
    assert not prusalink.files


# --- Formlabs through PreForm ---------------------------------------------------------------------


def test_formlabs_prints_the_approved_mesh_after_checking_its_hash(approved_case, people, preform):
    tess = people["tess"]
    assert printing.target(tess, FORM) == "mesh"
    job = printing.start_mesh(
        tess, approved_case, printer=FORM, url=preform.url, poll_interval=0.05
    )
    assert job.wait(30) == PrinterState.FINISHED, job.status().message
    (sent,) = preform.printed
    [part] = approved_case.mesh_manifest(1)["parts"]
    assert [m["raw_mesh_hash"] for m in sent["models"]] == [part["sha256"]]
    assert sent["job_name"] == f"{approved_case.pseudonym}-m1"
    [imported] = [b["file"] for _, p, b in preform.requests if p.endswith("/import-model/")]
    assert Path(imported).name == f"{approved_case.pseudonym}-m1-p1.stl"
    assert not Path(imported).exists(), "the exported part is deleted once sent"
    [started] = records(tess, "print.start")
    facts = started["facts"]
    assert facts["transport"] == "formlabs" and facts["mesh_sha256"] == approved_case.mesh_sha256(1)
    assert facts["parts_sha256"] == [part["sha256"]] and facts["approval_id"]
    [finished] = records(tess, "print.finish")
    assert finished["facts"]["serial"] == FORM4 and finished["facts"]["resin_ml"] > 0


def test_formlabs_refuses_an_unapproved_version(add_version, approved_case, people, preform):
    tess = people["tess"]
    add_version(approved_case, radius=9.0)  # v2, never reviewed
    with pytest.raises(AccessDenied, match=r"mesh v2 of .* cannot be printed"):
        printing.start_mesh(tess, approved_case, printer=FORM, url=preform.url)
    assert not preform.scenes and not preform.printed
    [denied] = records(tess, "access.denied")
    assert denied["facts"]["attempted"] == "print"


def test_formlabs_mesh_hash_mismatch_stops_the_print(approved_case, people, preform):
    tess = people["tess"]
    preform.swap_mesh = True
    with pytest.raises(PrintingError, match="reports a different mesh"):
        printing.start_mesh(tess, approved_case, printer=FORM, url=preform.url)
    assert not preform.printed
    [error] = records(tess, "print.error")
    assert "different mesh" in error["facts"]["reason"]


# --- the CLI --------------------------------------------------------------------------------------


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_cli_stores_the_prusalink_login_tests_and_prints(approved_case, prusalink):
    number = store_gcode(approved_case, 1)
    where = ["--url", prusalink.url, "--kind", "prusalink"]
    stored = run_cli("printer", "login", FDM, "--user", "maker", stdin="not-it\n")
    assert stored.returncode == 0 and "not-it" not in stored.stdout + stored.stderr
    refused = run_cli("printer", "test", FDM, *where)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "refused the user name or password (HTTP 401)" in line
    assert run_cli("printer", "login", FDM, stdin="pl-secret\n").returncode == 0
    tested = run_cli("printer", "test", FDM, *where)
    assert tested.stdout.strip() == "PrusaLink 2.1.2, printer MK4 idle", tested.stderr
    done = run_cli("print", approved_case.pseudonym, "--printer", FDM, *where)
    assert done.returncode == 0, done.stderr
    assert f"{approved_case.pseudonym}-g{number}.gcode" in prusalink.files
    assert run_cli("printer", "forget", FDM).returncode == 0
    assert Keystore().get(login_name(FDM)) is None


def test_cli_prints_the_approved_mesh_on_a_formlabs_printer(approved_case, preform):
    command = ["print", approved_case.pseudonym, "--printer", FORM, "--url", preform.url]
    done = run_cli(*command, "--device", FORM4, "--json")
    assert done.returncode == 0, done.stderr
    assert '"state": "finished"' in done.stdout and len(preform.printed) == 1
    preform.swap_mesh = True
    refused = run_cli(*command)
    assert refused.returncode == 2 and len(preform.printed) == 1
    assert "reports a different mesh" in refused.stderr.strip().splitlines()[-1]

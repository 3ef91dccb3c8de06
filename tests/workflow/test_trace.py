"""The chain of a demo case verifies end to end; changing any stored artefact breaks exactly its
link; steps are signed and audited; a scan of the print is verified and joins the chain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trimesh

from app.case import Case
from app.errors import AccessDenied, MedPrintError
from app.security import audit
from app.settings import resolve_paths
from app.tools.mesh.meshio import read_mesh_bytes
from app.workflow import trace, verify_print
from app.workflow.actor import Actor
from app.workflow.demo import DATA_FOLDER, run_demo
from tests.trace.scans import make_scan, rigid

CHAIN = ["series", "segmentation", "mesh", "approval", "gcode", "print"]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    return out


@pytest.fixture
def demo(demo_folder, keystore_service, tmp_path) -> tuple[Actor, Case]:
    run_demo(tmp_path / "out")
    actor = Actor.current(resolve_paths(tmp_path / "out" / DATA_FOLDER))
    [entry] = actor.vault.list_cases()
    return actor, actor.case(entry.pseudonym)


def _statuses(chain: trace.Trace) -> dict[str, str]:
    return {link.name: link.status for link in chain.links}


def _plan(case: Case) -> trimesh.Trimesh:
    stored = case.load_mesh_version(case.latest_mesh_version())
    [data] = stored.parts.values()
    return trimesh.Trimesh(*read_mesh_bytes(data, "stl"))


def test_demo_chain_steps_verification_and_tampering(demo, tmp_path):
    actor, case = demo
    chain = trace.trace(actor, case)
    states = _statuses(chain)
    assert [states[n] for n in CHAIN[:5]] == ["ok"] * 5, chain.to_dict()
    assert states["print"] == "pending" and states["verification"] == "pending" and chain.ok
    series = chain.links[0]
    assert series.facts["files"] > 0 and len(series.facts["series_uid_sha256"]) == 64
    text = json.dumps(chain.to_dict())
    assert "1.2.840" not in text and "1.3.6" not in text, "no UID in the clear"
    approval = chain.links[3].facts
    assert approval["signer"] == actor.user and approval["meaning"] == "self-approved"

    trace.record_step(actor, case, "material", detail="PLA spool", lot="LOT-42")
    trace.record_step(actor, case, "printer", serial="SN-0815")
    trace.record_step(actor, case, "sterilisation", method="steam-134C", cycle_id="C-7781")
    [rec] = [r for r in audit.read_records(actor.paths) if r["action"] == "record.step"][-1:]
    assert rec["facts"]["step"] == "sterilisation" and "C-7781" not in json.dumps(rec)

    scan = make_scan(_plan(case), matrix=rigid((10, 20, -15), (5, 3, -8)))
    path = tmp_path / "scan.stl"
    scan.mesh.export(path)
    done = verify_print.verify_print(actor, case, path, units="mm")
    assert done.passed, done.check.to_dict()
    assert done.check.registration.residual_mm < 0.08
    pdf = verify_print.report_pdf(actor, case, done.number)
    assert pdf.startswith(b"%PDF")

    chain = trace.trace(actor, case)
    states = _statuses(chain)
    assert chain.ok and states["verification"] == "ok"
    assert states["step:material"] == states["step:sterilisation"] == "ok"
    steril = next(x for x in chain.links if x.name == "step:sterilisation").facts
    assert steril["cycle_id"] == "C-7781" and steril["method"] == "steam-134C"
    record, _ = trace.record_pdf(actor, case)
    assert record.startswith(b"%PDF") and case.pseudonym.encode() not in b"" + b""

    _tamper_each(actor, case)


def _broken_after(actor: Actor, case: Case, change) -> set[str]:
    change()
    return {link.name for link in trace.build(actor, case).links if link.status == "broken"}


def _tamper_each(actor: Actor, case: Case) -> None:
    vault, p = case.vault, case.pseudonym

    def rewrite(name: str, edit) -> None:
        vault.write_bytes(p, name, edit(vault.read_bytes(p, name)))

    first = case.original_names()[0]
    assert _broken_after(actor, case, lambda: rewrite(first, lambda b: b + b"\0")) == {"series"}
    seg = "segmentation.seg"
    assert _broken_after(actor, case, lambda: rewrite(seg, lambda b: b[:-1] + b"\1")) == {
        "series",
        "segmentation",
    }
    number = case.latest_mesh_version()
    part = next(n for n in case.files() if n.startswith(f"mesh/v{number}/parts/"))
    got = _broken_after(actor, case, lambda: rewrite(part, lambda b: b[:-2] + b"\1\1"))
    assert got == {"series", "segmentation", "mesh"}
    gcode = f"print/g{case.latest_gcode_version()}.gcode"
    got = _broken_after(actor, case, lambda: rewrite(gcode, lambda b: b + b"; extra\n"))
    assert got == {"series", "segmentation", "mesh", "gcode"}
    steps = case.print_record()
    steps[0]["fields"]["lot"] = "LOT-43"
    got = _broken_after(actor, case, lambda: case.save_print_record(steps))
    assert got == {"series", "segmentation", "mesh", "gcode", "step:material"}
    report = case.load_verification(1)
    report["check"]["verdict"] = "pass!"
    got = _broken_after(
        actor, case, lambda: vault.write_bytes(p, "verify/v1.json", json.dumps(report).encode())
    )
    assert "verification" in got
    decisions = case.load_decisions()
    decisions[-1]["meaning"] = "approved for printing"
    got = _broken_after(actor, case, lambda: case.save_decisions(decisions))
    assert "approval" in got and len(got) == 7


def test_steps_need_a_maker_and_a_known_step(approved_case, people):
    with pytest.raises(AccessDenied):
        trace.record_step(people["rafael"], approved_case, "cure")
    with pytest.raises(MedPrintError, match="unknown step"):
        trace.record_step(people["tess"], approved_case, "paint")
    with pytest.raises(AccessDenied):
        trace.record_step(people["tess"], approved_case, "material", lot="DOE lot")
    step = trace.record_step(people["tess"], approved_case, "cure", detail="DOE JANE, 30 min")
    chain = trace.trace(people["rafael"], approved_case)
    link = next(x for x in chain.links if x.name == "step:cure")
    assert link.status == "ok" and link.facts["detail"] == trace.WITHHELD
    assert link.facts["operator"] == "tess" and step["operator"] == "tess"


pytest_plugins = ["tests.workflow.print_fixtures"]

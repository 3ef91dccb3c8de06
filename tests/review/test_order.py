"""The case order (coded fields; the note stays in the vault), time per stage from the audit
trail, and the registry export (pseudonyms, coded fields and years only)."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime

import pytest

from app import cli
from app.errors import AccessDenied, MedPrintError
from app.security import audit
from app.workflow import order, review
from app.workflow.actor import Actor
from tests.review.conftest import CANARY, store_lineage
from tests.workflow.mesh_versions import store_gcode


def _order(actor, case, note=""):
    return order.set_order(
        actor,
        case,
        indication="surgical-planning",
        region="abdomen",
        service="general-surgery",
        due="2027-02-03",
        note=note,
    )


def test_an_order_keeps_coded_fields_and_the_note_only_in_the_vault(people, canary_case):
    made = _order(people["tess"], canary_case, note=f"ask Dr X about {CANARY}")
    assert canary_case.load_order() == made
    assert made["indication"] == "surgical-planning" and made["due"] == "2027-02-03"
    logged = audit.read_records(people["tess"].paths)[-1]
    assert logged["action"] == "order.set" and logged["facts"]["has_note"] is True
    assert logged["facts"]["region"] == "abdomen"
    assert CANARY not in json.dumps(audit.read_records(people["tess"].paths))
    with pytest.raises(MedPrintError, match="unknown indication"):
        order.set_order(
            people["tess"], canary_case, indication="x", region="abdomen", service="other",
            due="2027-01-01",
        )  # fmt: skip
    with pytest.raises(MedPrintError, match="YYYY-MM-DD"):
        order.set_order(
            people["tess"], canary_case, indication="trauma", region="head", service="other",
            due="03/02/2027",
        )  # fmt: skip


def test_stage_minutes_run_from_each_stage_to_the_next():
    def rec(action, minute, case="C-AAAA-BB"):
        return {"action": action, "case": case, "time": f"2026-05-01T10:{minute:02d}:00+00:00"}

    records = [
        rec("case.import", 0),
        rec("segment", 5),
        rec("segment", 20, case="C-OTHER-1"),
        rec("mesh.build", 35),
        rec("mesh.edit", 40),
        rec("review.approve", 50),
        rec("slice", 52),
        rec("package.build", 59),
    ]
    assert order.stage_minutes(records, "C-AAAA-BB") == {
        "import": 5.0,
        "segmentation": 30.0,
        "mesh": 15.0,
        "review": 2.0,
        "slicing": 7.0,
        "package": 0.0,
    }


def test_the_registry_has_one_row_per_ordered_case_and_no_identity(
    people, canary_case, sphere_case, tmp_path
):
    version = store_lineage(canary_case, "tess")
    review.approve(people["rafael"], canary_case, version, comment=f"ok {CANARY}")
    gcode = "G21\nG90\nM82\nG28\nG1 Z0.2 F600\nG1 X50 Y0 E2 F1200\nG1 X50 Y50 E4\n"
    store_gcode(canary_case, canary_case.mesh_sha256(version), gcode)
    _order(people["tess"], canary_case, note=f"{CANARY} free text")
    out = tmp_path / "registry.csv"
    with pytest.raises(AccessDenied):
        order.export_registry(people["tess"], out)
    order.export_registry(people["rafael"], out)
    text = out.read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["pseudonym"] for r in rows] == [canary_case.pseudonym]  # sphere_case: no order
    row = rows[0]
    assert tuple(row) == order.REGISTRY_COLUMNS
    assert row["indication"] == "surgical-planning" and row["region"] == "abdomen"
    assert row["service"] == "general-surgery" and row["year_due"] == "2027"
    assert row["year_created"] == str(datetime.now(UTC).year)
    assert row["mesh_versions"] == "2" and row["approved"] == "yes"
    assert row["printer"] == "generic-marlin-220" and row["material"] == "pla"
    assert float(row["print_time_min"]) > 0 and float(row["effort_min"]) >= 0
    assert CANARY not in text and "DOE" not in text and "free text" not in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # years only


def test_order_and_registry_commands(people, canary_case, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["tess"]))
    argv = ["order", canary_case.pseudonym, "--indication", "trauma", "--region", "face"]
    argv += ["--service", "maxillofacial", "--due", "2027-04-05", "--json"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["order"]["service"] == "maxillofacial"
    assert cli.main(["order", canary_case.pseudonym, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["order"]["region"] == "face" and "import" in shown["minutes"]
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["rafael"]))
    out = tmp_path / "reg.csv"
    assert cli.main(["registry", "export", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith(f"{canary_case.pseudonym},trauma,face,")

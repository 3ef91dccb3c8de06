"""The case order, time spent per stage, and the registry export.

An order says why a model is made, in coded fields only: clinical indication, body region,
requesting service, due date. Its free-text note stays in the vault (never exported, never
audited). Time per stage comes from the audit trail. The registry export (in the spirit of
the ACR/RSNA 3D Printing Registry) has one row per ordered case: pseudonym, coded fields, years,
printer, material, print time and effort; no identity, no free text, no full dates.
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, date, datetime
from pathlib import Path

from app.case import Case
from app.errors import MedPrintError
from app.printing.gcode import parse_gcode
from app.security import access, audit
from app.workflow import policy, review
from app.workflow.actor import Actor

INDICATIONS = {
    "surgical-planning": "pre-operative planning",
    "trauma": "trauma / fracture reconstruction",
    "oncology": "tumour resection planning",
    "congenital": "congenital anomaly",
    "implant-design": "patient-specific implant or guide",
    "vascular": "vascular / endovascular planning",
    "cardiac": "structural heart planning",
    "education": "patient or trainee education",
    "other": "other (see the note in the vault)",
}
REGIONS = (
    "head", "face", "neck", "chest", "heart", "abdomen", "pelvis", "spine",
    "upper-limb", "lower-limb", "vascular", "other",
)  # fmt: skip
SERVICES = (
    "orthopaedics", "neurosurgery", "maxillofacial", "ent", "plastic-surgery", "cardiology",
    "cardiac-surgery", "vascular-surgery", "general-surgery", "urology", "oncology",
    "radiology", "dentistry", "paediatrics", "other",
)  # fmt: skip
# Audit actions -> the stage they belong to, in the order a case moves.
STAGES = {
    "case.import": "import",
    "segment": "segmentation",
    "mesh.build": "mesh",
    "mesh.edit": "mesh",
    "review.approve": "review",
    "review.reject": "review",
    "slice": "slicing",
    "print": "printing",
    "package.build": "package",
}
REGISTRY_COLUMNS = (
    "pseudonym", "indication", "region", "service", "year_created", "year_due",
    "mesh_versions", "approved", "printer", "material", "print_time_min", "effort_min",
)  # fmt: skip


def _coded(value: str, allowed, what: str) -> str:
    if value not in allowed:
        msg = f"unknown {what} '{value}'; choose one of: {', '.join(allowed)}"
        raise MedPrintError(msg)
    return value


def _due(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        msg = f"the due date must be YYYY-MM-DD, not '{text}'"
        raise MedPrintError(msg) from None


def set_order(
    actor: Actor,
    case: Case,
    *,
    indication: str,
    region: str,
    service: str,
    due: str,
    note: str = "",
) -> dict:
    """Record the case order (coded fields; the note stays in the vault); returns it."""
    policy.allow(actor, "order.set", case.pseudonym)
    access.check_text(note, "the note", required=False)
    order = {
        "indication": _coded(indication, INDICATIONS, "indication"),
        "region": _coded(region, REGIONS, "body region"),
        "service": _coded(service, SERVICES, "requesting service"),
        "due": _due(due),
        "note": note,
        "ordered_by": actor.user,
        "time_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    case.save_order(order)
    coded = {k: order[k] for k in ("indication", "region", "service", "due")}
    policy.record(actor, "order.set", case.pseudonym, has_note=bool(note), **coded)
    return order


def get_order(actor: Actor, case: Case) -> dict | None:
    policy.allow(actor, "case.open", case.pseudonym)
    return case.load_order()


def stage_minutes(records: list[dict], pseudonym: str) -> dict[str, float]:
    """Minutes per stage for one case: each stage runs from its first audited act to the first
    act of the next stage seen (the last stage ends at its last act)."""
    times = [
        (STAGES[r["action"]], datetime.fromisoformat(r["time"]))
        for r in records
        if r.get("case") == pseudonym and r.get("action") in STAGES
    ]
    ends = [t for _, t in times[1:]] + [t for _, t in times[-1:]]
    spent: dict[str, float] = {}
    for (stage, start), end in zip(times, ends, strict=True):
        spent[stage] = spent.get(stage, 0.0) + (end - start).total_seconds() / 60
    return {k: round(v, 2) for k, v in spent.items()}


def stage_times(actor: Actor, case: Case) -> dict[str, float]:
    """Minutes spent per stage of ``case``, from the audit trail."""
    policy.allow(actor, "audit.view", case.pseudonym)
    return stage_minutes(audit.read_records(actor.paths), case.pseudonym)


def registry_rows(actor: Actor) -> list[dict]:
    """One row per ordered case: pseudonym, coded fields and years only."""
    policy.allow(actor, "registry.export")
    records = audit.read_records(actor.paths)
    rows = []
    for entry in actor.vault.list_cases():
        case = Case(actor.vault, entry.pseudonym)
        order = case.load_order()
        if order is not None:
            rows.append(_row(actor, case, order, records, entry.created))
    return rows


def _row(actor: Actor, case: Case, order: dict, records: list[dict], created: str) -> dict:
    gcode, seconds = _latest_gcode(case)
    return {
        "pseudonym": case.pseudonym,
        "indication": order["indication"],
        "region": order["region"],
        "service": order["service"],
        "year_created": str(created)[:4],
        "year_due": order["due"][:4],
        "mesh_versions": len(case.mesh_versions()),
        "approved": "yes" if review.latest_approved(actor, case) else "no",
        "printer": gcode.get("printer", ""),
        "material": gcode.get("material", ""),
        "print_time_min": round(float(seconds) / 60, 1) if seconds else "",
        "effort_min": round(sum(stage_minutes(records, case.pseudonym).values()), 1),
    }


def _latest_gcode(case: Case) -> tuple[dict, float | None]:
    """The newest G-code's provenance and its estimated print time in seconds."""
    versions = case.gcode_versions()
    if not versions:
        return {}, None
    stored = case.load_gcode(versions[-1])
    return stored.provenance, parse_gcode(stored.text.encode("utf-8")).summary().time_s


def export_registry(actor: Actor, out: str | os.PathLike[str]) -> Path:
    """Write the registry CSV to ``out``; audited with the number of rows."""
    rows = registry_rows(actor)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=REGISTRY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    target = Path(out)
    target.write_text(text.getvalue(), encoding="utf-8")
    policy.record(actor, "registry.export", None, rows=len(rows))
    return target

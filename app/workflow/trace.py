"""Traceability: each case's chain from the scanned series to the delivered part.

Links, in order: source series (original files hashed; study and series UIDs only as SHA-256
keyed by the vault id) → segmentation → mesh version (manifest hash, author) → approval
(decision id, signer, meaning) → G-code with its profile → print job and outcome (from the
audit log) → the signed print record's steps (material and lot, printer serial, support
removal, wash, cure, sterilisation method and cycle ID, inspection, delivery; each with its
operator) → verification of the printed model.

Every link carries a hash of what is stored now and is checked against what was signed when it
was made: the audit log's signed record of the act (``case.import``, ``segmentation.save``,
``mesh.build``, ``slice``, ``record.step``, ``verify_print``) and, for approvals and steps,
the record's own signature. A stored artefact changed afterwards makes exactly its link
``broken``; nothing is hidden. A link with no signed reference (made by an older version) is
``unverified``; one not reached yet is ``pending``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from app.case import Case
from app.errors import MedPrintError
from app.security import audit, esign
from app.security.signing import utc_now
from app.tools.mesh.records_pdf import table_pdf
from app.workflow import names, policy, review
from app.workflow.actor import Actor

OK, BROKEN, UNVERIFIED, PENDING, ATTENTION = "ok", "broken", "unverified", "pending", "attention"
STEPS = (
    "material",
    "printer",
    "support-removal",
    "wash",
    "cure",
    "sterilisation",
    "inspection",
    "delivery",
)
STEP_FIELDS = ("lot", "serial", "method", "cycle_id")
_STEP_CONTEXT = b"medprint-print-step-1\n"
_TRACE_CONTEXT = b"medprint-trace-1\n"
WITHHELD = "(withheld: names the patient)"


@dataclass(frozen=True)
class Link:
    """One link of the chain: what it is, its hash now, whether that matches what was signed."""

    name: str
    status: str
    sha256: str | None
    message: str
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Trace:
    case: str
    links: list[Link]
    made_utc: str

    @property
    def broken(self) -> list[Link]:
        return [link for link in self.links if link.status == BROKEN]

    @property
    def ok(self) -> bool:
        return not self.broken

    def to_dict(self) -> dict:
        return {
            "case": self.case,
            "made_utc": self.made_utc,
            "ok": self.ok,
            "links": [asdict(link) for link in self.links],
        }


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sha256_of(obj: object) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


# --- recording steps ----------------------------------------------------------------------------


def record_step(
    actor: Actor,
    case: Case,
    step: str,
    *,
    detail: str = "",
    **fields: str | None,
) -> dict:
    """Add a signed step to the case's print record (audited ``record.step``, no free text).

    ``step`` is one of :data:`STEPS`; ``fields`` any of :data:`STEP_FIELDS` (a lot number, a
    printer serial, a sterilisation method or cycle ID). Returns the signed step.
    """
    policy.allow(actor, "record.step", case.pseudonym)
    if step not in STEPS:
        msg = f"unknown step '{step}'; choose one of {', '.join(STEPS)}"
        raise MedPrintError(msg)
    given = {k: v for k, v in fields.items() if v}
    unknown = sorted(set(given) - set(STEP_FIELDS))
    if unknown:
        msg = f"a step has no field {', '.join(unknown)}; use {', '.join(STEP_FIELDS)}"
        raise MedPrintError(msg)
    for key, value in given.items():
        names.check_outgoing(actor, case, value, what=key.replace("_", " "), action="record.step")
    if len(detail) > 500:
        msg = "the detail is limited to 500 characters"
        raise MedPrintError(msg)
    body = {
        "type": "print-step",
        "id": str(uuid.uuid4()),
        "case": case.pseudonym,
        "step": step,
        "detail": detail,
        "fields": given,
        "operator": actor.user,
        "time_utc": utc_now(),
        "signer_key": actor.keys.public.fingerprint,
    }
    signed = body | {"signature": _sign(actor, _STEP_CONTEXT + canonical(body))}
    case.save_print_record([*case.print_record(), signed])
    policy.record(
        actor, "record.step", case.pseudonym, step=step, record_id=body["id"],
        sha256=sha256_of(signed), fields=sorted(given),
    )  # fmt: skip
    return signed


def _sign(actor: Actor, data: bytes) -> str:
    return base64.b64encode(actor.keys.sign(data)).decode("ascii")


# --- the chain ----------------------------------------------------------------------------------


@dataclass
class _Context:
    """What every link is checked against: the case's signed audit records and the lab."""

    case: Case
    records: list[dict]
    lab: esign.Lab
    identity: names.Identity
    vault_id: str
    version: int | None = None  # the mesh version of the chain (default: see _chosen_version)
    gcode: int | None = None  # its G-code (default: the newest sliced from that version)

    def last(self, action: str, **match: object) -> dict | None:
        found = [r for r in self.records if r["action"] == action and _matches(r, match)]
        return found[-1] if found else None

    def all(self, actions: Iterable[str], **match: object) -> list[dict]:
        wanted = set(actions)
        return [r for r in self.records if r["action"] in wanted and _matches(r, match)]


def _matches(record: dict, match: dict) -> bool:
    return all(record.get("facts", {}).get(k) == v for k, v in match.items())


def trace(actor: Actor, case: Case) -> Trace:
    """The case's chain with every link checked (audited ``trace.view``)."""
    policy.allow(actor, "trace.view", case.pseudonym)
    result = build(actor, case)
    policy.record(
        actor, "trace.view", case.pseudonym, links=len(result.links), broken=len(result.broken)
    )
    return result


def build(
    actor: Actor, case: Case, *, version: int | None = None, gcode: int | None = None
) -> Trace:
    """The chain without the audit record of viewing it (for reports that embed it); with
    ``version`` and ``gcode``, the chain of that mesh version and G-code (what a package or a
    review report carries), else of the newest G-code's version."""
    records = [r for r in audit.read_records(actor.paths) if r.get("case") == case.pseudonym]
    identity = names.identity_of(actor, case)
    ctx = _Context(case, records, review.lab(actor), identity, actor.vault.vault_id, version, gcode)
    links = [_series(ctx), _segmentation(ctx)]
    mesh_link, mesh_sha = _mesh(ctx)
    links += [mesh_link, _approval(ctx, mesh_sha)]
    gcode_link, gcode_sha = _gcode(ctx, mesh_sha)
    links += [gcode_link, _print_job(ctx, gcode_sha), *_steps(ctx), _verification(ctx, mesh_sha)]
    return Trace(case.pseudonym, links, utc_now())


def _compare(name: str, current: str | None, signed: str | None, facts: dict, what: str) -> Link:
    if current is None:
        return Link(name, PENDING, None, f"no {what} yet", facts)
    if signed is None:
        return Link(name, UNVERIFIED, current, f"{what}: no signed hash to check against", facts)
    if current != signed:
        msg = f"{what} changed after it was recorded (stored {current[:12]}…, signed "
        return Link(name, BROKEN, current, msg + f"{signed[:12]}…)", facts)
    return Link(name, OK, current, f"{what} matches its signed record", facts)


def _series(ctx: _Context) -> Link:
    names_ = ctx.case.original_names()
    facts = {"files": len(names_), **_uid_hashes(ctx)}
    facts["modality"] = ctx.case.series_facts().get("modality")
    record = ctx.last("case.import") or {}
    facts["time_utc"] = record.get("time")
    signed = record.get("facts", {}).get("series_sha256")
    return _compare("series", ctx.case.originals_sha256(), signed, facts, "the source series")


def _uid_hashes(ctx: _Context) -> dict:
    """The study and series UIDs of the first original, hashed with the vault id as key."""
    names_ = ctx.case.original_names()
    if not names_:
        return {}
    import io  # noqa: PLC0415

    import pydicom  # noqa: PLC0415

    header = pydicom.dcmread(
        io.BytesIO(ctx.case.load_original(names_[0])), stop_before_pixels=True, force=True
    )
    out = {}
    for key, tag in (
        ("study_uid_sha256", "StudyInstanceUID"),
        ("series_uid_sha256", "SeriesInstanceUID"),
    ):
        uid = str(getattr(header, tag, "") or "")
        if uid:
            out[key] = hashlib.sha256(f"{ctx.vault_id}:{uid}".encode()).hexdigest()
    return out


def _segmentation(ctx: _Context) -> Link:
    record = ctx.last("segmentation.save") or {}
    signed = record.get("facts", {}).get("sha256")
    current = ctx.case.segmentation_sha256()
    facts = {"time_utc": record.get("time")}
    return _compare("segmentation", current, signed, facts, "the segmentation")


def _chosen_version(ctx: _Context) -> int | None:
    """The mesh version of the chain: the one asked for, else that of the latest G-code, else
    the latest version."""
    case = ctx.case
    if ctx.version is not None:
        return ctx.version
    for number in reversed(case.gcode_versions()):
        found = case.find_mesh_version(str(case.gcode_provenance(number).get("mesh_sha256")))
        if found is not None:
            return found
    versions = case.mesh_versions()
    return versions[-1] if versions else None


def _mesh(ctx: _Context) -> tuple[Link, str | None]:
    number = _chosen_version(ctx)
    if number is None:
        return Link("mesh", PENDING, None, "no mesh version yet"), None
    case = ctx.case
    info, manifest = case.mesh_info(number), case.mesh_manifest(number)
    facts = {
        "version": number,
        "author": info.get("author"),
        "operation": info.get("operation"),
        "parent": info.get("parent_version"),
        "parts": [p["name"] for p in manifest["parts"]],
        "time_utc": info.get("time_utc"),
    }
    made = ctx.all(("mesh.build", "mesh.edit", "mesh.import", "pacs.open_model"), version=number)
    signed = made[-1]["facts"].get("sha256") if made else None
    link = _compare("mesh", case.mesh_sha256(number), signed, facts, f"mesh v{number}")
    try:
        case.load_mesh_version(number)  # every part against the manifest
    except MedPrintError as exc:
        link = Link("mesh", BROKEN, link.sha256, str(exc), facts)
    return link, signed or link.sha256


def _approval(ctx: _Context, mesh_sha: str | None) -> Link:
    decisions = [
        r
        for r in ctx.case.load_decisions()
        if r.get("type") == "decision" and r.get("mesh_sha256") == mesh_sha
    ]
    if mesh_sha is None or not decisions:
        return Link("approval", PENDING, None, "not reviewed yet")
    record = decisions[-1]
    facts = {
        "decision_id": record.get("id"),
        "decision": record.get("decision"),
        "signer": record.get("signer"),
        "role": record.get("role"),
        "meaning": record.get("meaning"),
        "time_utc": record.get("time_utc"),
    }
    digest = sha256_of({k: v for k, v in record.items() if k not in esign.UNSIGNED_FIELDS})
    problem = esign.check(record, ctx.lab.state)
    if problem is not None:
        return Link("approval", BROKEN, digest, problem.message, facts)
    action = f"review.{record.get('decision')}"
    audited = ctx.last(action, record_id=record.get("id"))
    if audited is None or audited["facts"].get("mesh_sha256") != mesh_sha:
        msg = "the decision is not in the audit log for this mesh"
        return Link("approval", BROKEN, digest, msg, facts)
    status = OK if record.get("decision") == "approved" else ATTENTION
    return Link("approval", status, digest, f"{record.get('meaning')}, signature verified", facts)


def _gcode(ctx: _Context, mesh_sha: str | None) -> tuple[Link, str | None]:
    case = ctx.case
    numbers = [
        n
        for n in case.gcode_versions()
        if mesh_sha and case.gcode_provenance(n).get("mesh_sha256") == mesh_sha
    ]
    if ctx.gcode is not None:
        numbers = [ctx.gcode]
    if not numbers:
        return Link("gcode", PENDING, None, "not sliced yet"), None
    number = numbers[-1]
    prov = case.gcode_provenance(number)
    facts = {
        "number": number,
        "printer": prov.get("printer"),
        "material": prov.get("material"),
        "engine": prov.get("engine"),
        "layer_height": (prov.get("settings") or {}).get("layer_height"),
    }
    record = ctx.last("slice", gcode_version=number) or {}
    facts["time_utc"] = record.get("time")
    signed = record.get("facts", {}).get("gcode_sha256")
    current = case.load_gcode(number).sha256
    return _compare("gcode", current, signed, facts, f"G-code g{number}"), signed


def _print_job(ctx: _Context, gcode_sha: str | None) -> Link:
    ends = ("print.finish", "print.error", "print.cancelled", "print.disconnect", "print.cancel")
    events = ctx.all(("print.start", *ends), gcode_sha256=gcode_sha) if gcode_sha else []
    if not events:
        return Link("print", PENDING, None, "not printed yet (or printed outside MedPrint)")
    start = [e for e in events if e["action"] == "print.start"]
    last = events[-1]
    facts = {
        "job": last["facts"].get("job"),
        "profile": last["facts"].get("profile"),
        "transport": last["facts"].get("transport"),
        "started_utc": start[-1]["time"] if start else None,
        "outcome": last["action"].removeprefix("print."),
        "operator": last["user"],
        **_machine(ctx, last["facts"]),
    }
    status = OK if last["action"] == "print.finish" else ATTENTION
    if last["action"] == "print.start":
        status = PENDING
    digest = audit.line_hash(canonical(last))
    return Link("print", status, digest, f"job {facts['outcome']}", facts)


def _machine(ctx: _Context, facts: dict) -> dict:
    """The printer's serial number as the job recorded it (reported by the printer, else its
    profile's), else from a signed ``printer`` step; where it came from; the machine model."""
    serial, source = facts.get("serial"), facts.get("serial_source")
    if not serial:
        steps = [s for s in ctx.case.print_record() if s.get("step") == "printer"]
        serial = steps[-1].get("fields", {}).get("serial") if steps else None
        source = "printer step" if serial else None
    return {"serial": serial, "serial_source": source, "machine": facts.get("machine")}


def _steps(ctx: _Context) -> list[Link]:
    stored = ctx.case.print_record()
    audited = {r["facts"].get("record_id"): r for r in ctx.all(("record.step",))}
    links = [_step_link(ctx, step, audited.pop(step.get("id"), None)) for step in stored]
    for record in audited.values():  # signed in the log, gone from the case
        name = f"step:{record['facts'].get('step')}"
        links.append(Link(name, BROKEN, None, "recorded in the audit log, missing from the case"))
    return links


def _step_link(ctx: _Context, step: dict, audited: dict | None) -> Link:
    name = f"step:{step.get('step')}"
    detail = str(step.get("detail") or "")
    facts = {
        "operator": step.get("operator"),
        "time_utc": step.get("time_utc"),
        "detail": WITHHELD if ctx.identity.found_in(detail) else detail,
        **dict(step.get("fields") or {}),
    }
    digest = sha256_of(step)
    if not _step_signed(ctx, step):
        return Link(name, BROKEN, digest, "the step fails its signature (changed or forged)", facts)
    signed = audited["facts"].get("sha256") if audited else None
    if signed is None:
        return Link(name, BROKEN, digest, "the step is not in the audit log", facts)
    return _compare(name, digest, signed, facts, "the step")


def _step_signed(ctx: _Context, step: dict) -> bool:
    identity = ctx.lab.state.identities.get(str(step.get("operator")))
    if identity is None or identity.fingerprint != step.get("signer_key"):
        return False
    body = {k: v for k, v in step.items() if k != "signature"}
    try:
        signature = base64.b64decode(str(step.get("signature")), validate=True)
    except ValueError:
        return False
    return identity.signing_key.verify(signature, _STEP_CONTEXT + canonical(body))


def _verification(ctx: _Context, mesh_sha: str | None) -> Link:
    numbers = ctx.case.verifications()
    if not numbers:
        return Link("verification", PENDING, None, "the printed model is not verified yet")
    number = numbers[-1]
    report = ctx.case.load_verification(number)
    check = report.get("check") or {}
    facts = {
        "number": number,
        "verdict": check.get("verdict"),
        "p95_mm": (check.get("deviation") or {}).get("p95_mm"),
        "tolerance_mm": check.get("tolerance_mm"),
        "mesh_version": report.get("mesh_version"),
        "operator": report.get("operator"),
    }
    signed = (ctx.last("verify_print", number=number) or {}).get("facts", {}).get("sha256")
    link = _compare("verification", sha256_of(report), signed, facts, f"verification {number}")
    if link.status == OK and report.get("mesh_sha256") != mesh_sha:
        return Link(link.name, ATTENTION, link.sha256, "verified against another mesh", facts)
    if link.status == OK and check.get("verdict") != "pass":
        return Link(link.name, ATTENTION, link.sha256, str(check.get("message")), facts)
    return link


# --- the chain as it leaves the vault -----------------------------------------------------------

CHAIN_FORMAT = "medprint-chain"
_KEPT_IN_VAULT = ("detail",)  # free text stays in the vault


def public(chain: Trace) -> dict:
    """The chain as a package or report carries it: pseudonym, hashes (the series' UIDs only
    keyed by the vault id), roles and times; a step's free-text detail stays in the vault."""
    body = {"format": CHAIN_FORMAT, "format_version": 1, **chain.to_dict()}
    for link in body["links"]:
        link["facts"] = {k: v for k, v in link["facts"].items() if k not in _KEPT_IN_VAULT}
    return body


# --- the signed record PDF ----------------------------------------------------------------------


def record_pdf(actor: Actor, case: Case) -> tuple[bytes, Trace]:
    """The print record for the patient's file: pseudonym, chain table with statuses, signed by
    the actor over the chain's JSON (audited ``trace.export`` with the PDF's hash)."""
    policy.allow(actor, "trace.view", case.pseudonym)
    chain = build(actor, case)
    body = chain.to_dict()
    signature = _sign(actor, _TRACE_CONTEXT + canonical(body))
    rows = [
        [link.name, link.status, (link.sha256 or "")[:16], _fact_text(link.facts), link.message]
        for link in chain.links
    ]
    lines = [
        f"Case {case.pseudonym}    made {chain.made_utc}    by {actor.user}",
        f"Chain {'intact' if chain.ok else 'BROKEN: ' + ', '.join(x.name for x in chain.broken)}",
    ]
    footer = [
        f"chain sha256 {sha256_of(body)}",
        f"signed by {actor.user}, key {actor.keys.public.fingerprint}",
        f"signature {signature[:60]}",
        f"          {signature[60:]}",
    ]
    pdf = table_pdf(
        "Print record",
        lines,
        ["link", "status", "sha256", "facts", "check"],
        rows,
        footer,
        keywords=f"medprint-trace sha256={sha256_of(body)} signature={signature}",
    )
    policy.record(
        actor, "trace.export", case.pseudonym, sha256=hashlib.sha256(pdf).hexdigest(),
        chain_sha256=sha256_of(body), broken=len(chain.broken),
    )  # fmt: skip
    return pdf, chain


def _fact_text(facts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in facts.items() if v not in (None, "", []))

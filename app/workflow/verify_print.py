"""Verification of a printed model against its approved mesh, and the printers' QA trend.

:func:`verify_print` reads a surface scan of the printed part (STL/PLY/OBJ in the units the user
declares) or a CT of it (a DICOM folder or an image file, segmented by a threshold), checks it
against the case's approved mesh version (:mod:`app.tools.mesh.verify`), stores the report in
the case (``verify/vN.json``, signed by the actor), audits ``verify_print`` with the report's
hash (the trace's verification link) and returns it; :func:`report_pdf` makes its PDF.

The lab's calibration phantom (:mod:`app.tools.mesh.phantom`) is printed as lab QA, outside any
case and its approval gate: :func:`lab_qa_verify` checks a scan of it and keeps the result per
printer in the vault's records (audited ``lab_qa.verify``); :func:`lab_qa_trend` gives mean and
p95 per print over time and warns when the latest p95 passes the printer's limit.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from app.case import Case
from app.errors import MedPrintError
from app.security.signing import utc_now
from app.tools.mesh.core import concatenate, make_mesh
from app.tools.mesh.meshio import read_mesh_bytes, read_mesh_file
from app.tools.mesh.phantom import calibration_phantom
from app.tools.mesh.records_pdf import table_pdf, trend_png
from app.tools.mesh.verify import DEFAULT_TOLERANCE_MM, ScanCheck, check_scan, mesh_from_mask
from app.workflow import policy, review, trace
from app.workflow.actor import Actor

CT_THRESHOLD_HU = -300.0  # printed plastic and resin against air
LAB_QA_RECORD = "lab-qa"
DEFAULT_QA_LIMIT_MM = 0.3
_PRINTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REPORT_CONTEXT = b"medprint-verification-1\n"


@dataclass(frozen=True)
class Verification:
    """A stored verification: its number in the case, the report and the check behind it."""

    number: int
    report: dict
    check: ScanCheck

    @property
    def passed(self) -> bool:
        return self.check.passed


def read_scan(path: Path, *, threshold_hu: float = CT_THRESHOLD_HU) -> trimesh.Trimesh:
    """A scan of the printed part: a mesh file, or a CT (DICOM folder or image file)
    segmented at ``threshold_hu`` (its largest connected piece)."""
    path = Path(path)
    if not path.exists():
        msg = "the scan of the print was not found; check the file or folder"
        raise MedPrintError(msg)
    if path.is_file() and path.suffix.lower() in {".stl", ".ply", ".obj", ".3mf"}:
        return make_mesh(*read_mesh_file(path))
    return _ct_scan(path, threshold_hu)


def _ct_scan(path: Path, threshold_hu: float) -> trimesh.Trimesh:
    from scipy import ndimage  # noqa: PLC0415

    from app.imaging.load import load_image_file, load_series  # noqa: PLC0415

    volume = load_series(path) if path.is_dir() else load_image_file(path)
    labels, count = ndimage.label(volume.array >= threshold_hu)
    if count == 0:
        msg = "the CT of the print shows nothing above the threshold; is the part in view?"
        raise MedPrintError(msg)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return mesh_from_mask(labels == sizes.argmax(), volume)


def approved_mesh(actor: Actor, case: Case, version: int | None) -> tuple[int, trimesh.Trimesh]:
    """Mesh ``version`` (default: the latest approved) as one mesh; refused when not approved."""
    number = version if version is not None else review.latest_approved(actor, case)
    if number is None:
        msg = f"case {case.pseudonym} has no approved mesh version to verify against"
        raise MedPrintError(msg)
    if not review.status(actor, case, number).approved:
        msg = f"mesh v{number} of {case.pseudonym} is not approved; verify against the approved "
        msg += "version"
        raise MedPrintError(msg)
    stored = case.load_mesh_version(number)
    parts = [make_mesh(*read_mesh_bytes(data, "stl")) for data in stored.parts.values()]
    return number, concatenate(parts)


def verify_print(
    actor: Actor,
    case: Case,
    scan_path: Path,
    *,
    units: str = "mm",
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    version: int | None = None,
    landmarks: tuple[np.ndarray, np.ndarray] | None = None,
    threshold_hu: float = CT_THRESHOLD_HU,
) -> Verification:
    """Check a scan of the printed part against the approved mesh; stored, signed, audited.

    ``landmarks``: three or more picked pairs (scan points in the scan's units, plan points in
    mm) for the coarse alignment; ``threshold_hu`` segments a CT of the print."""
    policy.allow(actor, "verify_print", case.pseudonym)
    number, plan = approved_mesh(actor, case, version)
    check = check_scan(
        read_scan(Path(scan_path), threshold_hu=threshold_hu), plan, units=units,
        tolerance_mm=tolerance_mm, landmarks=landmarks,
    )  # fmt: skip
    body = {
        "type": "verification",
        "case": case.pseudonym,
        "mesh_version": number,
        "mesh_sha256": case.mesh_sha256(number),
        "scan_kind": "mesh" if Path(scan_path).is_file() else "ct",
        "check": check.to_dict(),
        "operator": actor.user,
        "time_utc": utc_now(),
        "signer_key": actor.keys.public.fingerprint,
    }
    report = body | {"signature": _sign(actor, body)}
    stored = case.save_verification(report)
    policy.record(
        actor, "verify_print", case.pseudonym, number=stored, mesh_version=number,
        verdict=check.verdict, p95_mm=_p95(check), sha256=trace.sha256_of(report),
    )  # fmt: skip
    return Verification(stored, report, check)


def _sign(actor: Actor, body: dict) -> str:
    return base64.b64encode(actor.keys.sign(_REPORT_CONTEXT + trace.canonical(body))).decode()


def _p95(check: ScanCheck) -> float | None:
    return None if check.deviation is None else round(check.deviation.p95_mm, 4)


def report_pdf(actor: Actor, case: Case, number: int | None = None) -> bytes:
    """The PDF of verification ``number`` (default: the latest) with the case's chain."""
    policy.allow(actor, "trace.view", case.pseudonym)
    numbers = case.verifications()
    if not numbers:
        msg = f"case {case.pseudonym} has no verification yet"
        raise MedPrintError(msg)
    report = case.load_verification(number or numbers[-1])
    check = report["check"]
    dev = check.get("deviation") or {}
    reg = check.get("registration") or {}
    lines = [
        f"Case {case.pseudonym}    mesh v{report['mesh_version']}    by {report['operator']}"
        f"    {report['time_utc']}",
        f"Verdict: {check['verdict'].upper()}    {check['message']}",
        f"Registration residual {reg.get('residual_mm')} mm ({reg.get('method')}), mirrored fit "
        f"{reg.get('reflected_residual_mm')} mm; scan in {check['units']}",
        f"Deviation mean {dev.get('mean_mm')} mm, p95 {dev.get('p95_mm')} mm, max "
        f"{dev.get('max_mm')} mm; tolerance {check['tolerance_mm']} mm",
    ]
    rows = [
        [f"{i + 1}", ", ".join(str(c) for c in r["centre_mm"]), str(r["size_mm"]),
         str(r["area_mm2"]), str(r["peak_mm"])]
        for i, r in enumerate(dev.get("regions", [])[:30])
    ]  # fmt: skip
    footer = [
        f"report sha256 {trace.sha256_of(report)}",
        f"signed by {report['operator']}, key {report['signer_key']}",
    ]
    return table_pdf(
        "Verification of the printed model",
        lines,
        ["region", "centre (mm)", "size (mm)", "area (mm²)", "peak (mm)"],
        rows,
        footer,
    )


# --- lab QA: the calibration phantom per printer ---------------------------------------------


def lab_qa_verify(
    actor: Actor,
    printer: str,
    scan_path: Path,
    *,
    units: str = "mm",
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
) -> dict:
    """Check a scan of the printed calibration phantom; stored per printer (vault records)."""
    policy.allow(actor, "lab_qa")
    _check_printer(printer)
    check = check_scan(read_scan(Path(scan_path)), calibration_phantom(), units=units,
                       tolerance_mm=tolerance_mm)  # fmt: skip
    entry = {
        "printer": printer,
        "time_utc": utc_now(),
        "operator": actor.user,
        "verdict": check.verdict,
        "mean_mm": None if check.deviation is None else round(check.deviation.mean_mm, 4),
        "p95_mm": _p95(check),
        "residual_mm": None if check.registration is None else check.registration.residual_mm,
    }
    history = _lab_history(actor)
    history.setdefault(printer, []).append(entry)
    actor.vault.put_record(LAB_QA_RECORD, json.dumps(history, sort_keys=True).encode())
    policy.record(actor, "lab_qa.verify", None, printer=printer, verdict=check.verdict,
                  p95_mm=entry["p95_mm"], mean_mm=entry["mean_mm"])  # fmt: skip
    return entry | {"message": check.message}


def _check_printer(printer: str) -> None:
    if not _PRINTER_RE.match(printer):
        msg = "a printer is named by letters, digits, '.', '_' and '-' (its profile or serial)"
        raise MedPrintError(msg)


def _lab_history(actor: Actor) -> dict[str, list[dict]]:
    raw = actor.vault.get_record(LAB_QA_RECORD)
    return json.loads(raw) if raw else {}


@dataclass(frozen=True)
class Trend:
    printer: str
    prints: list[dict]
    limit_mm: float
    warning: str | None

    def to_dict(self) -> dict:
        return {
            "printer": self.printer,
            "limit_mm": self.limit_mm,
            "warning": self.warning,
            "prints": self.prints,
        }

    def png(self) -> bytes:
        measured = [p for p in self.prints if p.get("p95_mm") is not None]
        return trend_png(
            f"Calibration phantom, printer {self.printer}",
            [p["time_utc"] for p in measured],
            [p["mean_mm"] for p in measured],
            [p["p95_mm"] for p in measured],
            self.limit_mm,
        )


def lab_qa_trend(actor: Actor, printer: str, *, limit_mm: float = DEFAULT_QA_LIMIT_MM) -> Trend:
    """The phantom prints of ``printer`` over time, with a warning when it drifts past
    ``limit_mm`` (the latest p95 beyond it, or three rising p95 in a row ending near it)."""
    policy.allow(actor, "trace.view")
    _check_printer(printer)
    prints = _lab_history(actor).get(printer, [])
    p95 = [p["p95_mm"] for p in prints if p.get("p95_mm") is not None]
    warning = None
    if p95 and p95[-1] > limit_mm:
        warning = f"printer {printer} drifted past its limit: p95 {p95[-1]:.2f} mm > "
        warning += f"{limit_mm:.2f} mm; recalibrate it before printing for patients"
    elif len(p95) >= 3 and p95[-3] < p95[-2] < p95[-1] and p95[-1] > 0.8 * limit_mm:
        warning = f"printer {printer} is drifting: p95 rose three prints in a row to "
        warning += f"{p95[-1]:.2f} mm (limit {limit_mm:.2f} mm)"
    policy.record(actor, "lab_qa.trend", None, printer=printer, prints=len(prints))
    return Trend(printer, prints, limit_mm, warning)

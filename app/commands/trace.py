"""``medprint record``, ``medprint trace``, ``medprint verify-print`` and ``medprint lab-qa``.

After the print: signed post-processing steps, the case's chain from scan to part (JSON or a
signed PDF for the patient's file), verification of the printed model against the approved
mesh, and the printers' calibration-phantom trend.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.atomic import atomic_write_bytes
from app.errors import MedPrintError
from app.tools.mesh.verify import DEFAULT_TOLERANCE_MM, UNITS
from app.workflow import intake, trace, verify_print
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    record = sub.add_parser("record", help="add a signed step to a case's print record")
    record.add_argument("case", help="case pseudonym")
    record.add_argument("--step", required=True, choices=trace.STEPS)
    record.add_argument("--detail", default="", help="what was done (stays in the vault)")
    for name in trace.STEP_FIELDS:
        record.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="TEXT")
    record.add_argument("--json", action="store_true")
    record.set_defaults(func=_record)

    chain = sub.add_parser("trace", help="the case's chain from scan to part, every link checked")
    chain.add_argument("case", help="case pseudonym")
    chain.add_argument("--json", action="store_true")
    chain.add_argument("--pdf", type=Path, metavar="FILE", help="write the signed record PDF")
    chain.set_defaults(func=_trace)

    check = sub.add_parser("verify-print", help="check a scan of the printed model")
    check.add_argument("case", help="case pseudonym")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--scan", type=Path, help="STL/PLY/OBJ scan of the printed part")
    source.add_argument("--scan-dicom", type=Path, metavar="DIR", help="a CT of the printed part")
    check.add_argument(
        "--threshold", type=float, default=verify_print.CT_THRESHOLD_HU, metavar="HU",
        help="segments the CT of the print (default %(default)s HU: resin or plastic in air)",
    )  # fmt: skip
    marks = check.add_mutually_exclusive_group()
    marks.add_argument(
        "--landmarks", type=Path, metavar="FILE",
        help='three picked pairs: {"scan": [[x,y,z],...], "plan": [[x,y,z],...]}',
    )  # fmt: skip
    marks.add_argument(
        "--landmark", action="append", metavar="SX,SY,SZ:PX,PY,PZ",
        help="one picked pair (scan point : plan point); give it three times or more",
    )  # fmt: skip
    _scan_options(check)
    check.add_argument("--version", type=int, metavar="N", help="approved mesh version")
    check.add_argument("--pdf", type=Path, metavar="FILE", help="write the report PDF")
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=_verify)

    lab = sub.add_parser("lab-qa", help="the calibration phantom per printer")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    lab_verify = lab_sub.add_parser("verify", help="check a scan of a printed phantom")
    lab_verify.add_argument("--printer", required=True)
    lab_verify.add_argument("--scan", required=True, type=Path)
    _scan_options(lab_verify)
    lab_verify.add_argument("--json", action="store_true")
    lab_verify.set_defaults(func=_lab_verify)
    trend = lab_sub.add_parser("trend", help="mean and p95 per phantom print over time")
    trend.add_argument("--printer", required=True)
    trend.add_argument("--limit", type=float, default=verify_print.DEFAULT_QA_LIMIT_MM)
    trend.add_argument("--png", type=Path, metavar="FILE")
    trend.add_argument("--json", action="store_true")
    trend.set_defaults(func=_trend)


def _scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--units", choices=list(UNITS), default="mm", help="the scan's units")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_MM, metavar="MM")


def _record(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    fields = {name: getattr(args, name) for name in trace.STEP_FIELDS}
    step = trace.record_step(actor, case, args.step, detail=args.detail, **fields)
    if args.json:
        print(json.dumps({k: v for k, v in step.items() if k != "signature"}, indent=1))
    else:
        print(f"{case.pseudonym}: {args.step} recorded and signed by {actor.user} ({step['id']})")
    return 0


def _trace(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    if args.pdf:
        pdf, chain = trace.record_pdf(actor, case)
        atomic_write_bytes(args.pdf, pdf)
    else:
        chain = trace.trace(actor, case)
    if args.json:
        print(json.dumps(chain.to_dict(), indent=1))
    else:
        for link in chain.links:
            print(
                f"{link.status:<10} {link.name:<22} {(link.sha256 or '')[:12]:<12} {link.message}"
            )
    return 0 if chain.ok else 1


def _verify(args: argparse.Namespace) -> int:
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    done = verify_print.verify_print(
        actor, case, args.scan or args.scan_dicom, units=args.units,
        tolerance_mm=args.tolerance, version=args.version, landmarks=_landmarks(args),
        threshold_hu=args.threshold,
    )  # fmt: skip
    if args.pdf:
        atomic_write_bytes(args.pdf, verify_print.report_pdf(actor, case, done.number))
    if args.json:
        print(json.dumps({"number": done.number} | done.check.to_dict(), indent=1))
    else:
        print(f"{case.pseudonym} verification {done.number}: {done.check.message}")
    return 0 if done.passed else 1


def _landmarks(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray] | None:
    """The picked pairs of ``--landmarks FILE`` or the repeated ``--landmark``."""
    if args.landmarks:
        try:
            found = json.loads(args.landmarks.read_text(encoding="utf-8"))
            pairs = (found["scan"], found["plan"])
        except (OSError, ValueError, KeyError, TypeError):
            msg = 'the landmarks file must be JSON: {"scan": [[x,y,z],...], "plan": [...]}'
            raise MedPrintError(msg) from None
    elif args.landmark:
        try:
            split = [text.split(":") for text in args.landmark]
            pairs = tuple([[float(v) for v in p[i].split(",")] for p in split] for i in (0, 1))
        except (ValueError, IndexError):
            msg = "a landmark is 'SX,SY,SZ:PX,PY,PZ' (the scan's point, then the plan's)"
            raise MedPrintError(msg) from None
    else:
        return None
    return _point_pairs(*pairs)


def _point_pairs(scan: object, plan: object) -> tuple[np.ndarray, np.ndarray]:
    try:
        points = np.asarray(scan, dtype=float), np.asarray(plan, dtype=float)
    except (ValueError, TypeError):
        points = np.zeros(0), np.zeros(0)
    shapes = {p.shape for p in points}
    if len(shapes) != 1 or points[0].ndim != 2 or points[0].shape[1] != 3 or len(points[0]) < 3:
        msg = "landmarks are three or more pairs of x,y,z points (as many on the scan as on "
        raise MedPrintError(msg + "the plan)")
    return points


def _lab_verify(args: argparse.Namespace) -> int:
    entry = verify_print.lab_qa_verify(
        Actor.current(), args.printer, args.scan, units=args.units, tolerance_mm=args.tolerance
    )
    print(json.dumps(entry, indent=1) if args.json else f"{args.printer}: {entry['message']}")
    return 0 if entry["verdict"] == "pass" else 1


def _trend(args: argparse.Namespace) -> int:
    found = verify_print.lab_qa_trend(Actor.current(), args.printer, limit_mm=args.limit)
    if args.png:
        atomic_write_bytes(args.png, found.png())
    if args.json:
        print(json.dumps(found.to_dict(), indent=1))
    else:
        for p in found.prints:
            print(f"{p['time_utc']}  {p['verdict']:<12} mean {p['mean_mm']}  p95 {p['p95_mm']}")
        if found.warning:
            print(f"WARNING: {found.warning}")
    return 1 if found.warning else 0

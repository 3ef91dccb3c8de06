"""``medprint print CASE [--gcode-version N] --printer P (--port PORT | --url URL)``: print headless.

Prints a G-code stored in the case (``medprint slice CASE``); it must come from an approved mesh
version of the case. A loose file (``--gcode-file F``) needs an administrator's ``--override
--reason TEXT`` (or an override recorded before). Streams over USB (Marlin) or hands the job to
OctoPrint/Moonraker/PrusaLink, with a progress bar on stderr and one line per state change.
A resin printer on PrusaLink (SL1S) prints the stored resin slicing (``--sla-version N``); a
Formlabs printer prints the approved mesh version itself (``--mesh-version N``), prepared by
PreForm, on ``--device NAME`` (default: the only printer PreForm sees). Ctrl+C cancels
the print safely (heaters off, head parked, motors off). ``--list-ports`` shows the serial
ports, printer-like ones first.
Exit status: 0 finished, 1 cancelled, 2 error or refusal (the message says what to do), 3 the
connection was lost (the message says how to resume with ``--resume-after``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from app.case import Case
from app.commands.output import add_json, show
from app.errors import PrintingError
from app.printing.job import JobStatus, PrintJob
from app.printing.marlin import PrinterState
from app.workflow import intake, printing
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "print",
        help="print a case's stored G-code, resin slicing or approved mesh on a printer",
        description="Print stored G-code of CASE on the printer of profile P; Ctrl+C cancels "
        "safely. The G-code must come from an approved mesh version of the case.",
    )
    parser.add_argument("case", nargs="?", help="case pseudonym")
    parser.add_argument(
        "--gcode-version", type=int, metavar="N", help="stored G-code (default: the latest)"
    )
    parser.add_argument(
        "--gcode-file", type=Path, metavar="FILE", help="a G-code file not sliced here"
    )
    parser.add_argument(
        "--override",
        action="store_true",
        help="administrator: record a foreign-gcode override for --gcode-file (with --reason)",
    )
    parser.add_argument("--reason", help="why the loose G-code file may be printed")
    parser.add_argument("--printer", metavar="PROFILE", help="printer profile id or name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", help="USB serial port (overrides the profile), or 'auto'")
    where.add_argument("--url", help="the printer's or PreForm's URL (overrides the profile)")
    parser.add_argument(
        "--kind",
        choices=("octoprint", "moonraker", "prusalink", "formlabs"),
        help="the server behind --url",
    )
    parser.add_argument(
        "--sla-version", type=int, metavar="N", help="resin: stored slicing (default: latest)"
    )
    parser.add_argument(
        "--mesh-version", type=int, metavar="N", help="Formlabs: mesh version (default: latest)"
    )
    parser.add_argument("--device", help="Formlabs: the printer's name in PreForm")
    parser.add_argument("--material-code", help="Formlabs: PreForm resin code, e.g. FLBMCL01")
    parser.add_argument("--baud", type=int, help="baud rate (overrides the profile)")
    parser.add_argument(
        "--resume-after",
        type=int,
        metavar="N",
        help="USB: continue a broken print after command N (re-homes X/Y, keeps Z)",
    )
    parser.add_argument("--json", action="store_true", help="report the outcome as JSON")
    parser.add_argument("--list-ports", action="store_true", help="list serial ports and exit")
    parser.set_defaults(func=_print)

    serial = sub.add_parser(
        "printer-serial",
        help="set a printer profile's serial number (the print record's, when the printer "
        "reports none)",
    )
    serial.add_argument("printer", help="printer profile id or name")
    serial.add_argument("serial", help="the serial number on the machine's plate ('' clears it)")
    add_json(serial)
    serial.set_defaults(func=_set_serial)


def _set_serial(args: argparse.Namespace) -> int:
    profile = printing.set_serial(Actor.current(), args.printer, args.serial)
    facts = {"profile": profile.id, "serial": profile.serial}
    show(args, facts, f"{profile.id}: serial number {profile.serial or '(none)'}")
    return 0


def _print(args: argparse.Namespace) -> int:
    if args.list_ports:
        return _list_ports()
    _check(args)
    actor = Actor.current()
    case = intake.open_case(actor, args.case)
    view = _View()
    job = None
    try:
        job = _start(actor, case, args, view)
        return _follow(actor, job, view, args.json)
    finally:
        view.close()
        if job is not None:
            job.close()


def _start(actor: Actor, case: Case, args: argparse.Namespace, view: _View) -> PrintJob:
    """One workflow call: the case's stored G-code, or a loose file (with an override)."""
    where = {"port": args.port, "url": args.url, "kind": args.kind, "baud": args.baud}
    callbacks = {"on_state": view.state, "on_progress": view.progress}
    target = printing.target(actor, args.printer, args.kind)
    if target == "mesh" and args.gcode_file is None:
        return printing.start_mesh(
            actor,
            case,
            version=args.mesh_version,
            printer=args.printer,
            url=args.url,
            device=args.device,
            material_code=args.material_code,
            **callbacks,
        )
    if target == "sl1" and args.gcode_file is None:
        return printing.start_resin(
            actor,
            case,
            sla_version=args.sla_version,
            printer=args.printer,
            url=args.url,
            **callbacks,
        )
    if args.gcode_file is not None:
        reason = args.reason if args.override else None
        return printing.start_file(
            actor, case, args.gcode_file, reason=reason, printer=args.printer, **where, **callbacks
        )
    return printing.start(
        actor,
        case,
        gcode_version=args.gcode_version,
        printer=args.printer,
        resume_after=args.resume_after,
        **where,
        **callbacks,
    )


def _check(args: argparse.Namespace) -> None:
    if not args.case or not args.printer:
        msg = "give the case and --printer PROFILE (see 'medprint printers')"
        raise PrintingError(msg)
    if args.override and (args.gcode_file is None or not args.reason):
        msg = "--override is for a loose --gcode-file and needs --reason TEXT"
        raise PrintingError(msg)
    if args.gcode_file is not None and (args.gcode_version or args.resume_after is not None):
        msg = "--gcode-file prints a loose file: leave out --gcode-version and --resume-after"
        raise PrintingError(msg)


def _follow(actor: Actor, job: PrintJob, view: _View, as_json: bool) -> int:
    try:
        state = job.wait()
    except KeyboardInterrupt:
        print("\nmedprint: cancelling the print (heaters off, parking)...", file=sys.stderr)
        printing.cancel(actor, job)
        state = job.wait(600)
    status = job.status()
    view.close()
    if as_json:
        print(json.dumps(_report(job, status), indent=2))
    if state == PrinterState.FINISHED:
        if not as_json:
            print(f"finished: {status.lines or ''} commands in {_hms(status.elapsed)}".strip())
        return 0
    if state == PrinterState.CANCELLED:
        if not as_json:
            print(f"cancelled after {_hms(status.elapsed)}")
        return 1
    if job.resume_point is not None:
        point = job.resume_point
        print(f"medprint: error: {status.message}", file=sys.stderr)
        print(
            f"medprint: to continue, check the part and run the same command with "
            f"--resume-after {point.index}",
            file=sys.stderr,
        )
        return 3
    msg = status.message or f"the print ended in state {state.value}"
    raise PrintingError(msg)


def _report(job: PrintJob, status: JobStatus) -> dict[str, object]:
    facts = job.facts()
    return {
        "case": facts.get("case"),
        "gcode_version": facts.get("gcode_version"),
        "gcode_sha256": facts.get("gcode_sha256"),
        "mesh_version": facts.get("mesh_version"),
        "transport": facts.get("transport"),
        "file": facts.get("file"),
        "state": status.state.value,
        "commands": status.lines,
        "elapsed_s": round(status.elapsed, 1),
        "message": status.message,
        "resume_after": job.resume_point.index if job.resume_point else None,
    }


class _View:
    """A progress bar plus a line per state change, on stderr."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bar = tqdm(
            total=100,
            unit="%",
            file=sys.stderr,
            leave=False,
            disable=not sys.stderr.isatty(),
            bar_format="{l_bar}{bar}| {postfix}",
        )

    def state(self, state: PrinterState, message: str) -> None:
        if state in (PrinterState.ERROR, PrinterState.DISCONNECTED):
            return  # reported once, as the command's error line
        with self._lock:
            self._bar.write(f"[{state.value}] {message}", file=sys.stderr)

    def progress(self, status: JobStatus) -> None:
        with self._lock:
            self._bar.n = round(status.progress * 100, 1)
            parts = []
            if status.layer and status.layers:
                parts.append(f"layer {status.layer}/{status.layers}")
            for name, temp in sorted(status.temperatures.items()):
                target = f"/{temp.target:.0f}" if temp.target else ""
                parts.append(f"{name} {temp.actual:.0f}{target}°C")
            if status.remaining is not None:
                parts.append(f"{_hms(status.remaining)} left")
            self._bar.set_postfix_str("  ".join(parts), refresh=False)
            self._bar.refresh()

    def close(self) -> None:
        with self._lock:
            self._bar.close()


def _hms(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _list_ports() -> int:
    from app.printing.serial_link import list_ports  # noqa: PLC0415

    ports = list_ports()
    if not ports:
        print("no serial ports found")
    for port in ports:
        mark = "printer?" if port.likely_printer else ""
        print(f"{port.device:24} {mark:9} {port.description}")
    return 0

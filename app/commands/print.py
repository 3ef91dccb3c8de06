"""``medprint print FILE.gcode --printer PROFILE [--port PORT | --url URL]``: print headless.

Streams over USB (Marlin) or hands the job to OctoPrint/Moonraker, with a progress bar on
stderr and one line per state change. Ctrl+C cancels the print safely (heaters off, head
parked, motors off). ``--list-ports`` shows the serial ports, printer-like ones first.
Exit status: 0 finished, 1 cancelled, 2 error (the message says what to do), 3 the connection
was lost (the message says how to resume with ``--resume-after``).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from app.errors import PrintingError
from app.printing.job import (
    ConnectionSettings,
    JobStatus,
    PauseSettings,
    PrintJob,
    open_backend,
)
from app.printing.marlin import PrinterState


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "print",
        help="print a G-code file on a USB, OctoPrint or Moonraker printer",
        description="Print FILE on the printer of profile PROFILE; Ctrl+C cancels safely.",
    )
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE.gcode")
    parser.add_argument("--printer", metavar="PROFILE", help="printer profile id or name")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", help="USB serial port (overrides the profile), or 'auto'")
    where.add_argument("--url", help="OctoPrint/Moonraker URL (overrides the profile)")
    parser.add_argument(
        "--kind", choices=("octoprint", "moonraker"), help="the server behind --url"
    )
    parser.add_argument("--baud", type=int, help="baud rate (overrides the profile)")
    parser.add_argument("--case", help="case pseudonym, for the audit log and the file name")
    parser.add_argument("--mesh-version", help="mesh version the G-code was sliced from")
    parser.add_argument(
        "--resume-after",
        type=int,
        metavar="N",
        help="USB: continue a broken print after command N (re-homes X/Y, keeps Z)",
    )
    parser.add_argument("--list-ports", action="store_true", help="list serial ports and exit")
    parser.set_defaults(func=_print)


def _print(args: argparse.Namespace) -> int:
    if args.list_ports:
        return _list_ports()
    if args.file is None or not args.printer:
        msg = "give a G-code file and --printer PROFILE (see 'medprint printers')"
        raise PrintingError(msg)
    from app.printing.profiles import get_printer  # noqa: PLC0415

    profile = get_printer(args.printer)
    settings = ConnectionSettings.from_profile(
        profile, port=args.port, url=args.url, kind=args.kind
    )
    if args.baud:
        settings = ConnectionSettings(
            settings.kind, settings.port, args.baud, settings.url, settings.api_key
        )
    _, depth, height = profile.build_volume
    pause = PauseSettings(park_x=0.0, park_y=float(depth), max_z=float(height))
    view = _View()
    job = PrintJob(
        args.file,
        open_backend(settings, pause=pause),
        case=args.case,
        mesh_version=args.mesh_version,
        printer=profile.name,
        profile=profile.id,
        remote_name=f"{args.case}-{args.file.stem}.gcode"[:80] if args.case else None,
        on_state=view.state,
        on_progress=view.progress,
    )
    try:
        if args.resume_after is not None:
            job.resume_after(args.resume_after)
        else:
            job.start()
        return _follow(job, view)
    finally:
        view.close()
        job.close()


def _follow(job: PrintJob, view: _View) -> int:
    try:
        state = job.wait()
    except KeyboardInterrupt:
        print("\nmedprint: cancelling the print (heaters off, parking)...", file=sys.stderr)
        job.cancel()
        state = job.wait(600)
    status = job.status()
    view.close()
    if state == PrinterState.FINISHED:
        print(f"finished: {status.lines or ''} commands in {_hms(status.elapsed)}".strip())
        return 0
    if state == PrinterState.CANCELLED:
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

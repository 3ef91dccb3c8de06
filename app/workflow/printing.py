"""Printing: a stored G-code of a case on a printer (USB, OctoPrint, Moonraker), and its controls.

The gate is the G-code's provenance, not trust: :func:`start` prints a G-code stored in the case
only when it was sliced from an approved mesh version of the case (its provenance names the
version's hash), or an administrator recorded a ``foreign-gcode`` override for it
(:func:`app.workflow.review.release_gcode`). A loose G-code file (:func:`start_file`) needs that
override, which only an administrator records. Names on the printer are the pseudonym and the
G-code number (or hash), nothing else.

Every step is audited: ``print.start`` (G-code and mesh hashes, printer, transport, overrides),
the user's ``print.pause``, ``print.resume``, ``print.cancel``, ``print.recover`` and
``print.emergency_stop``, and what the job reports by itself (``print.finish``, ``print.error``,
``print.disconnect``, ``print.cancelled``, and a pause, resume or cancel asked by the printer).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from app.case import Case
from app.errors import PrintingError
from app.printing.backends.usb import PauseSettings
from app.printing.connection import ConnectionSettings, open_job
from app.printing.job import (
    EventCallback,
    PrintJob,
    ProgressCallback,
    StateCallback,
    TemperatureCallback,
)
from app.printing.profiles import PrinterProfile, get_printer
from app.printing.serial_link import LinkOptions
from app.security import access
from app.workflow import names, policy, review
from app.workflow.actor import Actor
from app.workflow.review import Release


def start(
    actor: Actor,
    case: Case,
    *,
    gcode_version: int | None = None,
    printer: str,
    port: str | None = None,
    url: str | None = None,
    kind: str | None = None,
    baud: int | None = None,
    resume_after: int | None = None,
    on_state: StateCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_temperature: TemperatureCallback | None = None,
    link_options: LinkOptions | None = None,
    poll_interval: float = 1.0,
) -> PrintJob:
    """Print stored G-code ``gcode_version`` (default: the latest) of ``case`` on ``printer``.

    Refused (audited) unless the G-code comes from an approved mesh version of the case or
    carries an administrator's foreign-gcode override. Blocks while it connects (and uploads);
    the returned job then runs on its own threads. ``resume_after`` (USB) starts after command
    N of the G-code, for a print whose host went away.
    """
    policy.allow(actor, "print", case.pseudonym)
    number = case.latest_gcode_version() if gcode_version is None else gcode_version
    stored = case.load_gcode(number)
    release = review.release_gcode(actor, case, stored, "print")
    profile = get_printer(printer, actor.paths)
    job = open_job(
        stored.text.encode("utf-8"),
        _settings(profile, port, url, kind, baud),
        pause=_pause_settings(profile),
        options=link_options,
        printer=profile.name,
        remote_name=_remote_name(actor, case, f"{case.pseudonym}-g{stored.number}.gcode"),
        context=_context(case, release, profile, gcode_version=stored.number),
        on_state=on_state,
        on_progress=on_progress,
        on_temperature=on_temperature,
        on_event=_event_recorder(actor),
        poll_interval=poll_interval,
    )
    return _begin(actor, job, resume_after)


def start_file(
    actor: Actor,
    case: Case,
    gcode_path: Path,
    *,
    reason: str | None = None,
    printer: str,
    port: str | None = None,
    url: str | None = None,
    kind: str | None = None,
    baud: int | None = None,
    on_state: StateCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_temperature: TemperatureCallback | None = None,
    link_options: LinkOptions | None = None,
    poll_interval: float = 1.0,
) -> PrintJob:
    """Print a loose G-code file (not sliced here) for ``case``.

    With ``reason``, an administrator records a foreign-gcode override for the file's SHA-256
    first; without, the file prints only when such an override exists. The bytes hashed are the
    bytes printed.
    """
    policy.allow(actor, "print", case.pseudonym)
    data = _read(Path(gcode_path))
    sha = hashlib.sha256(data).hexdigest()
    if reason is not None:
        review.override(actor, case, access.FOREIGN_GCODE, reason=reason, gcode_sha256=sha)
    release = review.release_foreign_gcode(actor, case, sha, "print")
    profile = get_printer(printer, actor.paths)
    job = open_job(
        data,
        _settings(profile, port, url, kind, baud),
        pause=_pause_settings(profile),
        options=link_options,
        printer=profile.name,
        remote_name=_remote_name(actor, case, f"{case.pseudonym}-x{sha[:12]}.gcode"),
        context=_context(case, release, profile, gcode_version=None),
        on_state=on_state,
        on_progress=on_progress,
        on_temperature=on_temperature,
        on_event=_event_recorder(actor),
        poll_interval=poll_interval,
    )
    return _begin(actor, job, None)


def pause(actor: Actor, job: PrintJob, *, cool_down: bool = False) -> None:
    """Pause ``job`` (USB: park the head; ``cool_down`` also turns the nozzle off)."""
    policy.allow(actor, "print", _case_of(job))
    job.pause(cool_down=cool_down)
    _record(actor, "print.pause", job, cool_down=cool_down)


def resume(actor: Actor, job: PrintJob) -> None:
    """Resume a paused ``job`` at the same position and temperatures."""
    policy.allow(actor, "print", _case_of(job))
    job.resume()
    _record(actor, "print.resume", job)


def cancel(actor: Actor, job: PrintJob) -> None:
    """Cancel ``job``: heaters and fan off, head lifted and parked, motors off."""
    policy.allow(actor, "print", _case_of(job))
    job.cancel()
    _record(actor, "print.cancel", job)


def emergency_stop(actor: Actor, job: PrintJob) -> None:
    """M112: halt the printer at once. Anyone at the workstation may (safety before roles);
    it is audited like every other step."""
    job.emergency_stop()
    _record(actor, "print.emergency_stop", job)


def recover(
    actor: Actor, job: PrintJob, *, after: int | None = None, port: str | None = None
) -> None:
    """Continue a USB job broken by a lost link or a printer reset, on the user's request.

    It goes on after the last acknowledged command, or after command ``after`` when the user
    wants to repeat a few moves; ``port`` when the printer came back on another one.
    """
    policy.allow(actor, "print", _case_of(job))
    point = job.resume_point
    if point is None:
        msg = "nothing to resume: this job has no resume point"
        raise PrintingError(msg)
    back = 0 if after is None else max(0, point.index - after)
    _record(actor, "print.recover", job, resume_from=point.index + 1 - back, reason=point.reason)
    job.recover(back=back, port=port)


# --- helpers ------------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the G-code file ({exc.strerror or type(exc).__name__}); check the path"
        raise PrintingError(msg) from None


def _remote_name(actor: Actor, case: Case, name: str) -> str:
    return names.check_outgoing(actor, case, name, what="printer file name", action="print")


def _settings(
    profile: PrinterProfile, port: str | None, url: str | None, kind: str | None, baud: int | None
) -> ConnectionSettings:
    settings = ConnectionSettings.from_profile(profile, port=port, url=url, kind=kind)
    return replace(settings, baud=baud) if baud else settings


def _pause_settings(profile: PrinterProfile) -> PauseSettings:
    _, depth, height = profile.build_volume
    return PauseSettings(park_x=0.0, park_y=float(depth), max_z=float(height))


def _context(
    case: Case, release: Release, profile: PrinterProfile, *, gcode_version: int | None
) -> dict[str, object]:
    """What a job prints, for every record of it (no PHI: pseudonym, numbers, hashes)."""
    return {
        "case": case.pseudonym,
        "gcode_version": gcode_version,
        "mesh_version": release.mesh_version,
        "mesh_sha256": release.mesh_sha256,
        "profile": profile.id,
        "approval_id": release.approval.get("id") if release.approval else None,
        "override_ids": [o["id"] for o in release.overrides],
    }


def _begin(actor: Actor, job: PrintJob, resume_after: int | None) -> PrintJob:
    """Check the G-code, audit the start (no start without its record), then start."""
    if resume_after is not None and not job.usb:
        msg = "--resume-after is for USB printers; a networked printer resumes its own jobs"
        raise PrintingError(msg)
    job.summarize()
    extra = {} if resume_after is None else {"resume_after": resume_after}
    _record(actor, "print.start", job, **extra)
    try:
        if resume_after is None:
            job.start()
        else:
            job.resume_after(resume_after)
    except BaseException:
        job.close()  # a job that could not start holds no port or connection
        raise
    return job


def _case_of(job: PrintJob) -> str | None:
    case = job.context.get("case")
    return case if isinstance(case, str) else None


def _record(actor: Actor, action: str, job: PrintJob, **extra: object) -> None:
    facts = {**job.facts(), **extra}
    case = facts.pop("case", None)
    policy.record(actor, action, case if isinstance(case, str) else None, **facts)


def _event_recorder(actor: Actor) -> EventCallback:
    """The job's ``on_event``: what the job reports by itself is audited as the starter's job."""

    def on_event(event: str, facts: dict[str, object]) -> None:
        facts = dict(facts)
        case = facts.pop("case", None)
        policy.record(actor, f"print.{event}", case if isinstance(case, str) else None, **facts)

    return on_event

"""Printing: a stored G-code of a case on a printer (USB, OctoPrint, Moonraker), and its controls.

The gate is the G-code's provenance, not trust: :func:`start` prints a G-code stored in the case
only when it was sliced from an approved mesh version of the case (its provenance names the
version's hash), or an administrator recorded a ``foreign-gcode`` override for it
(:func:`app.workflow.review.release_gcode`). A loose G-code file (:func:`start_file`) needs that
override, which only an administrator records. Names on the printer are the pseudonym and the
G-code number (or hash), nothing else.

A resin slicing (SL1, :func:`start_resin`) passes the same gate through its provenance. A
Formlabs printer (:func:`start_mesh`) takes the approved mesh itself, prepared by PreForm: the
mesh version must be approved and its stored parts must hash to the approved SHA-256; PreForm's
reported mesh hashes are checked against them before anything is sent
(:mod:`app.printing.backends.formlabs`).

Every step is audited: ``print.start`` (G-code and mesh hashes, printer, transport, overrides),
the user's ``print.pause``, ``print.resume``, ``print.cancel``, ``print.recover`` and
``print.emergency_stop``, and what the job reports by itself (``print.finish``, ``print.error``,
``print.disconnect``, ``print.cancelled``, and a pause, resume or cancel asked by the printer).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from app.case import Case, StoredMesh, StoredSla
from app.errors import PrintingError
from app.printing.backends.formlabs import (
    FormlabsJob,
    MeshPart,
    PreFormClient,
    PreFormPrint,
    SceneSettings,
)
from app.printing.backends.usb import PauseSettings
from app.printing.connection import ConnectionSettings, open_job, open_preform
from app.printing.job import (
    EventCallback,
    PrintJob,
    ProgressCallback,
    StateCallback,
    TemperatureCallback,
    machine_identity,
)
from app.printing.profiles import PrinterProfile, edit_profile, get_printer, save_printer
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
    job = _open(
        actor,
        stored.text.encode("utf-8"),
        _settings(profile, port, url, kind, baud),
        profile,
        name=_remote_name(actor, case, f"{case.pseudonym}-g{stored.number}.gcode"),
        context=_context(case, release, profile, gcode_version=stored.number),
        link_options=link_options,
        watch=(on_state, on_progress, on_temperature, poll_interval),
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
    job = _open(
        actor,
        data,
        _settings(profile, port, url, kind, baud),
        profile,
        name=_remote_name(actor, case, f"{case.pseudonym}-x{sha[:12]}.gcode"),
        context=_context(case, release, profile, gcode_version=None),
        link_options=link_options,
        watch=(on_state, on_progress, on_temperature, poll_interval),
    )
    return _begin(actor, job, None)


def target(actor: Actor, printer: str, kind: str | None = None) -> str:
    """What ``printer`` takes: ``mesh`` (Formlabs, through PreForm), ``sl1`` (a resin printer
    on PrusaLink) or ``gcode``."""
    profile = get_printer(printer, actor.paths)
    chosen = kind or profile.connection.kind
    if chosen == "formlabs":
        return "mesh"
    return "sl1" if profile.is_resin else "gcode"


def start_resin(
    actor: Actor,
    case: Case,
    *,
    sla_version: int | None = None,
    printer: str,
    url: str | None = None,
    on_state: StateCallback | None = None,
    on_progress: ProgressCallback | None = None,
    on_temperature: TemperatureCallback | None = None,
    poll_interval: float = 1.0,
) -> PrintJob:
    """Print stored resin slicing ``sla_version`` (default: the latest) of ``case`` on a
    PrusaLink resin printer (SL1S); refused (audited) unless it was sliced from an approved
    mesh version of the case."""
    policy.allow(actor, "print", case.pseudonym)
    versions = case.sla_versions()
    if not versions:
        msg = f"case {case.pseudonym} has no resin slicing; slice it for the resin printer first"
        raise PrintingError(msg)
    stored = case.load_sla(versions[-1] if sla_version is None else sla_version)
    release = _release_sla(actor, case, stored)
    profile = get_printer(printer, actor.paths)
    job = _open(
        actor,
        stored.data,
        _settings(profile, None, url, "prusalink", None),
        profile,
        name=_remote_name(actor, case, f"{case.pseudonym}-s{stored.number}.sl1"),
        context={
            **_context(case, release, profile, gcode_version=None),
            "sla_version": stored.number,
        },
        watch=(on_state, on_progress, on_temperature, poll_interval),
    )
    return _begin(actor, job, None)


def start_mesh(
    actor: Actor,
    case: Case,
    *,
    version: int | None = None,
    printer: str,
    url: str | None = None,
    device: str | None = None,
    material_code: str | None = None,
    on_state: StateCallback | None = None,
    on_progress: ProgressCallback | None = None,
    poll_interval: float = 5.0,
) -> PrintJob:
    """Print approved mesh ``version`` (default: the latest) on a Formlabs printer: PreForm
    prepares it (orient, support, lay out, validate, estimate) and sends it to ``device`` (the
    printer's name in PreForm; default: the only one it sees).

    Refused (audited) unless the version is approved and its stored parts hash to the approved
    SHA-256. The parts go to PreForm as STL files in a private temporary folder, named by the
    job, deleted once the print is sent; PreForm's mesh hashes must match before sending.
    """
    policy.allow(actor, "print", case.pseudonym)
    number = case.latest_mesh_version() if version is None else version
    release = review.release_mesh(actor, case, number, "print")
    stored = case.load_mesh_version(number)  # every part checked against its manifest
    if stored.sha256 != release.mesh_sha256:
        msg = (
            f"mesh v{number} of {case.pseudonym} is not the approved mesh; ask for the review again"
        )
        policy.refuse(actor, "print", case.pseudonym, reason="mesh-changed", message=msg)
    profile = get_printer(printer, actor.paths)
    client = open_preform(ConnectionSettings.from_profile(profile, url=url, kind="formlabs"))
    scene = SceneSettings.for_model(profile.resin.model, profile.resin.layer_height, material_code)
    name = _remote_name(actor, case, f"{case.pseudonym}-m{number}")
    folder = Path(tempfile.mkdtemp(prefix="medprint-preform-"))
    try:
        parts = _export_parts(actor, case, stored, folder)
        backend = PreFormPrint(client, parts, scene, device or _only_printer(client))
        job = FormlabsJob(
            backend,
            printer=profile.name,
            remote_name=name,
            context=_context(case, release, profile, gcode_version=None),
            on_state=on_state,
            on_progress=on_progress,
            on_event=_event_recorder(actor),
            poll_interval=poll_interval,
        )
        return _begin(actor, job, None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def set_serial(actor: Actor, printer: str, serial: str) -> PrinterProfile:
    """Give printer profile ``printer`` the machine's serial number, which its jobs' records
    carry when the printer reports none itself (saved as the user's profile; audited
    ``printer.serial``)."""
    policy.allow(actor, "printer.serial")
    profile = edit_profile(get_printer(printer, actor.paths), serial=serial.strip())
    save_printer(profile, actor.paths)
    policy.record(actor, "printer.serial", None, profile=profile.id, serial=profile.serial)
    return profile


# --- helpers ------------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"cannot read the G-code file ({exc.strerror or type(exc).__name__}); check the path"
        raise PrintingError(msg) from None


def _release_sla(actor: Actor, case: Case, stored: StoredSla) -> Release:
    """A resin slicing prints when it is unchanged and was sliced from an approved version."""
    if stored.sha256 != stored.provenance.get("sl1_sha256"):
        msg = f"resin slicing s{stored.number} does not match its provenance record; slice again"
        policy.refuse(actor, "print", case.pseudonym, reason="sl1-changed", message=msg)
    mesh_sha = stored.provenance.get("mesh_sha256")
    version = case.find_mesh_version(mesh_sha) if isinstance(mesh_sha, str) else None
    if version is None:
        msg = f"resin slicing s{stored.number} was not sliced from a mesh version of "
        msg += f"{case.pseudonym}; slice an approved version for the resin printer"
        policy.refuse(actor, "print", case.pseudonym, reason="foreign-sl1", message=msg)
    return review.release_mesh(actor, case, version, "print")


def _export_parts(actor: Actor, case: Case, stored: StoredMesh, folder: Path) -> list[MeshPart]:
    """The approved parts as STL files named by the job (never by the part or the patient)."""
    parts = []
    for index, entry in enumerate(stored.part_facts, start=1):
        name = _remote_name(actor, case, f"{case.pseudonym}-m{stored.number}-p{index}.stl")
        path = folder / name
        path.write_bytes(stored.parts[entry["name"]])
        parts.append(MeshPart(f"p{index}", path, entry["sha256"]))
    return parts


def _only_printer(client: PreFormClient) -> str:
    devices = [str(d.get("id")) for d in client.devices()]
    if len(devices) != 1:
        seen = ", ".join(devices) or "none"
        msg = f"PreForm sees {len(devices)} printers ({seen}); choose one with --device"
        raise PrintingError(msg)
    return devices[0]


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


def _open(
    actor: Actor,
    data: bytes,
    settings: ConnectionSettings,
    profile: PrinterProfile,
    *,
    name: str,
    context: dict,
    watch: tuple,
    link_options: LinkOptions | None = None,
) -> PrintJob:
    """The job of ``data`` on ``profile``'s printer, each event recorded as ``actor``;
    ``watch`` is (on_state, on_progress, on_temperature, poll_interval)."""
    on_state, on_progress, on_temperature, poll_interval = watch
    return open_job(
        data,
        settings,
        pause=_pause_settings(profile),
        options=link_options,
        printer=profile.name,
        remote_name=name,
        context=context,
        on_state=on_state,
        on_progress=on_progress,
        on_temperature=on_temperature,
        on_event=_event_recorder(actor),
        poll_interval=poll_interval,
    )


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
        **machine_identity(profile.serial, None, "profile"),
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

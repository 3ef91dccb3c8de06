"""Every use case × every role: allowed, or refused with a clear error and an audited refusal.

One prepared world (a vault, a person per role, a segmented sphere case whose mesh v1 was made
by the technician, approved by the reviewer and sliced) serves the whole table. Each row is a use
case, the permission it needs, the workflow function it exercises and a call; the roles allowed
come from ``policy.PERMISSIONS``. Every public workflow function that takes an actor has a row,
or is named in ``NOT_USE_CASES`` with the reason (a check run inside a use case, set-up before
any role exists).
"""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest

from app.case import Case
from app.errors import AccessDenied, MedPrintError
from app.imaging.load import write_image_file
from app.imaging.pacs.model3d import ModelObject
from app.imaging.pacs.nodes import Node
from app.imaging.pacs.query import Query
from app.printing.job import PrintJob
from app.security import audit
from app.security.deid.profile import DeidOptions
from app.security.identity import PersonalKeys
from app.security.signing import SigningKey
from app.settings import resolve_paths
from app.workflow import (
    comments,
    compare,
    intake,
    keys,
    mesh,
    model_import,
    order,
    package,
    pacs,
    parts,
    policy,
    printers,
    printing,
    records,
    resin,
    review,
    review_report,
    segment,
    settings,
    trace,
    users,
    verify_print,
)
from app.workflow import slice as slicing
from app.workflow.actor import Actor
from tests.conftest import forget_keystore
from tests.workflow.conftest import ADMIN, NOBODY, REVIEWER, TECH, person, sphere_volume
from tests.workflow.print_fixtures import sphere_stl

PEOPLE = ("founder", TECH, REVIEWER, ADMIN, NOBODY)


@dataclass
class World:
    people: dict[str, Actor]
    case: Case
    tmp: Path
    dicom: Path  # a real 28-slice CT series
    deid_in: Path  # three of its slices
    seg_file: Path  # the case's segmentation, exported
    image: Path  # the case's volume as a plain NRRD file

    def fresh_case(self) -> str:
        founder = self.people["founder"]
        pseudonym = founder.vault.create_case({})
        Case(founder.vault, pseudonym).save_volume(sphere_volume(size=16, radius_mm=4))
        return pseudonym

    def applicant(self) -> str:
        """A new account that asked to join (personal keys in memory, an enrolment request)."""
        name = f"zoe{uuid.uuid4().hex[:6]}"
        keys = PersonalKeys.in_memory(name)
        users.request_enrolment(Actor(name, self.people["founder"].paths, keys=keys))
        return name

    def comment(self) -> str:
        """The ID of a new comment on mesh v1."""
        made = comments.add(self.people[TECH], self.case, 1, at=(0.0, 0.0, 0.0), text="the rim")
        return made["id"]

    def enrolled(self) -> str:
        """A new technician, enrolled by the founder."""
        name = self.applicant()
        users.enrol(self.people["founder"], name, ["technician"])
        return name

    def trusted_key(self) -> str:
        """The key ID of a new key the founder trusts."""
        key = SigningKey.generate().public_key
        return keys.trust(self.people["founder"], key.to_base64()).key_id


@pytest.fixture(scope="module")
def world(tmp_path_factory, dicom_dir) -> World:
    tmp = tmp_path_factory.mktemp("permissions")
    previous = os.environ.get("MEDPRINT_KEYSTORE_SERVICE")
    service = f"medprint-test-permissions-{uuid.uuid4().hex[:8]}"
    os.environ["MEDPRINT_KEYSTORE_SERVICE"] = service
    founder = Actor.current(resolve_paths(tmp / "data"))
    users.init_vault(founder)
    roles = {TECH: ("technician",), REVIEWER: ("reviewer",), ADMIN: ("administrator",)}
    people = {n: person(founder, n, *roles.get(n, ())) for n in (TECH, REVIEWER, ADMIN, NOBODY)}
    people["founder"] = founder
    case = _prepared_case(people)
    tess = people[TECH]
    seg_file = segment.export_file(tess, case, segment.load(tess, case), tmp / "bone.seg.nrrd").path
    dicom = dicom_dir / "ct-head-ge-gantry-tilt-28"
    deid_in = tmp / "deid-in"
    deid_in.mkdir()
    for path in sorted(p for p in dicom.iterdir() if p.suffix != ".txt")[:3]:
        shutil.copy(path, deid_in / path.name)
    image = tmp / "sphere.nrrd"
    write_image_file(case.load_volume(), image)
    yield World(people, case, tmp, dicom, deid_in, seg_file, image)
    forget_keystore(service)
    if previous is None:
        os.environ.pop("MEDPRINT_KEYSTORE_SERVICE", None)
    else:
        os.environ["MEDPRINT_KEYSTORE_SERVICE"] = previous


def _prepared_case(people: dict[str, Actor]) -> Case:
    """Segmented by the technician, mesh v1 by the technician, approved, sliced as g1."""
    tech = people[TECH]
    pseudonym = tech.vault.create_case({"PatientName": "TABLE^TEST"})
    case = Case(tech.vault, pseudonym)
    volume = sphere_volume()
    case.save_volume(volume)
    seg = segment.new(volume)
    segment.run_tool(
        tech, case, seg, volume, "threshold", {"segment": "bone", "lower": 300.0, "upper": 3000.0}
    )
    segment.save(tech, case, seg)
    mesh.build(tech, case, settings="review")
    review.approve(people[REVIEWER], case, 1)
    slicing.slice_version(tech, case, version=1, printer="generic-marlin-220")
    return case


def _volume_and_seg(world: World):
    volume = world.case.load_volume()
    return volume, segment.load(world.people["founder"], world.case, volume)


def _gcode_file(world: World) -> Path:
    path = world.tmp / "loose.gcode"
    path.write_text("G28\nG1 X10 Y10 F1200\n")
    return path


def _not_v1(world: World) -> int:
    """A version other than the approved v1 (the build row made more), so v1 stays approved."""
    version = world.case.latest_mesh_version()
    assert version > 1
    return version


def _folder(world: World, name: str) -> Path:
    folder = world.tmp / name
    folder.mkdir(exist_ok=True)
    return folder


def _dead_url() -> str:
    return "http://127.0.0.1:9"  # the discard port: nothing answers


def _model() -> ModelObject:
    return ModelObject("sphere", sphere_stl(), "1.2.3", "1.2.4")


def _add_segment(actor: Actor, world: World):
    _, seg = _volume_and_seg(world)
    mask = seg.mask("bone")
    return segment.add_segment_from_mask(actor, world.case, seg, f"copy-{actor.user}", mask)


class _Unplugged(PrintJob):
    """A job of the case whose printer is gone: it never started (pause, resume and recover
    have nothing to act on; an emergency stop ends it at once)."""

    def _do_emergency_stop(self) -> None:
        return None


def _job(world: World) -> PrintJob:
    return _Unplugged(
        b"G28\n", None, printer="generic-marlin-220", context={"case": world.case.pseudonym}
    )


class Row(NamedTuple):
    """A use case, the permission it needs (None: no role needed), the workflow function it
    exercises and a call of it. ``connects``: the call gets past the permission check and then
    fails on purpose (no printer or archive listens, no such file)."""

    name: str
    action: str | None
    uses: Callable[..., object]
    call: Callable[[Actor, World], object]
    connects: bool = False


ROWS: list[Row] = [
    Row("vault status", "vault.status", users.vault_status, lambda a, w: users.vault_status(a)),
    Row(
        "show the recovery key",
        "vault.recovery_key",
        users.recovery_key,
        lambda a, w: users.recovery_key(a),
    ),
    Row(
        "rotate the master key",
        "vault.rotate_key",
        users.rotate_key,
        lambda a, w: users.rotate_key(a),
    ),
    Row("list users", "users.list", users.list_users, lambda a, w: users.list_users(a)),
    Row(
        "give a role",
        "users.manage",
        users.add_role,
        lambda a, w: users.add_role(a, w.applicant(), "technician"),
    ),
    Row(
        "export the signing key",
        "keys.export",
        keys.export_signing_key,
        lambda a, w: keys.export_signing_key(a),
    ),
    Row(
        "trust another key",
        "keys.manage",
        keys.trust,
        lambda a, w: keys.trust(a, keys.export_signing_key(w.people["founder"])[1]),
    ),
    Row("list cases", "case.list", intake.list_cases, lambda a, w: intake.list_cases(a)),
    Row(
        "show identities",
        "case.identity",
        intake.list_cases,
        lambda a, w: intake.list_cases(a, with_identity=True),
    ),
    Row(
        "open a case",
        "case.open",
        intake.open_case,
        lambda a, w: intake.open_case(a, w.case.pseudonym),
    ),
    Row(
        "delete a case",
        "case.delete",
        intake.delete_case,
        lambda a, w: intake.delete_case(a, w.fresh_case()),
    ),
    Row(
        "run a segmentation tool",
        "segment",
        segment.run_tool,
        lambda a, w: segment.run_tool(
            a,
            w.case,
            _volume_and_seg(w)[1],
            w.case.load_volume(),
            "margin",
            {"segment": "bone", "margin_mm": 1.0},
        ),
    ),
    Row(
        "save the segmentation",
        "segment",
        segment.save,
        lambda a, w: segment.save(a, w.case, _volume_and_seg(w)[1]),
    ),
    Row(
        "export the segmentation",
        "segment.export",
        segment.export_file,
        lambda a, w: segment.export_file(
            a, w.case, _volume_and_seg(w)[1], w.tmp / f"{a.user}.seg.nrrd"
        ),
    ),
    Row(
        "build a mesh",
        "mesh.build",
        mesh.build,
        lambda a, w: mesh.build(a, w.case, settings="review"),
    ),
    Row(
        "edit a mesh",
        "mesh.edit",
        mesh.edit,
        lambda a, w: mesh.edit(a, w.case, 1, "scale", {"factor": 1.01}),
    ),
    Row(
        "export a mesh",
        "mesh.export",
        mesh.export,
        lambda a, w: mesh.export(a, w.case, 1, w.tmp / f"{a.user}.stl"),
    ),
    Row("review status", "review.view", review.status, lambda a, w: review.status(a, w.case, 1)),
    Row("approve", "review.approve", review.approve, lambda a, w: review.approve(a, w.case, 1)),
    Row(
        "reject",
        "review.reject",
        review.reject,
        lambda a, w: review.reject(a, w.case, _not_v1(w), comment="thicker base"),
    ),
    Row(
        "record an override",
        "review.override",
        review.override,
        lambda a, w: review.override(a, w.case, "qa-failure", version=1, reason="table test"),
    ),
    Row(
        "slice",
        "slice",
        slicing.slice_version,
        lambda a, w: slicing.slice_version(a, w.case, version=1, printer="generic-marlin-220"),
    ),
    Row(
        "print the case's G-code",
        "print",
        printing.start,
        lambda a, w: printing.start(
            a,
            w.case,
            gcode_version=1,
            printer="generic-marlin-220",
            url=_dead_url(),
            kind="octoprint",
        ),
        connects=True,
    ),
    Row(
        "print the approved mesh on a Formlabs printer",
        "print",
        printing.start_mesh,
        lambda a, w: printing.start_mesh(
            a, w.case, version=1, printer="formlabs-form4b", url=_dead_url()
        ),
        connects=True,
    ),
    Row(
        "set a printer's serial number",
        "printer.serial",
        printing.set_serial,
        lambda a, w: printing.set_serial(a, "generic-marlin-220", f"SN-{a.user}"),
    ),
    Row(
        "package",
        "package.build",
        package.build,
        lambda a, w: package.build(
            a, w.case, version=1, gcode_version=1, out_dir=_folder(w, f"pkg-{a.user}")
        ),
    ),
    Row(
        "pin a comment to a mesh version",
        "review.comment",
        comments.add,
        lambda a, w: comments.add(a, w.case, 1, at=(0.0, 0.0, 0.0), text="check the rim"),
    ),
    Row(
        "record the case order",
        "order.set",
        order.set_order,
        lambda a, w: order.set_order(
            a, w.case, indication="trauma", region="head", service="other", due="2027-01-01"
        ),
    ),
    Row(
        "export the registry",
        "registry.export",
        order.export_registry,
        lambda a, w: order.export_registry(a, w.tmp / f"registry-{uuid.uuid4().hex[:6]}.csv"),
    ),
    Row(
        "verify the audit log", "audit.view", records.verify_log, lambda a, w: records.verify_log(a)
    ),
    Row(
        "export the audit log",
        "audit.export",
        records.export_log,
        lambda a, w: records.export_log(a, "json"),
    ),
    Row(
        "change a setting",
        "settings.manage",
        settings.set_value,
        lambda a, w: settings.set_value(a, "units", "mm"),
    ),
    Row(
        "record a print step",
        "record.step",
        trace.record_step,
        lambda a, w: trace.record_step(a, w.case, "cure"),
    ),
    Row("view the trace", "trace.view", trace.trace, lambda a, w: trace.trace(a, w.case)),
    Row(
        "verify a printed part",
        "verify_print",
        verify_print.verify_print,
        lambda a, w: verify_print.verify_print(a, w.case, w.tmp / "no-scan.stl"),
        connects=True,
    ),
    Row(
        "lab QA of a printer",
        "lab_qa",
        verify_print.lab_qa_verify,
        lambda a, w: verify_print.lab_qa_verify(a, "generic-marlin-220", w.tmp / "no-scan.stl"),
        connects=True,
    ),
    Row("list PACS nodes", "pacs.nodes", pacs.nodes, lambda a, w: pacs.nodes(a)),
    Row(
        "add a PACS node",
        "pacs.manage",
        pacs.add_node,
        lambda a, w: pacs.add_node(a, Node("archive", "ORTHANC", "127.0.0.1", 9)),
    ),
    Row(
        "remove a PACS node",
        "pacs.manage",
        pacs.remove_node,
        lambda a, w: pacs.remove_node(a, "none"),
        connects=True,
    ),
    Row(
        "query a PACS",
        "pacs.query",
        pacs.find,
        lambda a, w: pacs.find(a, "none", Query(), timeout=1),
        connects=True,
    ),
    Row(
        "retrieve from a PACS",
        "pacs.retrieve",
        pacs.retrieve,
        lambda a, w: pacs.retrieve(a, "none", "1.2.3"),
        connects=True,
    ),
    Row(
        "store to a PACS",
        "pacs.store",
        pacs.store,
        lambda a, w: pacs.store(a, w.case, "none", 1),
        connects=True,
    ),
    # Added with the audit of issue 13: every other public use case that takes an actor.
    Row(
        "import a DICOM series",
        "case.import",
        intake.import_path,
        lambda a, w: intake.import_path(a, str(w.dicom)),
    ),
    Row(
        "import a series (scanned first)",
        "case.import",
        intake.import_series,
        lambda a, w: intake.import_series(a, intake.scan(a, [str(w.dicom)]).series[0]),
    ),
    Row(
        "import a 3D model",
        "case.import",
        model_import.import_path,
        lambda a, w: model_import.import_path(a, str(_folder(w, "empty"))),
        connects=True,
    ),
    Row(
        "add a model as a mesh version",
        "mesh.edit",
        model_import.add_model,
        lambda a, w: model_import.add_model(a, w.case, [_model()], origin="import"),
    ),
    Row(
        "de-identify a folder",
        "deid",
        intake.deidentify,
        lambda a, w: intake.deidentify(a, w.deid_in, w.tmp / f"deid-{a.user}", DeidOptions()),
    ),
    Row(
        "load a case",
        "case.open",
        intake.load_case,
        lambda a, w: intake.load_case(a, w.case.pseudonym),
    ),
    Row(
        "open the sample",
        "case.open",
        intake.open_sample,
        lambda a, w: intake.open_sample(a),
        connects=True,
    ),
    Row(
        "load the sample",
        "case.open",
        intake.load_sample,
        lambda a, w: intake.load_sample(a),
        connects=True,
    ),
    Row(
        "keep the view state",
        "case.open",
        intake.save_view,
        lambda a, w: intake.save_view(a, w.case, {"layout": "quad"}),
    ),
    Row(
        "fit-to-print warnings",
        "case.list",
        intake.case_suitability,
        lambda a, w: intake.case_suitability(a, w.case.pseudonym),
    ),
    Row("load the segmentation", "case.open", segment.load, lambda a, w: segment.load(a, w.case)),
    Row(
        "begin a brush stroke",
        "segment",
        segment.begin_stroke,
        lambda a, w: segment.begin_stroke(a, w.case, _volume_and_seg(w)[1]),
    ),
    Row(
        "add a segment from a mask",
        "segment",
        segment.add_segment_from_mask,
        _add_segment,
    ),
    Row(
        "import a segmentation file",
        "segment",
        segment.import_file,
        lambda a, w: segment.import_file(a, w.case, w.seg_file, w.case.load_volume()),
    ),
    Row(
        "export the segmentation with identity",
        "segment.export_identified",
        segment.export_file,
        lambda a, w: segment.export_file(
            a, w.case, _volume_and_seg(w)[1], w.tmp / f"{a.user}.dcm", identified=True
        ),
        connects=True,
    ),
    Row(
        "DICOM SEG of the case",
        "case.open",
        segment.dicom_seg,
        lambda a, w: segment.dicom_seg(a, w.case, identified=False),
        connects=True,
    ),
    Row("load a mesh version", "mesh.view", mesh.load, lambda a, w: mesh.load(a, w.case, 1)),
    Row("list mesh versions", "mesh.view", mesh.versions, lambda a, w: mesh.versions(a, w.case)),
    Row(
        "list a version's parts",
        "mesh.view",
        parts.version_parts,
        lambda a, w: parts.version_parts(a, w.case, 1),
    ),
    Row(
        "export a version's parts",
        "mesh.export",
        parts.export_parts,
        lambda a, w: parts.export_parts(a, w.case, 1, _folder(w, f"parts-{a.user}"), "stl"),
    ),
    Row(
        "compare two versions",
        "review.view",
        compare.compare,
        lambda a, w: compare.compare(a, w.case, 1, _not_v1(w)),
    ),
    Row(
        "compare two versions (meshes kept)",
        "review.view",
        compare.compare_meshes,
        lambda a, w: compare.compare_meshes(a, w.case, 1, _not_v1(w)),
    ),
    Row(
        "make the review report",
        "review.view",
        review_report.make,
        lambda a, w: review_report.make(a, w.case, 1),
    ),
    Row(
        "write the review report",
        "review.view",
        review_report.write,
        lambda a, w: review_report.write(a, w.case, 1, w.tmp / f"review-{a.user}.pdf"),
    ),
    Row("list comments", "review.view", comments.listed, lambda a, w: comments.listed(a, w.case)),
    Row(
        "resolve a comment",
        "review.comment",
        comments.resolve,
        lambda a, w: comments.resolve(a, w.case, w.comment()),
    ),
    Row(
        "list stored G-code",
        "case.open",
        slicing.stored_gcodes,
        lambda a, w: slicing.stored_gcodes(a, w.case),
    ),
    Row(
        "export stored G-code",
        "slice",
        slicing.export,
        lambda a, w: slicing.export(a, w.case, 1, w.tmp / f"{a.user}.gcode"),
    ),
    Row(
        "slice for a resin printer",
        "slice",
        resin.slice_resin,
        lambda a, w: resin.slice_resin(a, w.case, version=1, printer="no-such-printer"),
        connects=True,
    ),
    Row(
        "load a resin slicing",
        "case.open",
        resin.load,
        lambda a, w: resin.load(a, w.case),
        connects=True,
    ),
    Row(
        "list resin slicings",
        "case.open",
        resin.stored_slicings,
        lambda a, w: resin.stored_slicings(a, w.case),
    ),
    Row(
        "resin check of a version",
        "mesh.view",
        resin.check,
        lambda a, w: resin.check(a, w.case, 1, voxel_mm=1.0),
    ),
    Row(
        # A G-code not sliced here: printing it is an administrator's audited override.
        "print a loose G-code file",
        "review.override",
        printing.start_file,
        lambda a, w: printing.start_file(
            a,
            w.case,
            _gcode_file(w),
            reason="table test: the vendor's calibration print",
            printer="generic-marlin-220",
            url=_dead_url(),
            kind="octoprint",
        ),
        connects=True,
    ),
    Row(
        "print a resin slicing",
        "print",
        printing.start_resin,
        lambda a, w: printing.start_resin(a, w.case, printer="prusa-sl1s", url=_dead_url()),
        connects=True,
    ),
    Row(
        "pause a print",
        "print",
        printing.pause,
        lambda a, w: printing.pause(a, _job(w)),
        connects=True,
    ),
    Row(
        "resume a print",
        "print",
        printing.resume,
        lambda a, w: printing.resume(a, _job(w)),
        connects=True,
    ),
    Row("cancel a print", "print", printing.cancel, lambda a, w: printing.cancel(a, _job(w))),
    Row(
        "recover a print",
        "print",
        printing.recover,
        lambda a, w: printing.recover(a, _job(w)),
        connects=True,
    ),
    Row(
        "store a printer's API key",
        "print",
        printers.store_api_key,
        lambda a, w: printers.store_api_key(a, "generic-marlin-220", "table-key"),
    ),
    Row(
        "store a printer's login",
        "print",
        printers.store_login,
        lambda a, w: printers.store_login(a, "generic-marlin-220", "maker", "table-pw"),
    ),
    Row(
        "forget a printer's secrets",
        "print",
        printers.forget,
        lambda a, w: printers.forget(a, "generic-marlin-220"),
    ),
    Row(
        "test a printer connection",
        "print",
        printers.check,
        lambda a, w: printers.check(a, "generic-marlin-220", url=_dead_url(), kind="octoprint"),
        connects=True,
    ),
    Row(
        "the print record PDF",
        "trace.view",
        trace.record_pdf,
        lambda a, w: trace.record_pdf(a, w.case),
    ),
    Row(
        "a verification's PDF",
        "trace.view",
        verify_print.report_pdf,
        lambda a, w: verify_print.report_pdf(a, w.case),
        connects=True,
    ),
    Row(
        "a printer's lab QA trend",
        "trace.view",
        verify_print.lab_qa_trend,
        lambda a, w: verify_print.lab_qa_trend(a, "generic-marlin-220"),
    ),
    Row("the case order", "case.open", order.get_order, lambda a, w: order.get_order(a, w.case)),
    Row(
        "time per stage", "audit.view", order.stage_times, lambda a, w: order.stage_times(a, w.case)
    ),
    Row(
        "registry rows", "registry.export", order.registry_rows, lambda a, w: order.registry_rows(a)
    ),
    Row("read the audit log", "audit.view", records.read_log, lambda a, w: records.read_log(a)),
    Row(
        "review the audit log", "audit.view", records.review_log, lambda a, w: records.review_log(a)
    ),
    Row(
        "export the receiving key",
        "keys.export",
        keys.export_recipient_key,
        lambda a, w: keys.export_recipient_key(a),
    ),
    Row(
        "revoke a key",
        "keys.manage",
        keys.revoke,
        lambda a, w: keys.revoke(a, w.trusted_key(), reason="table test"),
    ),
    Row(
        "add a recipient",
        "keys.manage",
        keys.add_recipient,
        lambda a, w: keys.add_recipient(
            a, f"lab-{a.user}", keys.export_recipient_key(w.people["founder"])[1]
        ),
    ),
    Row(
        "enrol a person",
        "users.manage",
        users.enrol,
        lambda a, w: users.enrol(a, w.applicant(), ["technician"]),
    ),
    Row(
        "take a role",
        "users.manage",
        users.remove_role,
        lambda a, w: users.remove_role(a, w.enrolled(), "technician"),
    ),
    Row(
        "remove a person",
        "users.manage",
        users.remove_user,
        lambda a, w: users.remove_user(a, w.enrolled()),
    ),
    Row(
        "echo a PACS node",
        "pacs.nodes",
        pacs.echo,
        lambda a, w: pacs.echo(a, "none"),
        connects=True,
    ),
    Row(
        "open a model from a PACS",
        "pacs.retrieve",
        pacs.open_model,
        lambda a, w: pacs.open_model(a, w.case, "none", "1.2.3", "1.2.4"),
        connects=True,
    ),
    # No role needed: reading the user's own folders and image files, the user's own keys, the
    # settings, a package (a receiving site has no vault), the emergency stop (safety first).
    Row("scan a folder", None, intake.scan, lambda a, w: intake.scan(a, [str(w.dicom)])),
    Row(
        "mesh a plain image file",
        None,
        mesh.build_file,
        lambda a, w: mesh.build_file(
            a, w.tmp / f"{a.user}-file.stl", volume=w.image, threshold="300", settings="review"
        ),
    ),
    Row(
        "convert a series to NIfTI",
        None,
        intake.convert,
        lambda a, w: intake.convert(a, w.deid_in, w.tmp / f"{a.user}.nii.gz"),
    ),
    Row(
        "preview a folder",
        None,
        intake.preview,
        lambda a, w: intake.preview(a, [str(w.dicom)], size=16),
    ),
    Row(
        "verify a package",
        None,
        package.verify,
        lambda a, w: package.verify(a, w.tmp / "no-package"),
    ),
    Row(
        "extract a package",
        None,
        package.extract,
        lambda a, w: package.extract(a, w.tmp / "no-package.zip", w.tmp / f"x-{a.user}"),
        connects=True,
    ),
    Row(
        "emergency stop",
        None,
        printing.emergency_stop,
        lambda a, w: printing.emergency_stop(a, _job(w)),
    ),
    Row(
        "what a printer takes",
        None,
        printing.target,
        lambda a, w: printing.target(a, "generic-marlin-220"),
    ),
    Row("show the settings", None, settings.show, lambda a, w: settings.show(a)),
    Row("show the signing key", None, keys.show, lambda a, w: keys.show(a)),
    Row("list recipients", None, keys.recipients, lambda a, w: keys.recipients(a)),
    Row("who am I", None, users.whoami, lambda a, w: users.whoami(a)),
    Row(
        "a material profile",
        None,
        resin.material_of,
        lambda a, w: resin.material_of(a, "no-such-resin"),
        connects=True,
    ),
    Row(
        "is a printer resin",
        None,
        resin.is_resin_printer,
        lambda a, w: resin.is_resin_printer(a, "prusa-sl1s"),
    ),
]


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_use_case_by_role(world: World, who, row: Row):
    actor = world.people[who]
    allowed = policy.PERMISSIONS[row.action] & policy.roles_of(actor) if row.action else True
    before = len(audit.read_records(actor.paths))
    if allowed:
        try:
            row.call(actor, world)
        except AccessDenied as exc:
            pytest.fail(f"{who} was refused '{row.name}': {exc}")
        except MedPrintError:
            if not row.connects:
                raise
        return
    with pytest.raises(AccessDenied) as refused:
        row.call(actor, world)
    assert f"user '{actor.user}'" in str(refused.value) and "role" in str(refused.value)
    new = audit.read_records(actor.paths)[before:]
    denied = [r for r in new if r["action"] == "access.denied"]
    assert denied and denied[-1]["user"] == actor.user
    # The refusal names this use case's permission, or one it needs first (list before identity).
    attempted = denied[-1]["facts"]["attempted"]
    assert attempted == row.action or not policy.PERMISSIONS[attempted] & policy.roles_of(actor)


def test_every_permission_is_in_the_table():
    """A use case added to the permission table gets a row here too."""
    assert set(policy.PERMISSIONS) - {row.action for row in ROWS} == set()


# Public workflow functions taking an actor that are no use case of their own.
NOT_USE_CASES = {
    # The policy itself and the integrity checks every record runs (tests/workflow/test_anchors).
    **dict.fromkeys(
        ["policy.record", "policy.roles_of", "policy.allow", "policy.refuse"], "the policy"
    ),
    **dict.fromkeys(
        [
            f"anchoring.{n}"
            for n in (
                "anchors_of",
                "known_people",
                "check",
                "check_audit",
                "before_record",
                "check_case",
                "after_record",
                "forward",
            )
        ],
        "anchors, checked on every act",
    ),
    # Checks and gates run inside use cases that have checked the permission.
    "names.identity_of": "inside trace and package (permission checked by the caller)",
    "names.check_outgoing": "inside exports (permission checked by the caller)",
    "names.check_all": "inside exports (permission checked by the caller)",
    "names.for_audit": "inside audit records",
    "review.lab": "the verified roles, inside review use cases",
    "review.latest_approved": "inside package, verify-print and registry",
    "review.release_mesh": "the approval gate, inside print and package",
    "review.release_gcode": "the approval gate, inside print and package",
    "review.release_foreign_gcode": "the approval gate, inside print and package",
    "trace.build": "inside record_pdf, review report and package",
    "verify_print.approved_mesh": "inside verify_print",
    "pacs.node": "a node by name, inside the PACS use cases",
    "segment.end_stroke": "closes a stroke begin_stroke allowed",
    # Before the actor has a role (tests/workflow/test_users, tests/multiuser).
    "users.init_vault": "founds a vault: no roles exist yet",
    "users.restore_vault": "the recovery key is the authority",
    "migration.migrate": "the founder's old-format vault, on first open",
    "users.request_enrolment": "asks to join: no role yet",
}


def _workflow_functions() -> set[str]:
    """``module.function`` of every public function in app/workflow whose first parameter is
    the actor."""
    found = set()
    folder = Path(policy.__file__).parent
    for path in sorted(folder.glob("*.py")):
        module = __import__(f"app.workflow.{path.stem}", fromlist=["_"])
        for name, fn in vars(module).items():
            if (
                name.startswith("_")
                or not inspect.isfunction(fn)
                or fn.__module__ != module.__name__
            ):
                continue
            params = list(inspect.signature(fn).parameters)
            if params and params[0] == "actor":
                found.add(f"{path.stem}.{name}")
    return found


def test_every_use_case_with_an_actor_has_a_row():
    """Compare the table with app/workflow: a new public function taking an actor gets a row
    (or a reason in NOT_USE_CASES)."""
    covered = {f"{row.uses.__module__.rsplit('.', 1)[-1]}.{row.uses.__name__}" for row in ROWS}
    missing = _workflow_functions() - covered - set(NOT_USE_CASES)
    assert missing == set(), sorted(missing)
    stale = set(NOT_USE_CASES) - _workflow_functions()
    assert stale == set(), sorted(stale)


def test_approval_needs_four_eyes(world: World):
    """The reviewer passes the role check; the mesh's author cannot approve it at all."""
    tech = world.people[TECH]
    with pytest.raises(AccessDenied):
        review.approve(tech, world.case, 1)

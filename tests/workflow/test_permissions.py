"""Every use case × every role: allowed, or refused with a clear error and an audited refusal.

One prepared world (a vault, a person per role, a segmented sphere case whose mesh v1 was made
by the technician, approved by the reviewer and sliced) serves the whole table. Each row is a use
case, the permission it needs, and a call; the roles allowed come from ``policy.PERMISSIONS``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.case import Case
from app.errors import AccessDenied, MedPrintError
from app.imaging.pacs.nodes import Node
from app.imaging.pacs.query import Query
from app.security import audit
from app.security.identity import PersonalKeys
from app.settings import resolve_paths
from app.workflow import (
    comments,
    intake,
    keys,
    mesh,
    order,
    package,
    pacs,
    policy,
    printing,
    records,
    review,
    segment,
    settings,
    trace,
    users,
    verify_print,
)
from app.workflow import slice as slicing
from app.workflow.actor import Actor
from tests.workflow.conftest import ADMIN, NOBODY, REVIEWER, TECH, person, sphere_volume

PEOPLE = ("founder", TECH, REVIEWER, ADMIN, NOBODY)


@dataclass
class World:
    people: dict[str, Actor]
    case: Case
    tmp: Path

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


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("permissions")
    previous = os.environ.get("MEDPRINT_KEYSTORE_SERVICE")
    os.environ["MEDPRINT_KEYSTORE_SERVICE"] = f"medprint-test-permissions-{uuid.uuid4().hex[:8]}"
    founder = Actor.current(resolve_paths(tmp / "data"))
    users.init_vault(founder)
    roles = {TECH: ("technician",), REVIEWER: ("reviewer",), ADMIN: ("administrator",)}
    people = {n: person(founder, n, *roles.get(n, ())) for n in (TECH, REVIEWER, ADMIN, NOBODY)}
    people["founder"] = founder
    case = _prepared_case(people)
    yield World(people, case, tmp)
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


# (use case, permission, call). A call must succeed for an allowed role; `connects` marks calls
# that get past the permission check and then fail on purpose (no printer listens).
ROWS: list[tuple[str, str, Callable[[Actor, World], object], bool]] = [
    ("vault status", "vault.status", lambda a, w: users.vault_status(a), False),
    ("show the recovery key", "vault.recovery_key", lambda a, w: users.recovery_key(a), False),
    ("rotate the master key", "vault.rotate_key", lambda a, w: users.rotate_key(a), False),
    ("list users", "users.list", lambda a, w: users.list_users(a), False),
    (
        "give a role",
        "users.manage",
        lambda a, w: users.add_role(a, w.applicant(), "technician"),
        False,
    ),
    ("export the signing key", "keys.export", lambda a, w: keys.export_signing_key(a), False),
    (
        "trust another key",
        "keys.manage",
        lambda a, w: keys.trust(a, keys.export_signing_key(w.people["founder"])[1]),
        False,
    ),
    ("list cases", "case.list", lambda a, w: intake.list_cases(a), False),
    (
        "show identities",
        "case.identity",
        lambda a, w: intake.list_cases(a, with_identity=True),
        False,
    ),
    ("open a case", "case.open", lambda a, w: intake.open_case(a, w.case.pseudonym), False),
    ("delete a case", "case.delete", lambda a, w: intake.delete_case(a, w.fresh_case()), False),
    (
        "run a segmentation tool",
        "segment",
        lambda a, w: segment.run_tool(
            a,
            w.case,
            _volume_and_seg(w)[1],
            w.case.load_volume(),
            "margin",
            {"segment": "bone", "margin_mm": 1.0},
        ),
        False,
    ),
    (
        "save the segmentation",
        "segment",
        lambda a, w: segment.save(a, w.case, _volume_and_seg(w)[1]),
        False,
    ),
    (
        "export the segmentation",
        "segment.export",
        lambda a, w: segment.export_file(
            a, w.case, _volume_and_seg(w)[1], w.tmp / f"{a.user}.seg.nrrd"
        ),
        False,
    ),
    ("build a mesh", "mesh.build", lambda a, w: mesh.build(a, w.case, settings="review"), False),
    (
        "edit a mesh",
        "mesh.edit",
        lambda a, w: mesh.edit(a, w.case, 1, "scale", {"factor": 1.01}),
        False,
    ),
    (
        "export a mesh",
        "mesh.export",
        lambda a, w: mesh.export(a, w.case, 1, w.tmp / f"{a.user}.stl"),
        False,
    ),
    ("review status", "review.view", lambda a, w: review.status(a, w.case, 1), False),
    ("approve", "review.approve", lambda a, w: review.approve(a, w.case, 1), False),
    (
        "reject",
        "review.reject",
        lambda a, w: review.reject(a, w.case, _not_v1(w), comment="thicker base"),
        False,
    ),
    (
        "record an override",
        "review.override",
        lambda a, w: review.override(a, w.case, "qa-failure", version=1, reason="table test"),
        False,
    ),
    (
        "slice",
        "slice",
        lambda a, w: slicing.slice_version(a, w.case, version=1, printer="generic-marlin-220"),
        False,
    ),
    (
        "print the case's G-code",
        "print",
        lambda a, w: printing.start(
            a,
            w.case,
            gcode_version=1,
            printer="generic-marlin-220",
            url=_dead_url(),
            kind="octoprint",
        ),
        True,
    ),
    (
        "print the approved mesh on a Formlabs printer",
        "print",
        lambda a, w: printing.start_mesh(
            a, w.case, version=1, printer="formlabs-form4b", url=_dead_url()
        ),
        True,
    ),
    (
        "set a printer's serial number",
        "printer.serial",
        lambda a, w: printing.set_serial(a, "generic-marlin-220", f"SN-{a.user}"),
        False,
    ),
    (
        "package",
        "package.build",
        lambda a, w: package.build(
            a, w.case, version=1, gcode_version=1, out_dir=_folder(w, f"pkg-{a.user}")
        ),
        False,
    ),
    (
        "pin a comment to a mesh version",
        "review.comment",
        lambda a, w: comments.add(a, w.case, 1, at=(0.0, 0.0, 0.0), text="check the rim"),
        False,
    ),
    (
        "record the case order",
        "order.set",
        lambda a, w: order.set_order(
            a, w.case, indication="trauma", region="head", service="other", due="2027-01-01"
        ),
        False,
    ),
    (
        "export the registry",
        "registry.export",
        lambda a, w: order.export_registry(a, w.tmp / f"registry-{uuid.uuid4().hex[:6]}.csv"),
        False,
    ),
    ("verify the audit log", "audit.view", lambda a, w: records.verify_log(a), False),
    ("export the audit log", "audit.export", lambda a, w: records.export_log(a, "json"), False),
    (
        "change a setting",
        "settings.manage",
        lambda a, w: settings.set_value(a, "units", "mm"),
        False,
    ),
    (
        "record a print step",
        "record.step",
        lambda a, w: trace.record_step(a, w.case, "cure"),
        False,
    ),
    ("view the trace", "trace.view", lambda a, w: trace.trace(a, w.case), False),
    # The rows below get past the permission, then fail on purpose: no scan file, no archive.
    (
        "verify a printed part",
        "verify_print",
        lambda a, w: verify_print.verify_print(a, w.case, w.tmp / "no-scan.stl"),
        True,
    ),
    (
        "lab QA of a printer",
        "lab_qa",
        lambda a, w: verify_print.lab_qa_verify(a, "generic-marlin-220", w.tmp / "no-scan.stl"),
        True,
    ),
    ("list PACS nodes", "pacs.nodes", lambda a, w: pacs.nodes(a), False),
    (
        "add a PACS node",
        "pacs.manage",
        lambda a, w: pacs.add_node(a, Node("archive", "ORTHANC", "127.0.0.1", 9)),
        False,
    ),
    ("remove a PACS node", "pacs.manage", lambda a, w: pacs.remove_node(a, "none"), True),
    ("query a PACS", "pacs.query", lambda a, w: pacs.find(a, "none", Query(), timeout=1), True),
    (
        "retrieve from a PACS",
        "pacs.retrieve",
        lambda a, w: pacs.retrieve(a, "none", "1.2.3"),
        True,
    ),
    ("store to a PACS", "pacs.store", lambda a, w: pacs.store(a, w.case, "none", 1), True),
]


@pytest.mark.parametrize("who", PEOPLE)
@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_use_case_by_role(world: World, who, row):
    use_case, action, call, connects = row
    actor = world.people[who]
    allowed = policy.PERMISSIONS[action] & policy.roles_of(actor)
    before = len(audit.read_records(actor.paths))
    if allowed:
        try:
            call(actor, world)
        except AccessDenied as exc:
            pytest.fail(f"{who} ({sorted(allowed)}) was refused '{use_case}': {exc}")
        except MedPrintError:
            if not connects:
                raise
        return
    with pytest.raises(AccessDenied) as refused:
        call(actor, world)
    assert f"user '{actor.user}'" in str(refused.value) and "role" in str(refused.value)
    new = audit.read_records(actor.paths)[before:]
    denied = [r for r in new if r["action"] == "access.denied"]
    assert denied and denied[-1]["user"] == actor.user
    # The refusal names this use case's permission, or one it needs first (list before identity).
    attempted = denied[-1]["facts"]["attempted"]
    assert attempted == action or not policy.PERMISSIONS[attempted] & policy.roles_of(actor)


def test_every_permission_is_in_the_table():
    """A use case added to the permission table gets a row here too."""
    covered = {row[1] for row in ROWS}
    missing = set(policy.PERMISSIONS) - covered
    # Covered elsewhere: import and de-identify need real DICOM (test_intake), identified
    # exports need a case with originals (test_segment), mesh.view is read-only.
    assert missing <= {"case.import", "deid", "segment.export_identified", "mesh.view"}, missing


def test_approval_needs_four_eyes(world: World):
    """The reviewer passes the role check; the mesh's author cannot approve it at all."""
    tech = world.people[TECH]
    with pytest.raises(AccessDenied):
        review.approve(tech, world.case, 1)

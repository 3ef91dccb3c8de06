"""Review through the workflow: who may approve, reject or override which mesh version, the four
eyes rule, QA failures, self-approval in a one-person vault, the release gate, and e-signatures
(a decision counts only when the signer's enrolled key signed it in the role it needs)."""

from __future__ import annotations

import pytest

from app.errors import AccessDenied, MedPrintError
from app.security import access, audit, esign
from app.security.identity import PersonalKeys, os_user
from app.tools.segmentation import get_tool
from app.tools.segmentation.model import Segmentation
from app.workflow import mesh, review, segment
from app.workflow.actor import Actor
from tests.workflow.conftest import person
from tests.workflow.mesh_versions import sphere_qa, store_version

TECH, REVIEWER, ADMIN, NOBODY = "tess", "rafael", "ada", "nemo"


def _denied(actor: Actor) -> list[dict]:
    return [r for r in audit.read_records(actor.paths) if r["action"] == "access.denied"]


def test_a_reviewer_approves_a_technicians_version(people, sphere_case):
    version = store_version(sphere_case, TECH)
    rafael = people[REVIEWER]
    rec = review.approve(rafael, sphere_case, version, comment="good fit")
    assert rec["meaning"] == review.APPROVED_FOR_PRINTING
    assert rec["signer"] == REVIEWER and rec["role"] == "reviewer"
    assert rec["printed_name"] == REVIEWER  # no such OS account here: the login name
    assert rec["signer_key"] == rafael.keys.public.fingerprint
    assert esign.check(rec, review.lab(people[TECH]).state) is None
    assert rec["mesh_version"] == version
    assert rec["mesh_sha256"] == sphere_case.mesh_sha256(version)
    assert rec["qa_sha256"] == access.qa_report_sha256(sphere_qa())
    assert rec["override_ids"] == []
    state = review.status(people[TECH], sphere_case, version)
    assert state.approved and REVIEWER in state.message
    last = audit.read_records(rafael.paths)[-1]
    assert last["action"] == "review.approved" and last["user"] == REVIEWER
    assert last["facts"]["mesh_sha256"] == rec["mesh_sha256"]
    assert "good fit" not in str(last)  # the comment stays in the vault


def test_the_author_cannot_approve_their_own_version(people, sphere_case):
    rafael = people[REVIEWER]
    own = store_version(sphere_case, REVIEWER)
    with pytest.raises(AccessDenied, match="four eyes"):
        review.approve(rafael, sphere_case, own)
    # An edit by someone else still counts the first author.
    derived = store_version(sphere_case, TECH, parent_version=own)
    assert review.authors(sphere_case, derived) == {REVIEWER, TECH}
    with pytest.raises(AccessDenied, match="four eyes"):
        review.approve(rafael, sphere_case, derived)
    assert [d["facts"]["reason"] for d in _denied(rafael)] == ["author", "author"]
    assert not review.status(rafael, sphere_case, own).approved


def test_a_qa_failure_needs_an_administrators_override_first(people, sphere_case):
    version = store_version(sphere_case, TECH, holed=True)
    rafael, ada, tess = people[REVIEWER], people[ADMIN], people[TECH]
    with pytest.raises(AccessDenied, match="failed QA"):
        review.approve(rafael, sphere_case, version)
    with pytest.raises(AccessDenied, match="administrator role"):
        review.override(tess, sphere_case, "qa-failure", reason="urgent", version=version)
    with pytest.raises(MedPrintError, match="reason is required"):
        review.override(ada, sphere_case, "qa-failure", reason=" ", version=version)
    override = review.override(ada, sphere_case, "qa-failure", reason="urgent", version=version)
    assert override["subject_sha256"] == sphere_case.mesh_sha256(version)
    rec = review.approve(rafael, sphere_case, version)
    assert rec["meaning"] == review.APPROVED_WITH_QA_OVERRIDE
    assert rec["override_ids"] == [override["id"]] and rec["qa_passed"] is False
    release = review.release_mesh(tess, sphere_case, version, "package.build")
    assert [o["kind"] for o in release.overrides] == ["qa-failure"]
    reasons = [d["facts"]["reason"] for d in _denied(ada)]
    assert reasons == ["qa-failed", "role"]


def test_self_approval_works_only_alone_in_the_vault(admin, sphere_case):
    version = store_version(sphere_case, admin.user)
    with pytest.raises(AccessDenied, match="reviewer role"):
        review.approve(admin, sphere_case, version)
    override = review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    state = review.status(admin, sphere_case, version)
    assert state.approved and state.record["meaning"] == review.SELF_APPROVED
    assert state.record["override_ids"] == [override["id"]]
    release = review.release_mesh(admin, sphere_case, version, "print")
    assert release.self_approved and release.overrides == [override]
    actions = [r["action"] for r in audit.read_records(admin.paths)]
    assert actions[-2:] == ["review.override", "review.approved"]


def test_self_approval_is_refused_when_others_are_enrolled(admin, sphere_case):
    person(admin, TECH, "technician")
    version = store_version(sphere_case, admin.user)
    with pytest.raises(AccessDenied, match="one enrolled person"):
        review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    assert _denied(admin)[-1]["facts"]["reason"] == "not-alone"
    assert not review.status(admin, sphere_case, version).approved


def test_a_rejection_needs_a_comment(people, sphere_case):
    version = store_version(sphere_case, TECH)
    rafael = people[REVIEWER]
    with pytest.raises(MedPrintError, match="reason saying what to change is required"):
        review.reject(rafael, sphere_case, version, comment="")
    with pytest.raises(MedPrintError, match="a rejection means one of"):
        review.reject(rafael, sphere_case, version, comment="no", meaning="approved for printing")
    rec = review.reject(rafael, sphere_case, version, comment="thicker base")
    assert rec["decision"] == access.REJECTED and rec["meaning"] == review.CHANGES_REQUESTED
    state = review.status(people[TECH], sphere_case, version)
    assert state.state == access.REJECTED
    assert audit.read_records(rafael.paths)[-1]["action"] == "review.rejected"


def test_a_new_version_is_not_approved(people, sphere_case):
    v1 = store_version(sphere_case, TECH)
    review.approve(people[REVIEWER], sphere_case, v1)
    v2 = store_version(sphere_case, TECH, radius=11.0, parent_version=v1)
    same = store_version(sphere_case, TECH, parent_version=v1)
    tess = people[TECH]
    assert review.status(tess, sphere_case, v1).approved
    assert review.status(tess, sphere_case, v2).state == access.VOID
    # Approval binds content: a version with the very parts and QA approved is approved too.
    assert review.status(tess, sphere_case, same).approved
    assert review.latest_approved(tess, sphere_case) == same


@pytest.mark.parametrize("state", ["none", "void", "rejected"])
def test_release_refuses_what_is_not_approved(people, sphere_case, state):
    tess = people[TECH]
    v1 = store_version(sphere_case, TECH)
    version = v1
    if state == "void":
        review.approve(people[REVIEWER], sphere_case, v1)
        version = store_version(sphere_case, TECH, radius=11.0, parent_version=v1)
    if state == "rejected":
        review.reject(people[REVIEWER], sphere_case, v1, comment="no")
    with pytest.raises(AccessDenied, match=f"mesh v{version} of .* cannot be printed"):
        review.release_mesh(tess, sphere_case, version, "print")
    denied = _denied(tess)[-1]
    assert denied["facts"]["attempted"] == "print" and denied["facts"]["reason"] == state


@pytest.mark.parametrize("who", [TECH, NOBODY, ADMIN])
def test_only_reviewers_approve_or_reject(people, sphere_case, who):
    version = store_version(sphere_case, "someone")
    actor = people[who]
    with pytest.raises(AccessDenied, match="reviewer role"):
        review.approve(actor, sphere_case, version)
    with pytest.raises(AccessDenied, match="reviewer role"):
        review.reject(actor, sphere_case, version, comment="no")
    assert [d["facts"]["attempted"] for d in _denied(actor)] == [
        "review.approve",
        "review.reject",
    ]
    assert not review.status(people[REVIEWER], sphere_case, version).approved


def test_decisions_live_encrypted_in_the_case(people, sphere_case, data_dir):
    version = store_version(sphere_case, TECH)
    review.approve(people[REVIEWER], sphere_case, version, comment="good fit")
    for path in data_dir.rglob("*"):
        if path.is_file() and path.suffix != ".jsonl":
            assert b"good fit" not in path.read_bytes()
            assert b'"decision"' not in path.read_bytes()


def test_alone_a_failed_qa_needs_the_qa_override_before_self_approval(admin, sphere_case):
    version = store_version(sphere_case, admin.user, holed=True)
    with pytest.raises(AccessDenied, match="failed QA"):
        review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    denied = _denied(admin)[-1]["facts"]
    assert denied["attempted"] == "review.override" and denied["reason"] == "qa-failed"
    qa = review.override(admin, sphere_case, "qa-failure", reason="cosmetic", version=version)
    own = review.override(admin, sphere_case, "self-approval", reason="alone", version=version)
    release = review.release_mesh(admin, sphere_case, version, "package.build")
    assert release.self_approved
    assert {o["id"] for o in release.overrides} == {qa["id"], own["id"]}


def _decisions(case) -> list[dict]:
    return [r for r in access.history(case) if r.get("type") == "decision"]


def _forge(case, record: dict) -> None:
    """What a technician with write access to the data folder can do: append a record."""
    case.save_decisions([*access.history(case), record])


def test_a_forged_or_changed_approval_does_not_count(people, sphere_case):
    tess, rafael = people[TECH], people[REVIEWER]
    v1 = store_version(sphere_case, TECH)
    v2 = store_version(sphere_case, TECH, radius=11.0, parent_version=v1)
    good = review.approve(rafael, sphere_case, v1)
    v2_sha = sphere_case.mesh_sha256(v2)
    v2_qa = access.qa_report_sha256(sphere_case.mesh_qa(v2))
    moved = good | {"mesh_sha256": v2_sha, "qa_sha256": v2_qa, "mesh_version": v2}
    unsigned = access.new_decision(
        sphere_case.pseudonym, access.APPROVED, v2_sha, sphere_case.mesh_qa(v2),
        meaning=review.APPROVED_FOR_PRINTING, mesh_version=v2, signer=REVIEWER, override_ids=[],
    )  # fmt: skip
    by_tess = esign.sign(unsigned, tess.keys, access.REVIEWER)
    forgeries = {
        "moved to another version": moved,
        "signed by the technician as herself": by_tess,
        "signed by the technician in the reviewer's name": by_tess | {"signer": REVIEWER},
        "written without a signature": unsigned,
    }
    for what, forged in forgeries.items():
        _forge(sphere_case, forged)
        state = review.status(tess, sphere_case, v2)
        assert not state.approved, what
        with pytest.raises(AccessDenied, match="cannot be printed"):
            review.release_mesh(tess, sphere_case, v2, "print")
    assert review.status(tess, sphere_case, v1).approved  # the real approval stands
    renamed = good | {"signer": ADMIN, "printed_name": "Ada Admin"}
    _forge(sphere_case, renamed)
    state = review.status(tess, sphere_case, v1)
    assert state.state == access.INVALID and "not enrolled" in state.message


def test_an_unsigned_decision_of_an_older_version_counts_as_not_reviewed(people, sphere_case):
    version = store_version(sphere_case, TECH)
    legacy = access.new_decision(
        sphere_case.pseudonym, access.APPROVED, sphere_case.mesh_sha256(version), sphere_qa(),
        meaning=review.APPROVED_FOR_PRINTING, reviewer=REVIEWER, reviewer_roles=["reviewer"],
    )  # fmt: skip
    _forge(sphere_case, legacy)
    state = review.status(people[TECH], sphere_case, version)
    assert state.state == access.NONE
    assert "unsigned decision from an older version: review again" in state.message
    review.approve(people[REVIEWER], sphere_case, version)
    assert review.status(people[TECH], sphere_case, version).approved


def test_a_forged_override_does_not_unlock_a_failed_qa(people, sphere_case):
    version = store_version(sphere_case, TECH, holed=True)
    tess = people[TECH]
    fake = access.new_override(
        sphere_case.pseudonym, access.QA_FAILURE, sphere_case.mesh_sha256(version), reason="x"
    )
    _forge(sphere_case, esign.sign(fake, tess.keys, access.ADMINISTRATOR))
    with pytest.raises(AccessDenied, match="failed QA"):
        review.approve(people[REVIEWER], sphere_case, version)


def test_a_key_that_is_not_the_enrolled_one_cannot_sign(people, sphere_case):
    version = store_version(sphere_case, TECH)
    impostor = Actor(REVIEWER, people[REVIEWER].paths, keys=PersonalKeys.in_memory(REVIEWER))
    impostor.adopt_vault(people[REVIEWER].vault)
    with pytest.raises(AccessDenied, match="not the one enrolled"):
        review.approve(impostor, sphere_case, version)
    assert _denied(impostor)[-1]["facts"]["reason"] == "key-not-enrolled"
    assert _decisions(sphere_case) == []


def _rita_segments_tess_builds(admin, people, case):
    """rita (technician and reviewer) saves a bone segmentation; the technician builds from it."""
    rita = person(admin, "rita", "technician", "reviewer")
    volume = case.load_volume()
    seg = Segmentation(volume)
    tool = get_tool("threshold")
    tool.apply(seg, volume, tool.default_params(preset="bone"))
    segment.save(rita, case, seg)
    return rita, mesh.build(people[TECH], case, settings="review")


def test_who_saved_the_segmentation_cannot_approve_a_mesh_built_from_it(admin, people, sphere_case):
    rita, made = _rita_segments_tess_builds(admin, people, sphere_case)
    assert review.authors(sphere_case, made.number) == {"rita", TECH}
    with pytest.raises(AccessDenied, match="four eyes"):
        review.approve(rita, sphere_case, made.number)
    assert review.approve(people[REVIEWER], sphere_case, made.number)["signer"] == REVIEWER


def test_authors_rewritten_in_the_vault_still_cannot_approve(admin, people, sphere_case):
    """rita (technician and reviewer) saved the segmentation; tess built from it. rita rewrites
    the version's and the segmentation's authors in the vault (she holds the vault key): the
    signed audit log still names her, so she can neither approve nor sign an approval that counts."""
    rita, made = _rita_segments_tess_builds(admin, people, sphere_case)
    info = sphere_case.mesh_info(made.number) | {"authors": []}
    sphere_case._save_json(f"mesh/v{made.number}/info.json", info)
    sphere_case._save_json("segmentation-authors.json", [TECH])
    assert review.authors(sphere_case, made.number) == {"rita", TECH}
    with pytest.raises(AccessDenied, match="four eyes"):
        review.approve(rita, sphere_case, made.number)
    record = access.new_decision(
        sphere_case.pseudonym, access.APPROVED, sphere_case.mesh_sha256(made.number),
        sphere_case.mesh_qa(made.number), meaning=review.APPROVED_FOR_PRINTING,
    )  # fmt: skip
    _forge(sphere_case, esign.sign(record, rita.keys, access.REVIEWER))
    state = review.status(people[TECH], sphere_case, made.number)
    assert not state.approved and "four eyes" in state.message


def test_the_other_version_of_a_boolean_counts_by_the_log(admin, people, sphere_case):
    """rita built v1; tess unites her own v2 with it. Rewriting the authors of v1 and of the
    union in the vault leaves rita an author, as the log's edit record names v1."""
    rita, tess = person(admin, "rita", "technician", "reviewer"), people[TECH]
    volume = sphere_case.load_volume()
    seg = Segmentation(volume)
    tool = get_tool("threshold")
    tool.apply(seg, volume, tool.default_params(preset="bone"))
    segment.save(tess, sphere_case, seg)
    theirs = mesh.build(rita, sphere_case, settings="review").number
    own = mesh.build(tess, sphere_case, settings="review").number
    joined = mesh.edit(tess, sphere_case, own, "union", {"with_version": theirs}).number
    for number, author in ((theirs, TECH), (joined, TECH)):
        info = sphere_case.mesh_info(number) | {"author": author, "authors": []}
        sphere_case._save_json(f"mesh/v{number}/info.json", info)
    assert review.authors(sphere_case, joined) == {"rita", TECH}
    with pytest.raises(AccessDenied, match="four eyes"):
        review.approve(rita, sphere_case, joined)


def test_the_environment_does_not_change_who_signs(admin, sphere_case, monkeypatch):
    monkeypatch.setenv("LOGNAME", REVIEWER)
    monkeypatch.setenv("USER", REVIEWER)
    actor = Actor.current(admin.paths)
    assert actor.user == os_user() == admin.user != REVIEWER
    version = store_version(sphere_case, TECH)
    own = review.override(actor, sphere_case, "self-approval", reason="alone", version=version)
    (decision,) = _decisions(sphere_case)
    assert own["signer"] == decision["signer"] == admin.user
    assert decision["signer_key"] == admin.keys.public.fingerprint
    assert {r["user"] for r in audit.read_records(admin.paths)} == {admin.user}

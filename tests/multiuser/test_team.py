"""A lab of four people on one workstation, each at their own OS login, sharing one vault.

The administrator creates the vault; the technicians and the reviewer run ``medprint whoami``
(their keys are made and an enrolment request is left) and are enrolled. The technician builds
a mesh of a real CT; the reviewer approves it with their own key. What the technician must not
manage, with their own login and full access to the shared folder, is tried as they would.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.multiuser.conftest import Lab, make_lab
from tests.multiuser.harness import finish
from tests.test_end_to_end import RING_OF_SKULL

pytestmark = pytest.mark.slow

APPROVE = ("--meaning", "approved for printing")
ROLES = {"admin": "administrator", "tech": "technician", "tech2": "technician", "rev": "reviewer"}


def refused(proc: subprocess.CompletedProcess) -> str:
    """The refusal message (the command must have failed, saying why)."""
    assert proc.returncode != 0, f"expected a refusal, got success:\n{proc.stdout[-2000:]}"
    assert proc.stderr.strip(), "a refusal says why"
    return proc.stderr


def enrol_team(lab: Lab) -> None:
    """The administrator founds the vault; the others ask to join and are enrolled."""
    made = lab.json("admin", "vault", "init", "--json")
    lab.notes["recovery_key"] = made["recovery_key"]
    for who in ("tech", "tech2", "rev"):
        lab.notes[f"before-{who}"] = lab.json(who, "whoami", "--json")
        lab.ok("admin", "users", "enrol", lab.name(who), ROLES[who])


@pytest.fixture(scope="module")
def team(workstation, temp_folders) -> Lab:
    lab = make_lab(workstation, temp_folders, "data-team")
    enrol_team(lab)
    return lab


@pytest.fixture(scope="module")
def series(workstation, dicom_dir) -> Path:
    """Eight slices of the tilted head CT (the PHI canaries' ring of skull), copied where every
    account can read them: the whole head only made the mesh slower (13 s against 6 s)."""
    slices = sorted((dicom_dir / "ct-head-ge-gantry-tilt-28").glob("*.dcm"))[RING_OF_SKULL]
    return workstation.readable_copy(slices, "ct-head")


@pytest.fixture(scope="module")
def built(team: Lab, series: Path) -> str:
    """The technician's case with bone segmented and mesh version 1 built (no label: the
    pseudonym's letters move this thin skull's wall-thickness share across QA's 2 % limit,
    so QA would depend on the random pseudonym; identities are what is tested here)."""
    case = team.json("tech", "import", str(series), "--json")["case"]
    team.ok("tech", "segment", case, "--tool", "bone")
    team.ok("tech", "mesh", case, "--no-label")
    return case


def audit_records(lab: Lab, case: str | None = None) -> list[dict]:
    args = ["audit", "export", "--format", "json"] + (["--case", case] if case else [])
    return lab.json("admin", *args)


@pytest.fixture(scope="module")
def whoami(team: Lab) -> dict[str, dict]:
    """What ``whoami --json`` says to each enrolled account."""
    return {who: team.json(who, "whoami", "--json") for who in ROLES}


def attempts(records: list[dict], prefix: str) -> list[dict]:
    """Records of actions starting with ``prefix``, done or refused (``access.denied``)."""
    return [
        r
        for r in records
        if r["action"].startswith(prefix)
        or str((r.get("facts") or {}).get("attempted", "")).startswith(prefix)
    ]


def review_status(lab: Lab, case: str) -> dict:
    proc = lab.run_as("rev", "review", "status", case, "--version", "1", "--json")
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


# --- enrolment and identity ------------------------------------------------------------------


def test_whoami_before_enrolment_makes_keys_and_asks_to_join(team: Lab):
    for who in ("tech", "tech2", "rev"):
        before = team.notes[f"before-{who}"]
        assert before["user"] == team.name(who)
        assert before["fingerprint"]
        assert before["request"] is True and before["member"] is False


def test_whoami_shows_each_accounts_roles_and_own_key(team: Lab, whoami: dict[str, dict]):
    for who, role in ROLES.items():
        assert whoami[who]["user"] == team.name(who)
        assert whoami[who]["roles"] == [role]
    for who in ("tech", "tech2", "rev"):  # the key made at the first whoami is the one enrolled
        assert whoami[who]["fingerprint"] == team.notes[f"before-{who}"]["fingerprint"]
    assert len({me["fingerprint"] for me in whoami.values()}) == len(ROLES), "a key each"


def test_users_list_names_every_member_with_their_key(team: Lab, whoami: dict[str, dict]):
    listed = team.json("admin", "users", "list", "--json")
    for who, role in ROLES.items():
        assert role in listed[team.name(who)]["roles"]
        assert listed[team.name(who)]["fingerprint"] == whoami[who]["fingerprint"]


# --- four eyes, and what the technician cannot do ---------------------------------------------


def test_technician_cannot_approve_their_own_mesh(team: Lab, built: str):
    refused(team.run_as("tech", "review", "approve", built, "--version", "1", *APPROVE))
    assert review_status(team, built)["state"] != "approved"


def test_reviewer_approves_with_their_own_key(team: Lab, built: str, whoami: dict[str, dict]):
    team.ok("rev", "review", "approve", built, "--version", "1", *APPROVE)
    status = review_status(team, built)
    assert status["state"] == "approved"
    signed = json.dumps(status["record"])
    assert whoami["rev"]["fingerprint"] in signed
    assert "Rita Reviewer" in signed  # the printed name from the account's GECOS field


def test_claiming_the_reviewers_name_changes_nothing(team: Lab, built: str):
    forged = {"LOGNAME": team.name("rev"), "USER": team.name("rev")}
    refused(team.run_as("tech", "review", "approve", built, "--version", "1", *APPROVE, env=forged))
    tried = attempts(audit_records(team, built), "review.")
    assert tried[-1]["user"] == team.name("tech"), tried[-1]
    assert review_status(team, built)["state"] == "approved"


def test_technician_cannot_make_themselves_administrator(team: Lab):
    refused(team.run_as("tech", "users", "enrol", team.name("tech"), "administrator"))
    assert team.json("tech", "whoami", "--json")["roles"] == ["technician"]


def test_technician_cannot_read_the_recovery_key(team: Lab):
    proc = team.run_as("tech", "vault", "recovery-key")
    refused(proc)
    key = team.notes["recovery_key"]
    assert key not in proc.stdout + proc.stderr
    for path in team.data.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), f"recovery key in {path}"


# --- two people at once ------------------------------------------------------------------------


def test_two_accounts_writing_at_once_both_succeed(team: Lab, series: Path):
    started = [team.start_as(who, "import", str(series), "--json") for who in ("tech", "tech2")]
    imports = [finish(p) for p in started]
    for proc in imports:
        assert proc.returncode == 0, proc.stderr[-2000:]
    cases = [json.loads(p.stdout)["case"] for p in imports]
    assert cases[0] != cases[1]
    started = [
        team.start_as(who, "segment", case, "--tool", "bone")
        for who, case in zip(("tech", "tech2"), cases, strict=True)
    ]
    for proc in map(finish, started):
        assert proc.returncode == 0, proc.stderr[-2000:]
    listed = team.ok("admin", "cases", "--json")
    assert all(case in listed for case in cases)
    team.ok("admin", "audit", "verify")
    saved = attempts(audit_records(team), "segment")
    assert {r["user"] for r in saved} >= {team.name("tech"), team.name("tech2")}


def test_a_removed_person_opens_nothing_any_more(team: Lab):
    removed = team.json("admin", "users", "remove", team.name("tech2"), "--json")
    assert removed["removed"] == team.name("tech2")
    assert removed["recovery_key"] != team.notes["recovery_key"]
    refused(team.run_as("tech2", "cases", "--json"))
    assert team.name("tech2") not in team.json("admin", "users", "list", "--json")

"""E-signatures on decisions: only the named signer's enrolled key, in the role the record
needs, makes a record count; the roles a package carries chain back to a trusted lab key."""

from __future__ import annotations

import pytest

from app.security import access, esign
from app.security.identity import PersonalKeys
from app.security.roles import issue, verify_chain

VAULT = "0123456789abcdef"
MESH = "a" * 64
QA = {"passed": True, "checks": []}


@pytest.fixture
def lab() -> dict:
    """A founder (administrator), a reviewer and a technician, and the chain enrolling them."""
    people = {u: PersonalKeys.in_memory(u) for u in ("ada", "rafael", "tess")}
    founder = people["ada"].public.fingerprint
    chain: list[dict] = []
    for user, role in (("ada", "administrator"), ("rafael", "reviewer"), ("tess", "technician")):
        statement = issue(
            chain,
            people["ada"],
            people[user].public,
            {role},
            vault_id=VAULT,
            founder_fingerprint=founder,
        )
        chain.append(statement)
    state = verify_chain(chain, vault_id=VAULT, founder_fingerprint=founder)
    return {"keys": people, "chain": chain, "founder": founder, "state": state}


def _approval(meaning: str = access.APPROVED_FOR_PRINTING) -> dict:
    decision = access.new_decision("C-TEST-01", access.APPROVED, MESH, QA, meaning=meaning)
    return decision | {"comment": "kept in the vault", "override_ids": []}


def _code(record: dict, state) -> str | None:
    found = esign.check(record, state)
    return found.code if found else None


def test_a_reviewers_signed_approval_counts(lab):
    signed = esign.sign(_approval(), lab["keys"]["rafael"], access.REVIEWER)
    assert signed["signer"] == "rafael" and signed["role"] == access.REVIEWER
    assert signed["signer_key"] == lab["keys"]["rafael"].public.fingerprint
    assert signed["printed_name"] and signed["meaning"] == access.APPROVED_FOR_PRINTING
    assert esign.check(signed, lab["state"]) is None
    # The free text stays in the vault: dropping it (as a package does) keeps the signature.
    public = {k: v for k, v in signed.items() if k != "comment"} | {"kept_in_vault": ["comment"]}
    assert esign.check(public, lab["state"]) is None


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("signer", "tess", esign.UNKNOWN_SIGNER),
        ("printed_name", "Someone Else", esign.BAD_SIGNATURE),
        ("mesh_sha256", "b" * 64, esign.BAD_SIGNATURE),
        ("meaning", access.SELF_APPROVED, esign.BAD_SIGNATURE),
        ("time_utc", "2001-01-01T00:00:00Z", esign.BAD_SIGNATURE),
    ],
)
def test_a_changed_signed_approval_does_not_count(lab, field, value, code):
    signed = esign.sign(_approval(), lab["keys"]["rafael"], access.REVIEWER)
    assert _code(signed | {field: value}, lab["state"]) == code


def test_a_technician_cannot_sign_as_the_reviewer_or_in_their_role(lab):
    tess = lab["keys"]["tess"]
    as_reviewer = esign.sign(_approval(), tess, access.REVIEWER)
    assert _code(as_reviewer, lab["state"]) == esign.WRONG_ROLE
    named_rafael = as_reviewer | {"signer": "rafael"}
    assert _code(named_rafael, lab["state"]) == esign.UNKNOWN_SIGNER
    outsider = esign.sign(_approval(), PersonalKeys.in_memory("rafael"), access.REVIEWER)
    assert _code(outsider, lab["state"]) == esign.UNKNOWN_SIGNER
    assert _code(_approval(), lab["state"]) == esign.UNSIGNED
    assert (
        "unsigned decision from an older version" in esign.check(_approval(), lab["state"]).message
    )


def test_overrides_and_self_approvals_need_an_administrator(lab):
    override = access.new_override("C-TEST-01", access.QA_FAILURE, MESH, reason="urgent")
    by_reviewer = esign.sign(override, lab["keys"]["rafael"], access.ADMINISTRATOR)
    assert _code(by_reviewer, lab["state"]) == esign.WRONG_ROLE
    assert (
        esign.check(esign.sign(override, lab["keys"]["ada"], access.ADMINISTRATOR), lab["state"])
        is None
    )
    self_approved = _approval(access.SELF_APPROVED)
    assert esign.needed_role(self_approved) == access.ADMINISTRATOR
    by_admin = esign.sign(self_approved, lab["keys"]["ada"], access.ADMINISTRATOR)
    assert esign.check(by_admin, lab["state"]) is None
    as_reviewer = esign.sign(self_approved, lab["keys"]["rafael"], access.REVIEWER)
    assert _code(as_reviewer, lab["state"]) == esign.WRONG_ROLE


def test_a_package_carries_the_chain_up_to_its_signers_and_it_needs_a_trusted_lab(lab):
    bundle = esign.roles_bundle(
        lab["chain"], vault_id=VAULT, founder=lab["founder"], signers={"rafael"}
    )
    assert len(bundle["statements"]) == 2  # the founder's and the reviewer's, not the technician's
    state = esign.open_bundle(bundle, {lab["founder"]})
    assert not isinstance(state, esign.Invalid) and state.roles["rafael"] == {access.REVIEWER}
    assert esign.open_bundle(bundle, set()).code == esign.LAB_UNTRUSTED
    assert esign.open_bundle(bundle, {lab["founder"]}, {lab["founder"]}).code == esign.LAB_UNTRUSTED
    assert esign.open_bundle(None, {lab["founder"]}).code == esign.NO_ROLES
    promoted = [lab["chain"][0], lab["chain"][1] | {"roles": ["administrator"]}]
    forged = bundle | {"statements": promoted}
    assert esign.open_bundle(forged, {lab["founder"]}).code == esign.BAD_ROLES
    # Another lab's founder, trusted by nobody here, cannot vouch for its own chain.
    other = PersonalKeys.in_memory("ada")
    fake = issue(
        [],
        other,
        other.public,
        {"administrator"},
        vault_id=VAULT,
        founder_fingerprint=other.public.fingerprint,
    )
    theirs = bundle | {"founder": other.public.fingerprint, "statements": [fake]}
    assert esign.open_bundle(theirs, {lab["founder"]}).code == esign.LAB_UNTRUSTED

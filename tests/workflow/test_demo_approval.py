"""The demo goes on when its mesh fails QA (any series can): the approval then carries a
signed QA override next to the self-approval, and the step's line says so."""

from __future__ import annotations

from app.workflow import review
from app.workflow.demo import _approve
from tests.workflow.mesh_versions import store_version


def test_a_failed_qa_in_the_demo_is_an_audited_override(admin, sphere_case):
    version = store_version(sphere_case, admin.user, holed=True)
    _, text = _approve(admin, sphere_case, version, ["watertight"])
    assert "QA failed (watertight): recorded as an audited QA override" in text
    state = review.status(admin, sphere_case, version)
    assert state.approved, state.message
    assert state.record["qa_passed"] is False and len(state.record["override_ids"]) == 2


def test_a_passed_qa_in_the_demo_is_only_self_approved(admin, sphere_case):
    version = store_version(sphere_case, admin.user)
    _, text = _approve(admin, sphere_case, version, [])
    assert "QA" not in text
    state = review.status(admin, sphere_case, version)
    assert state.approved and len(state.record["override_ids"]) == 1

"""The demo goes on when its mesh fails QA (any series can): the approval then carries a
signed QA override next to the self-approval, and the step's line says so."""

from __future__ import annotations

from app.workflow import review, segment
from app.workflow.demo import _approve, _segment
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


def test_the_demo_part_is_named_by_segment_and_body_region(admin, sphere_case):
    """The printed part is the largest bone piece that fits, named by the segment and the
    series' BodyPartExamined (sphere_case: PHANTOM), never a fixed "spine"."""
    name, text = _segment(admin, sphere_case)
    assert name == "bone-phantom" and "its largest piece that fits" in text
    seg = segment.load(admin, sphere_case)
    assert seg.mask(name).sum() == seg.mask("bone").sum() > 0


def test_without_a_body_region_the_part_is_unspecified(admin, sphere_case):
    sphere_case.save_series_facts({"modality": "CT"})
    name, _ = _segment(admin, sphere_case)
    assert name == "bone-unspecified"

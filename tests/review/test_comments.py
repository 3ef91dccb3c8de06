"""Comments pinned to a mesh version: made, listed, resolved, kept in the vault only."""

from __future__ import annotations

import json

import pytest

from app import cli
from app.errors import AccessDenied, MedPrintError
from app.security import audit
from app.workflow import comments, package, review
from app.workflow.actor import Actor
from tests.review.conftest import store_lineage

SECRET = "QQSECRETREMARK"


def test_comments_are_pinned_listed_and_resolved(people, canary_case):
    version = store_lineage(canary_case, "tess")
    first = comments.add(
        people["rafael"], canary_case, version, at=(1.5, -2.0, 30.25), text=f"thin {SECRET}"
    )
    second = comments.add(people["tess"], canary_case, 1, at=(0, 0, 0), text="check the rim")
    assert first["at_lps_mm"] == [1.5, -2.0, 30.25] and first["version"] == version
    assert first["mesh_sha256"] == canary_case.mesh_sha256(version)
    assert first["author"] == "rafael" and first["resolved"] is None
    assert comments.listed(people["ada"], canary_case, version) == [first]
    assert [c["id"] for c in comments.listed(people["ada"], canary_case)] == [
        first["id"],
        second["id"],
    ]
    done = comments.resolve(people["tess"], canary_case, first["id"])
    assert done["resolved"]["by"] == "tess"
    assert canary_case.load_comments()[0]["resolved"]["by"] == "tess"
    with pytest.raises(MedPrintError, match="already resolved"):
        comments.resolve(people["tess"], canary_case, first["id"])
    with pytest.raises(MedPrintError, match="no comment"):
        comments.resolve(people["tess"], canary_case, "nope")
    with pytest.raises(AccessDenied):
        comments.add(people["nemo"], canary_case, version, at=(0, 0, 0), text="x")
    with pytest.raises(MedPrintError):
        comments.add(people["tess"], canary_case, version, at=(0, 0), text="x")
    logged = json.dumps(audit.read_records(people["tess"].paths))
    assert SECRET not in logged and first["id"] in logged


def test_comments_never_leave_in_a_package_and_a_rejection_needs_one(people, canary_case, tmp_path):
    version = store_lineage(canary_case, "tess")
    with pytest.raises(MedPrintError):
        review.reject(people["rafael"], canary_case, version, comment="")
    comments.add(people["rafael"], canary_case, version, at=(1, 2, 3), text=SECRET)
    review.approve(people["rafael"], canary_case, version)
    drive = tmp_path / "drive"
    drive.mkdir()
    made = package.build(people["tess"], canary_case, out_dir=drive)
    for file in made.path.rglob("*"):
        assert file.is_dir() or SECRET.encode() not in file.read_bytes()


def test_comment_commands(people, canary_case, monkeypatch, capsys):
    version = store_lineage(canary_case, "tess")
    monkeypatch.setattr(Actor, "current", classmethod(lambda cls, *a, **k: people["rafael"]))
    pseudonym = canary_case.pseudonym
    argv = ["review", "comment", pseudonym, "--version", str(version), "--at", "1,-2.5,3"]
    assert cli.main([*argv, "--text", "smooth here", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)[0]
    assert made["at_lps_mm"] == [1.0, -2.5, 3.0] and made["text"] == "smooth here"
    assert cli.main(["review", "comments", pseudonym, "--version", str(version), "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == [made["id"]]
    assert cli.main(["review", "resolve", pseudonym, "--comment", made["id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["resolved"]["by"] == "rafael"
    assert cli.main(["review", "comments", pseudonym, "--version", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []

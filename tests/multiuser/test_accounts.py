"""The harness itself: each OS account runs the installed program as itself, with its own
keystore that keeps its secrets from one command to the next."""

from __future__ import annotations

import json

import pytest

from tests.multiuser.conftest import Lab

pytestmark = pytest.mark.slow


def test_every_account_runs_the_installed_program(lab: Lab):
    for who in ("tech", "rev"):
        assert lab.ok(who, "--version").strip().startswith("medprint ")


def test_whoami_names_the_os_account_whatever_the_environment_says(lab: Lab):
    forged = {"LOGNAME": lab.name("rev"), "USER": lab.name("rev")}
    me = lab.json("tech", "whoami", "--json", env=forged)
    assert me["user"] == lab.name("tech")


def test_each_account_keeps_its_vault_key_in_its_own_keystore(lab: Lab):
    for who in ("admin", "tech"):
        own = lab.station.private_folder(lab.account(who), f"own-data-{lab.name(who)}")
        env = {"MEDPRINT_DATA_DIR": str(own)}
        made = json.loads(lab.ok(who, "vault", "init", "--json", env=env))
        assert made["administrator"] == lab.name(who)
        # A later command, in a new keystore session, still finds this account's keys.
        me = json.loads(lab.ok(who, "whoami", "--json", env=env))
        assert me["user"] == lab.name(who)
        assert "administrator" in me["roles"]
        status = json.loads(lab.ok(who, "vault", "status", "--json", env=env))
        assert status["cases"] == 0

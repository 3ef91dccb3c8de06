"""A technician with their own login, a terminal and write access to the shared folder tries to
give themselves more: every such change is reported by every later command, whoever runs it."""

from __future__ import annotations

import pytest

from tests.multiuser.conftest import Lab
from tests.multiuser.test_team import refused

pytestmark = pytest.mark.slow

# Run as the technician, with their own keystore: they are a member, so they hold the vault's
# master key and can write the encrypted roles record; only an administrator's key can sign.
PROMOTE = """
from app.workflow.actor import Actor
vault = Actor.current().vault
chain = vault.get_record("roles")
assert chain and b"technician" in chain, chain
vault.put_record("roles", chain.replace(b"technician", b"administrator"))
print("rewritten")
"""

SAVE_ROLES = """
import os, pathlib
from app.workflow.actor import Actor
copy = pathlib.Path(os.environ["TMPDIR"], "roles.old")
copy.write_bytes(Actor.current().vault.get_record("roles"))
print("saved")
"""

PUT_BACK_ROLES = """
import os, pathlib
from app.workflow.actor import Actor
old = pathlib.Path(os.environ["TMPDIR"], "roles.old").read_bytes()
Actor.current().vault.put_record("roles", old)
print("put back")
"""

LATER_COMMANDS = (
    ("admin", ("users", "list", "--json")),
    ("rev", ("whoami", "--json")),
    ("tech", ("cases", "--json")),
)


def found_vault(lab: Lab, *people: str) -> None:
    lab.ok("admin", "vault", "init")
    for who in people:
        lab.ok(who, "whoami", "--json")
        role = "technician" if who == "tech" else "reviewer"
        lab.ok("admin", "users", "enrol", lab.name(who), role)


def attack(lab: Lab, code: str, done: str) -> None:
    proc = lab.python_as("tech", code)
    assert proc.returncode == 0 and done in proc.stdout, proc.stderr[-2000:]


def assert_every_command_reports_roles(lab: Lab) -> None:
    for who, args in LATER_COMMANDS:
        message = refused(lab.run_as(who, *args))
        assert "roles" in message.lower(), message


def test_technician_rewriting_the_roles_record_is_reported_to_everyone(lab: Lab):
    found_vault(lab, "tech", "rev")
    attack(lab, PROMOTE, "rewritten")
    assert_every_command_reports_roles(lab)
    refused(lab.run_as("tech", "vault", "recovery-key"))


def test_technician_putting_back_an_older_roles_record_is_reported(lab: Lab):
    found_vault(lab, "tech")
    attack(lab, SAVE_ROLES, "saved")
    lab.ok("rev", "whoami", "--json")
    lab.ok("admin", "users", "enrol", lab.name("rev"), "reviewer")
    for who, args in LATER_COMMANDS:  # everyone works once with the newer roles
        lab.ok(who, *args)
    attack(lab, PUT_BACK_ROLES, "put back")
    assert_every_command_reports_roles(lab)

"""Fixtures for the several-people tests: a workstation with four OS accounts, and labs.

A *lab* is one shared data folder (``MEDPRINT_DATA_DIR``) on that workstation, group-owned
with setgid and group-writable, that the accounts use as themselves::

    def test_x(lab):
        lab.run_as("admin", "vault", "init")
        lab.run_as("tech", "whoami", "--json")

Under CI (``CI=true``) a missing part (root, runuser, gnome-keyring, python3-venv) fails the
tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.multiuser.harness import Account, Workstation, finish, missing_parts, new_workstation

PEOPLE = {
    "admin": "Ada Administrator",
    "tech": "Tom Technician",
    "tech2": "Tess Technician",
    "rev": "Rita Reviewer",
}


@dataclass
class Lab:
    """One shared data folder and the people who work in it."""

    station: Workstation
    data: Path
    temp: dict[str, Path]
    notes: dict[str, object] = field(default_factory=dict)

    def account(self, who: str) -> Account:
        return self.station.accounts[who]

    def name(self, who: str) -> str:
        """The OS login name of ``who`` (``admin``, ``tech``, ``tech2``, ``rev``)."""
        return self.account(who).name

    def start_as(
        self, who: str, *args: str, env: dict[str, str] | None = None, program=("medprint",)
    ) -> subprocess.Popen:
        env = {"TMPDIR": str(self.temp[who]), **(env or {})}
        account = self.account(who)
        return self.station.start_as(account, *args, data=self.data, env=env, program=program)

    def run_as(
        self, who: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """``medprint ARGS`` as the account ``who``, in its own keystore session."""
        return finish(self.start_as(who, *args, env=env))

    def ok(self, who: str, *args: str, env: dict[str, str] | None = None) -> str:
        """Like :meth:`run_as`, asserting success; the standard output."""
        proc = self.run_as(who, *args, env=env)
        assert proc.returncode == 0, f"{who}: medprint {' '.join(args)}\n{proc.stderr[-3000:]}"
        return proc.stdout

    def json(self, who: str, *args: str, env: dict[str, str] | None = None) -> dict | list:
        return json.loads(self.ok(who, *args, env=env))

    def python_as(self, who: str, code: str) -> subprocess.CompletedProcess:
        """Python code run as ``who`` with the program's modules and the account's keystore:
        what a person with that login and a terminal can do."""
        python = str(self.station.bin / "python")
        return finish(self.start_as(who, "-c", code, program=(python,)))


def _require_parts() -> None:
    missing = missing_parts()
    if not missing:
        return
    msg = f"several-account tests need: {', '.join(missing)}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def workstation() -> Iterator[Workstation]:
    """OS accounts for an administrator, two technicians and a reviewer, in one group."""
    _require_parts()
    station = new_workstation()
    try:
        for who, full_name in PEOPLE.items():
            station.add_account(who, full_name)
        yield station
    finally:
        station.teardown()


@pytest.fixture(scope="session")
def temp_folders(workstation: Workstation) -> dict[str, Path]:
    """Each account's own TMPDIR (the canary scans them)."""
    return {
        who: workstation.private_folder(account, "tmp")
        for who, account in workstation.accounts.items()
    }


def make_lab(station: Workstation, temp: dict[str, Path], name: str) -> Lab:
    return Lab(station, station.shared_folder(name), temp)


@pytest.fixture
def lab(workstation: Workstation, temp_folders: dict[str, Path], request) -> Lab:
    """A fresh shared data folder for one test."""
    return make_lab(workstation, temp_folders, f"data-{request.node.name}"[:60])

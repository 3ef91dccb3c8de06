"""Workflow fixtures: a vault in a private data folder, people in each role, a small case.

Every actor here shares the one opened vault; each has personal keys of their own, made in
memory (:meth:`PersonalKeys.in_memory`), enrolled by the founder from an enrolment request like a
real account's (several real OS accounts are the multi-user tests' business).
"""

from __future__ import annotations

import numpy as np
import pytest

from app.case import Case
from app.imaging.volume import Volume
from app.security.identity import PersonalKeys
from app.settings import resolve_paths
from app.workflow import users
from app.workflow.actor import Actor

TECH, REVIEWER, ADMIN, NOBODY = "tess", "rafael", "ada", "nemo"


@pytest.fixture
def admin(data_dir, keystore_service) -> Actor:
    """The OS user who created the vault: its first administrator."""
    actor = Actor.current(resolve_paths(data_dir))
    users.init_vault(actor)
    return actor


def person(admin: Actor, name: str, *roles: str) -> Actor:
    """``name`` with personal keys made in memory, sharing the admin's opened vault; with
    ``roles``, enrolled by ``admin`` from their enrolment request (without: not a member)."""
    actor = Actor(name, admin.paths, keys=PersonalKeys.in_memory(name), _vault=admin.vault)
    if roles:
        users.request_enrolment(actor)
        users.enrol(admin, name, list(roles))
    return actor


@pytest.fixture
def people(admin: Actor) -> dict[str, Actor]:
    """One actor per role (and one with none), all in the admin's vault."""
    roles = {TECH: ("technician",), REVIEWER: ("reviewer",), ADMIN: ("administrator",)}
    return {n: person(admin, n, *roles.get(n, ())) for n in (TECH, REVIEWER, ADMIN, NOBODY)} | {
        "founder": admin
    }


def sphere_volume(radius_mm: float = 12.0, size: int = 48, spacing: float = 1.0) -> Volume:
    """A CT-like cube of air with a bone sphere (1000 HU) in the middle."""
    grid = (np.indices((size, size, size)).astype(np.float32) - (size - 1) / 2) * spacing
    inside = np.sqrt((grid**2).sum(axis=0)) <= radius_mm
    array = np.where(inside, 1000, -1000).astype(np.int16)
    return Volume(array, origin=(0.0, 0.0, 0.0), spacing=(spacing,) * 3, modality="CT")


@pytest.fixture
def sphere_case(admin: Actor) -> Case:
    """A case holding a small synthetic CT with a bone sphere (no DICOM originals)."""
    pseudonym = admin.vault.create_case({"PatientName": "DOE^JANE"})
    case = Case(admin.vault, pseudonym)
    case.save_volume(sphere_volume())
    case.save_series_facts({"modality": "CT", "body_part": "PHANTOM"})
    return case

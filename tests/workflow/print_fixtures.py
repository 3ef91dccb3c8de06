"""Fixtures for slicing and printing: a case with a stored icosphere mesh version, approved.

The mesh is stored directly through the case (no dependency on the mesh pipeline); the
technician "tess" is its author and the reviewer "rafael" approves it. Test modules pull these
in with ``pytest_plugins = ["tests.workflow.print_fixtures"]`` (they also need the workflow
fixtures of ``tests/workflow/conftest.py``, which ``tests/ui`` loads the same way).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import trimesh

from app.case import Case
from app.workflow import review
from app.workflow.actor import Actor

QA_PASSED = {"passed": True, "checks": []}


def sphere_stl(radius: float = 8.0) -> bytes:
    """A small closed icosphere as binary STL (quick to slice)."""
    buffer = io.BytesIO()
    trimesh.creation.icosphere(subdivisions=2, radius=radius).export(buffer, file_type="stl")
    return buffer.getvalue()


def store_version(case: Case, author: str = "tess", radius: float = 8.0) -> int:
    """A new mesh version of ``case`` holding one sphere part; its number."""
    return case.save_mesh_version(
        {"sphere": sphere_stl(radius)},
        qa=QA_PASSED,
        info={"author": author, "part": "sphere"},
    )


@pytest.fixture
def add_version() -> Callable[..., int]:
    """:func:`store_version`, for tests (they take it as a fixture, not an import)."""
    return store_version


@pytest.fixture
def approved_case(sphere_case: Case, people: dict[str, Actor]) -> Case:
    """The sphere case with mesh v1 (by tess), approved by the reviewer rafael."""
    version = store_version(sphere_case)
    review.approve(people["rafael"], sphere_case, version, comment="fits")
    return sphere_case

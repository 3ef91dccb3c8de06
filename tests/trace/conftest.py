"""Fixtures for verification: the approved mesh of a lumbar block of the shared TCIA CT."""

from __future__ import annotations

import pytest
import trimesh

pytest_plugins = ["tests.mesh.conftest"]


@pytest.fixture(scope="session")
def plan(lumbar_build) -> trimesh.Trimesh:
    """The lumbar block's surface as the pipeline builds it (the approved mesh of the tests)."""
    return lumbar_build.mesh

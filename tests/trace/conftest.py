"""Fixtures for verification: the approved mesh of a lumbar block of the shared TCIA CT."""

from __future__ import annotations

import pytest
import trimesh

# The shared mesh fixtures (a conftest may not declare pytest_plugins below the root).
from tests.mesh.conftest import lumbar, lumbar_build, tcia_ct  # noqa: F401


@pytest.fixture(scope="session")
def plan(lumbar_build) -> trimesh.Trimesh:  # noqa: F811 (the imported fixture)
    """The lumbar block's surface as the pipeline builds it (the approved mesh of the tests)."""
    return lumbar_build.mesh

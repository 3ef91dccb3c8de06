"""Content a package can be built from in the security tests: mesh parts with their version
manifest, and an approval that names that mesh (what the workflow gives the package builder)."""

from __future__ import annotations

import hashlib

from app.security.access import mesh_manifest_sha256
from app.security.package.format import MESH_MANIFEST, canonical_json


def bound(parts: dict[str, bytes]) -> tuple[dict[str, bytes], dict]:
    """Package files for ``parts`` (file name in mesh/ -> STL bytes) and their approval."""
    entries = [
        {"name": name.rsplit(".", 1)[0], "file": name, "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in parts.items()
    ]
    files = {f"mesh/{name}": data for name, data in parts.items()}
    files[MESH_MANIFEST] = canonical_json({"version": 1, "parts": entries})
    approval = {
        "type": "decision",
        "id": "5b7f1c2e-0000-4000-8000-000000000002",
        "decision": "approved",
        "meaning": "approved for printing",
        "mesh_sha256": mesh_manifest_sha256(entries),
        "qa_passed": True,
        "override_ids": [],
        "reviewer": "surgeon",
    }
    return files, approval

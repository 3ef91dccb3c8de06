"""Content a package can be built from in the security tests: mesh parts with their version
manifest, an approval that names that mesh, and the records signed as the workflow signs them.

The test's package signer is also its lab: :func:`signed` makes the signer the founding key of a
one-person lab holding the administrator and reviewer roles, so trusting the signer's key (what
every test does) trusts the lab the records chain back to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.security import esign
from app.security.access import mesh_manifest_sha256
from app.security.identity import PersonalKeys
from app.security.package.format import MESH_MANIFEST, canonical_json
from app.security.roles import issue
from app.security.signing import SigningKey

LAB_VAULT = "0123456789abcdef"
SIGNER = "surgeon"


def bound(parts: dict[str, bytes], case: str = "C-7K3M-Q9") -> tuple[dict[str, bytes], dict]:
    """Package files for ``parts`` (file name in mesh/ -> STL bytes) and their approval (of a
    mesh of ``case``)."""
    entries = [
        {"name": name.rsplit(".", 1)[0], "file": name, "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in parts.items()
    ]
    files = {f"mesh/{name}": data for name, data in parts.items()}
    files[MESH_MANIFEST] = canonical_json({"version": 1, "parts": entries})
    approval = {
        "type": "decision",
        "id": "5b7f1c2e-0000-4000-8000-000000000002",
        "case": case,
        "decision": "approved",
        "meaning": "approved for printing",
        "mesh_sha256": mesh_manifest_sha256(entries),
        "qa_passed": True,
        "override_ids": [],
    }
    return files, approval


def lab_of(signer: SigningKey) -> PersonalKeys:
    """The package signer as the founder of its one-person lab."""
    return PersonalKeys(SIGNER, signer, X25519PrivateKey.generate())


def signed(
    signer: SigningKey,
    approval: Mapping[str, object] | None,
    overrides: Sequence[Mapping[str, object]] = (),
) -> dict:
    """``build_package`` arguments: the approval and overrides signed by the signer's lab (in
    the role each needs) and the role statements that show it."""
    keys = lab_of(signer)
    founder = keys.public.fingerprint
    chain: list[dict] = []
    for roles in ({"administrator"}, {"administrator", "reviewer"}):
        chain.append(
            issue(chain, keys, keys.public, roles, vault_id=LAB_VAULT, founder_fingerprint=founder)
        )

    def sign(record: Mapping[str, object]) -> dict:
        return esign.sign(record, keys, esign.needed_role(record))

    return {
        "approval": sign(approval) if approval else approval,
        "overrides": [sign(o) for o in overrides],
        "roles": esign.roles_bundle(chain, vault_id=LAB_VAULT, founder=founder, signers={SIGNER}),
    }

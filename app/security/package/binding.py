"""What a package's records must bind, checked when it is built and when it is verified.

Once every file is known to be the one signed, a package is still only usable when

- it carries an approval (``approval.json``) and that approval names the packaged mesh: its
  ``mesh_sha256`` equals the hash recomputed from the packaged part files through the version
  manifest ``mesh/manifest.json`` (and its ``qa_sha256`` the packaged QA report);
- an approval that rests on an override (self-approved, approved with a QA override, or of a
  mesh whose QA failed) comes with that override record, for that mesh;
- every G-code (or resin SL1 archive) comes with its provenance, and the provenance names the
  packaged mesh, unless the package carries a foreign-gcode override for that file's SHA-256;
- the traceability chain (``trace/chain.json``), when carried, is the chain of this package:
  its case is the approval's, its mesh link names the packaged mesh, its approval link the
  packaged approval, and its G-code link the packaged G-code (or none when none is packaged).

This module reads nothing itself: it is given every file's SHA-256 and a reader for the small
files (records, manifests, provenance), so the same checks run on the content before it is
written and on a folder, zip or decrypted archive afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from app.security import access
from app.security.package.format import (
    APPROVAL_MESH_MISMATCH,
    BAD_MESH_MANIFEST,
    BAD_PROVENANCE,
    CHAIN_FILE,
    CHAIN_MISMATCH,
    GCODE_DIR,
    GCODE_MESH_MISMATCH,
    MESH_DIR,
    MESH_MANIFEST,
    MISSING_OVERRIDE,
    NO_APPROVAL,
    QA_MISMATCH,
    QA_REPORT,
    Problem,
)

Reader = Callable[[str], bytes | None]

_NEEDS_OVERRIDE = {
    access.SELF_APPROVED: access.SELF_APPROVAL,
    access.APPROVED_WITH_QA_OVERRIDE: access.QA_FAILURE,
}


@dataclass
class Binding:
    """What the checks found: the packaged mesh and G-code (for the manifest), and problems."""

    mesh: dict | None = None
    gcode: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        return {"mesh": self.mesh, "gcode": self.gcode}

    def fail(self, code: str, message: str, path: str | None = None) -> None:
        self.problems.append(Problem(code, message, path))


def check(
    hashes: Mapping[str, str],
    read: Reader,
    approval: Mapping[str, object] | None,
    overrides: Sequence[Mapping[str, object]],
) -> Binding:
    """Check the approval, the mesh, the overrides and each G-code of one package.

    ``hashes`` maps every package path to its SHA-256; ``read(path)`` returns a small file's
    bytes (None when it is absent or too large).
    """
    found = Binding()
    mesh_sha = _packaged_mesh(hashes, read, found)
    if not _is_approval(approval):
        msg = "the package carries no approval of its mesh (approval.json is missing or does "
        msg += "not approve it); ask the sender for a package of an approved mesh version"
        found.fail(NO_APPROVAL, msg, "approval.json")
        return found
    assert approval is not None
    if found.mesh is not None:
        found.mesh["version"] = approval.get("mesh_version")
    if mesh_sha is not None:
        _check_approval(hashes, approval, mesh_sha, found)
        _check_overrides(approval, overrides, mesh_sha, found)
    _check_gcode(hashes, read, overrides, mesh_sha, found)
    if CHAIN_FILE in hashes and not found.problems:  # the chain of a package that binds
        _check_chain(read, approval, found)
    return found


def _is_approval(approval: Mapping[str, object] | None) -> bool:
    return (
        isinstance(approval, Mapping)
        and approval.get("type") == "decision"
        and approval.get("decision") == access.APPROVED
        and isinstance(approval.get("mesh_sha256"), str)
    )


def _load_json(read: Reader, path: str) -> object:
    data = read(path)
    if data is None:
        raise ValueError(path)
    return json.loads(data)


def _packaged_mesh(hashes: Mapping[str, str], read: Reader, found: Binding) -> str | None:
    """The mesh hash recomputed from the packaged parts, or None (with a problem)."""
    if MESH_MANIFEST not in hashes:
        msg = "the package has no mesh manifest (mesh/manifest.json), so nothing says which "
        msg += "mesh it carries; ask the sender to rebuild it"
        found.fail(BAD_MESH_MANIFEST, msg, MESH_MANIFEST)
        return None
    try:
        parts = _load_json(read, MESH_MANIFEST)["parts"]  # type: ignore[index]
        entries = [_part_entry(p) for p in parts]
    except (ValueError, KeyError, TypeError):
        msg = "mesh/manifest.json is malformed (a part without a name, file or hash)"
        found.fail(BAD_MESH_MANIFEST, msg, MESH_MANIFEST)
        return None
    ok = _parts_match(hashes, entries, found)
    found.mesh = {
        "sha256": access.mesh_manifest_sha256(entries),
        "parts": [dict(e, path=f"{MESH_DIR}/{e['file']}") for e in entries],
    }
    return found.mesh["sha256"] if ok else None


def _part_entry(part: object) -> dict:
    if not isinstance(part, Mapping):
        raise TypeError
    entry = {k: part.get(k) for k in ("name", "file", "sha256", "colour", "material")}
    if not all(isinstance(entry[k], str) for k in ("name", "file", "sha256")):
        raise TypeError
    if "/" in entry["file"] or "\\" in entry["file"]:
        raise ValueError
    return entry


def _parts_match(hashes: Mapping[str, str], entries: list[dict], found: Binding) -> bool:
    """Every part's file is packaged with the manifest's hash; no other STL under mesh/."""
    ok = True
    paths = set()
    for entry in entries:
        path = f"{MESH_DIR}/{entry['file']}"
        paths.add(path)
        if hashes.get(path) != entry["sha256"]:
            msg = f"part '{entry['name']}' ({path}) is missing or differs from the mesh manifest"
            found.fail(BAD_MESH_MANIFEST, msg, path)
            ok = False
    for path in sorted(hashes):
        if path.startswith(f"{MESH_DIR}/") and path.lower().endswith(".stl") and path not in paths:
            msg = f"{path} is not a part of the packaged mesh version (not in mesh/manifest.json)"
            found.fail(BAD_MESH_MANIFEST, msg, path)
            ok = False
    return ok


def _check_approval(
    hashes: Mapping[str, str], approval: Mapping[str, object], mesh_sha: str, found: Binding
) -> None:
    named = str(approval.get("mesh_sha256"))
    if named != mesh_sha:
        msg = f"the approval is for another mesh ({named[:16]}…), not the packaged one "
        msg += f"({mesh_sha[:16]}…); do not print it"
        found.fail(APPROVAL_MESH_MISMATCH, msg, "approval.json")
    qa_sha = approval.get("qa_sha256")
    if QA_REPORT in hashes and qa_sha and hashes[QA_REPORT] != qa_sha:
        msg = "the packaged QA report is not the one the approval was given on"
        found.fail(QA_MISMATCH, msg, QA_REPORT)


def _check_overrides(
    approval: Mapping[str, object],
    overrides: Sequence[Mapping[str, object]],
    mesh_sha: str,
    found: Binding,
) -> None:
    """An approval resting on an override is accepted only with that override record."""
    needed = set()
    if approval.get("meaning") in _NEEDS_OVERRIDE:
        needed.add(_NEEDS_OVERRIDE[str(approval["meaning"])])
    if approval.get("qa_passed") is False:
        needed.add(access.QA_FAILURE)
    ids = approval.get("override_ids")
    ids = set(ids) if isinstance(ids, list) else set()
    for kind in sorted(needed):
        if not any(
            o.get("type") == "override"
            and o.get("kind") == kind
            and o.get("subject_sha256") == mesh_sha
            and o.get("id") in ids
            for o in overrides
        ):
            meaning = approval.get("meaning") or "approved"
            msg = f"the approval is '{meaning}' but the package carries no {kind} override "
            msg += "record for its mesh; do not print it"
            found.fail(MISSING_OVERRIDE, msg, "approval.json")


def _check_gcode(
    hashes: Mapping[str, str],
    read: Reader,
    overrides: Sequence[Mapping[str, object]],
    mesh_sha: str | None,
    found: Binding,
) -> None:
    for path in sorted(p for p in hashes if _is_gcode(p)):
        gcode_sha = hashes[path]
        foreign = next(
            (
                o
                for o in overrides
                if o.get("type") == "override"
                and o.get("kind") == access.FOREIGN_GCODE
                and o.get("subject_sha256") == gcode_sha
            ),
            None,
        )
        known, named = _provenance_mesh(hashes, read, path, gcode_sha, found)
        found.gcode.append(
            {
                "path": path,
                "sha256": gcode_sha,
                "mesh_sha256": named,
                "foreign_gcode_override": foreign.get("id") if foreign else None,
            }
        )
        if known and foreign is None and mesh_sha is not None and named != mesh_sha:
            msg = f"{path} was sliced from another mesh ({str(named)[:16]}…), not the packaged "
            msg += "one, and the package carries no foreign-gcode override for it"
            found.fail(GCODE_MESH_MISMATCH, msg, path)


def _is_gcode(path: str) -> bool:
    return path.startswith(f"{GCODE_DIR}/") and path.lower().endswith((".gcode", ".sl1"))


def _provenance_mesh(
    hashes: Mapping[str, str], read: Reader, path: str, gcode_sha: str, found: Binding
) -> tuple[bool, str | None]:
    """Whether the G-code's provenance is readable and its own (else a problem is recorded),
    and the mesh hash it names."""
    record = str(PurePosixPath(path).with_suffix(".json"))
    try:
        provenance = _load_json(read, record) if record in hashes else None
    except ValueError:
        provenance = None
    if not isinstance(provenance, Mapping):
        msg = f"{path} has no readable provenance ({record}): nothing says what it was sliced from"
        found.fail(BAD_PROVENANCE, msg, path)
        return False, None
    key = "sl1_sha256" if path.lower().endswith(".sl1") else "gcode_sha256"
    if provenance.get(key) != gcode_sha:
        msg = f"the provenance {record} is for another G-code than {path}"
        found.fail(BAD_PROVENANCE, msg, path)
        return False, None
    named = provenance.get("mesh_sha256")
    return True, named if isinstance(named, str) else None


def _check_chain(read: Reader, approval: Mapping[str, object], found: Binding) -> None:
    """The carried chain names this package's case, mesh, approval and G-code."""
    try:
        chain = _load_json(read, CHAIN_FILE)
        links = {link["name"]: link for link in chain["links"]}  # type: ignore[index]
        case = chain["case"]  # type: ignore[index]
    except (ValueError, KeyError, TypeError):
        found.fail(CHAIN_MISMATCH, f"{CHAIN_FILE} is not a readable chain", CHAIN_FILE)
        return
    gcode = {g["sha256"] for g in found.gcode if g["path"].lower().endswith(".gcode")}
    named_gcode = _link(links, "gcode", "sha256")
    agrees = {
        "case": case == approval.get("case"),
        "mesh": _link(links, "mesh", "sha256") == (found.mesh or {}).get("sha256"),
        "approval": _link(links, "approval", "decision_id") == approval.get("id"),
        "G-code": named_gcode in gcode if gcode else named_gcode is None,
    }
    wrong = [what for what, ok in agrees.items() if not ok]
    if wrong:
        msg = f"the traceability chain ({CHAIN_FILE}) names another {', '.join(wrong)} than "
        msg += "the package carries; do not use this package"
        found.fail(CHAIN_MISMATCH, msg, CHAIN_FILE)


def _link(links: Mapping[str, Mapping], name: str, key: str) -> str | None:
    """A link's hash (``sha256``) or one of its facts; None when the link is pending."""
    link = links.get(name) or {}
    value = link.get(key) if key == "sha256" else (link.get("facts") or {}).get(key)
    return value if isinstance(value, str) else None

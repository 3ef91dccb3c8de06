"""Print packages: build a signed package of an approved mesh version, verify and extract one.

A package carries every part of the approved version as its exact STL (``mesh/<pseudonym>_<part>
.stl``) with a 3MF of each, the version manifest ``mesh/manifest.json`` (whose hash the approval
names), the QA report as JSON and HTML, the G-code with its provenance, the signed approval
record and every signed override it rests on (qa-failure, self-approval, foreign-gcode), each as
a record file and shown in the manifest, and the role statements that show each signer's role
back to the lab's founding key (``roles.json``, public keys only), and the case's traceability
chain as far as it exists (``trace/chain.json``, :func:`app.workflow.trace.public`). Free text
(comments, reasons) stays in the vault. The package is signed with the packager's personal key.

Building needs the release of the mesh version (:func:`app.workflow.review.release_mesh`) and of
the G-code (:func:`~app.workflow.review.release_gcode`), which must be sliced from that same
version or carry a foreign-gcode override. Verifying needs no role: a receiving workstation may
have none; the lab's founding key must be trusted (trust store or ``--trusted-key``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.case import Case, StoredGcode, StoredMesh
from app.progress import CancelToken, Progress
from app.security import access, esign
from app.security.package.build import build_package
from app.security.package.extract import extract_package
from app.security.package.format import (
    CHAIN_FILE,
    ENC_MAGIC,
    GCODE_DIR,
    MESH_DIR,
    MESH_MANIFEST,
    QA_REPORT,
    QA_REPORT_HTML,
    REVIEW_REPORT_PDF,
    PackageMeta,
    canonical_json,
)
from app.security.package.verify import VerifyReport, verify_package
from app.security.signing import PublicKey, RecipientBook, RecipientKey, TrustStore
from app.settings import resolve_paths
from app.tools.mesh.core import make_mesh
from app.tools.mesh.gltf import glb_bytes
from app.tools.mesh.meshio import export_name, mesh_bytes, read_mesh_bytes
from app.tools.mesh.qa import QAReport
from app.tools.mesh.report import qa_report_html
from app.workflow import names, policy, review, review_report, trace
from app.workflow.actor import Actor

ACTION = "package.build"
_MESH_FACTS = ("mesh_version", "mesh_sha256", "gcode_sha256")
_PRINTER_FACTS = ("printer", "material")

KeySource = PublicKey | str | os.PathLike[str]


@dataclass(frozen=True)
class Packaged:
    """A package written and verified, and the releases it rests on."""

    path: Path
    release: review.Release
    package_id: str
    gcode_release: review.Release | None = None

    @property
    def overrides(self) -> list[dict]:
        """Every override the package carries (mesh and G-code)."""
        extra = self.gcode_release.overrides if self.gcode_release else []
        return _unique([*self.release.overrides, *extra])


def build(
    actor: Actor,
    case: Case,
    *,
    version: int | None = None,
    gcode_version: int | None = None,
    sla_version: int | None = None,
    out_dir: str | os.PathLike[str],
    make_zip: bool = False,
    recipient: str | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Packaged:
    """Write a signed package of mesh ``version`` (default: the latest approved) to ``out_dir``.

    ``gcode_version`` names the stored G-code to include; by default the newest one sliced from
    that version, if any. ``sla_version`` adds a stored resin slicing (SL1 archive) of that
    version. ``recipient`` (a name in the recipient book) encrypts the package.
    """
    policy.allow(actor, ACTION, case.pseudonym)
    number = version if version is not None else _latest_approved(actor, case)
    release = review.release_mesh(actor, case, number, ACTION)
    gcode = _chosen_gcode(case, release, gcode_version)
    gcode_release = _release_gcode(actor, case, gcode, release) if gcode else None
    stored = case.load_mesh_version(number)
    names.check_all(actor, case, list(stored.parts), what="part name", action=ACTION)
    overrides = _unique([*release.overrides, *(gcode_release.overrides if gcode_release else [])])
    lab = review.lab(actor)
    signers = {actor.user, *(str(r.get("signer")) for r in [release.approval, *overrides] if r)}
    chain = trace.build(actor, case, version=number, gcode=gcode.number if gcode else None)
    files = _mesh_files(case.pseudonym, stored) | _gcode_files(case.pseudonym, gcode)
    files |= _review_files(case, stored, release, chain)
    files[CHAIN_FILE] = canonical_json(trace.public(chain))
    files |= _sla_files(actor, case, release, sla_version)
    built = build_package(
        out_dir,
        files=files,
        meta=_meta(case, gcode),
        approval=release.approval,
        overrides=overrides,
        roles=lab.bundle(signers),
        signer=actor.keys.signing,
        lab_keys=_founder_key(lab),
        paths=actor.paths,
        make_zip=make_zip,
        recipient=RecipientBook(actor.paths).get(recipient) if recipient else None,
        progress=progress,
        cancel=cancel,
    )
    policy.record(
        actor,
        ACTION,
        case.pseudonym,
        package_id=built.package_id,
        mesh_version=number,
        mesh_sha256=release.mesh_sha256,
        gcode_version=gcode.number if gcode else None,
        gcode_sha256=gcode.sha256 if gcode else None,
        sla_version=sla_version,
        approval_id=(release.approval or {}).get("id"),
        override_kinds=[o.get("kind") for o in overrides],
        override_ids=[o.get("id") for o in overrides],
        key_id=built.key_id,
        manifest_sha256=built.manifest_sha256,
        zip=make_zip,
        encrypted=recipient is not None,
    )
    return Packaged(built.path, release, built.package_id, gcode_release)


def _latest_approved(actor: Actor, case: Case) -> int:
    """The newest approved mesh version; else the newest version (whose release is refused)."""
    return review.latest_approved(actor, case) or case.latest_mesh_version()


def _founder_key(lab: esign.Lab) -> list[PublicKey]:
    founder = lab.state.identity_by_fingerprint(lab.founder)
    return [founder.signing_key] if founder else []


def _chosen_gcode(
    case: Case, release: review.Release, gcode_version: int | None
) -> StoredGcode | None:
    if gcode_version is not None:
        return case.load_gcode(gcode_version)
    for number in reversed(case.gcode_versions()):
        gcode = case.load_gcode(number)
        if gcode.provenance.get("mesh_sha256") == release.mesh_sha256:
            return gcode
    return None


def _release_gcode(
    actor: Actor, case: Case, gcode: StoredGcode, mesh: review.Release
) -> review.Release:
    """The G-code's release: sliced from the packaged version, or a foreign-gcode override."""
    released = review.release_gcode(actor, case, gcode, ACTION)
    if released.approval is not None and released.mesh_sha256 != mesh.mesh_sha256:
        msg = f"G-code g{gcode.number} was sliced from mesh v{released.mesh_version}, not from "
        msg += f"the packaged v{mesh.mesh_version}: package v{released.mesh_version}, or slice "
        msg += f"v{mesh.mesh_version} and package its G-code"
        policy.refuse(
            actor,
            ACTION,
            case.pseudonym,
            reason="gcode-other-mesh",
            message=msg,
            gcode=gcode.number,
        )
    return released


def _sla_files(
    actor: Actor, case: Case, mesh: review.Release, number: int | None
) -> dict[str, bytes]:
    """A stored SL1 archive and its provenance, when it was sliced from the packaged version."""
    if number is None:
        return {}
    sla = case.load_sla(number)
    if sla.provenance.get("mesh_sha256") != mesh.mesh_sha256:
        msg = f"resin slicing s{number} was not sliced from the packaged mesh "
        msg += f"v{mesh.mesh_version}; slice v{mesh.mesh_version} for resin and package that"
        policy.refuse(actor, ACTION, case.pseudonym, reason="sl1-other-mesh", message=msg)
    stem = f"{GCODE_DIR}/{case.pseudonym}_s{number}"
    return {f"{stem}.sl1": sla.data, f"{stem}.json": canonical_json(sla.provenance)}


def _unique(records: list[dict]) -> list[dict]:
    seen: dict[str, dict] = {}
    for rec in records:
        seen.setdefault(str(rec.get("id")), rec)
    return list(seen.values())


def _meta(case: Case, gcode: StoredGcode | None) -> PackageMeta:
    facts = gcode.provenance if gcode else {}
    printer = {k: facts[k] for k in _PRINTER_FACTS if k in facts}
    skipped = {*_PRINTER_FACTS, *_MESH_FACTS, "user", "time_utc", "parts"}
    slicer = {k: v for k, v in facts.items() if k not in skipped}
    return PackageMeta(case=case.pseudonym, printer=printer, slicer=slicer)


def _mesh_files(pseudonym: str, stored: StoredMesh) -> dict[str, bytes]:
    """Each part's approved STL (exact bytes) and its 3MF, the version manifest, the QA report."""
    files: dict[str, bytes] = {}
    entries = []
    shapes = []
    for entry in stored.part_facts:
        data = stored.parts[entry["name"]]
        vertices, faces = read_mesh_bytes(data, "stl")
        stl = export_name(pseudonym, entry["name"], "stl")
        files[f"{MESH_DIR}/{stl}"] = data
        files[f"{MESH_DIR}/{export_name(pseudonym, entry['name'], '3mf')}"] = mesh_bytes(
            vertices, faces, "3mf"
        )
        entries.append({**entry, "file": stl})
        shapes.append((vertices, faces))
    files[MESH_MANIFEST] = canonical_json({**stored.manifest, "parts": entries})
    files[QA_REPORT] = access.qa_report_bytes(stored.qa)
    page = _qa_page(pseudonym, stored, shapes)
    if page is not None:
        files[QA_REPORT_HTML] = page
    return files


def _review_files(
    case: Case, stored: StoredMesh, release: review.Release, chain: trace.Trace
) -> dict[str, bytes]:
    """The signed review report (PDF, with the chain as far as it exists) and the whole
    approved model as GLB (metres, +Y up, the way back to LPS millimetres in its extras), one
    node per part in its colour."""
    parts = {e["name"]: read_mesh_bytes(stored.parts[e["name"]], "stl") for e in stored.part_facts}
    colours = {e["name"]: e.get("colour") for e in stored.part_facts}
    glb = f"{case.pseudonym}_model.glb"  # the whole model, every part a node
    return {
        REVIEW_REPORT_PDF: review_report.report_bytes(case, stored.number, release.approval, chain),
        f"{MESH_DIR}/{glb}": glb_bytes(parts, colours, pseudonym=case.pseudonym),
    }


Shape = tuple[np.ndarray, np.ndarray]  # vertices, faces


def _qa_page(pseudonym: str, stored: StoredMesh, shapes: list[Shape]) -> bytes | None:
    """The QA report as HTML with three views of all parts; None for a report MedPrint did not
    make (its JSON travels alone)."""
    try:
        qa = QAReport.from_dict(dict(stored.qa))
    except (KeyError, TypeError):
        return None
    whole = make_mesh(*_joined(shapes))
    part = "+".join(sorted(stored.parts))
    return qa_report_html(qa, whole, pseudonym=pseudonym, part=part).encode("utf-8")


def _joined(shapes: list[Shape]) -> Shape:
    offsets = np.cumsum([0] + [len(v) for v, _ in shapes[:-1]])
    vertices = np.concatenate([v for v, _ in shapes])
    faces = np.concatenate([f + o for (_, f), o in zip(shapes, offsets, strict=True)])
    return vertices, faces


def _gcode_files(pseudonym: str, gcode: StoredGcode | None) -> dict[str, bytes]:
    if gcode is None:
        return {}
    stem = f"{GCODE_DIR}/{pseudonym}_g{gcode.number}"
    return {
        f"{stem}.gcode": gcode.text.encode("utf-8"),
        f"{stem}.json": canonical_json(gcode.provenance),
    }


# --- verify and extract -----------------------------------------------------------------------


def verify(
    actor: Actor | None,
    path: str | os.PathLike[str],
    *,
    trusted_keys: Iterable[KeySource] = (),
    extract_to: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Check a package (folder, zip or ``.mpkg``); extract a valid zip into ``extract_to``.

    Trusted are this workstation's trust store and ``trusted_keys`` (keys, files or base64). No
    role is needed; with an actor, the outcome is audited.
    """
    paths = actor.paths if actor else resolve_paths()
    store = TrustStore(paths)
    trusted = [*store.trusted(), *(_public_key(k) for k in trusted_keys)]
    recipient = _recipient_key(Path(path))
    report = verify_package(
        path, trusted, store.revoked(), recipient_key=recipient, progress=progress, cancel=cancel
    )
    if actor is not None:
        policy.record(
            actor,
            "package.verify",
            report.case,
            package_id=report.package_id,
            key_id=report.key_id,
            ok=report.ok,
            problems=report.codes[:20],
            container=report.container,
        )
    if report.ok and extract_to is not None:
        report.extracted = extract(actor, path, extract_to, trusted_keys=trusted)
    return report


def extract(
    actor: Actor | None,
    path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    trusted_keys: Iterable[KeySource] = (),
) -> Path:
    """Verify a zip or ``.mpkg`` package, then extract it into the new folder ``dest``."""
    paths = actor.paths if actor else resolve_paths()
    store = TrustStore(paths)
    trusted = [*store.trusted(), *(_public_key(k) for k in trusted_keys)]
    out = extract_package(
        path, dest, trusted, store.revoked(), recipient_key=_recipient_key(Path(path))
    )
    if actor is not None:
        policy.record(actor, "package.extract", None, files=sum(1 for _ in out.rglob("*")))
    return out


def _public_key(source: KeySource) -> PublicKey:
    return source if isinstance(source, PublicKey) else PublicKey.load(source)


def _recipient_key(path: Path) -> RecipientKey | None:
    """This workstation's receiving key, when ``path`` is an encrypted package (without one,
    verify reports the package as encrypted for someone else)."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        if handle.read(len(ENC_MAGIC)) != ENC_MAGIC:
            return None
    return RecipientKey.load()

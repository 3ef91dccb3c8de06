"""Signed print packages: build one atomically on a drive, verify one before anything is used.

A package is a folder (and optionally the same content as one zip, or that zip encrypted for a
named recipient) holding the de-identified print files plus

- ``manifest.json``: format name and version, package ID, creation time (UTC), case pseudonym,
  every file's path, size and SHA-256 (sorted by path), printer and slicer settings, the approval
  record (and an administrator override, when there is one), software version, signer key ID;
- ``manifest.sig``: the Ed25519 signature over the exact bytes of ``manifest.json``, with the
  signer's public key and key ID.

**Writing** is atomic, and the signature is the commit point. The files and the manifest go into
a hidden ``.<name>.partial-*`` folder on the target drive; every file and folder is fsynced; the
folder is renamed to its final name and the parent fsynced; the zip (when asked for) is written
the same way; only then is ``manifest.sig`` put in place (temporary name, fsync, rename). The
package is finally read back from the drive (cached pages dropped) and verified. A write killed or
a drive pulled at any moment therefore leaves a hidden partial folder or an unsigned package,
never a half-written one that verifies; :func:`remove_partials` clears such leftovers. An
encrypted ``.mpkg`` gets its magic bytes last, for the same reason.

**Verifying** (:func:`verify_package`) checks, in this order, and stops at the first failed step:

1. the signer key is not revoked and is trusted;
2. the signature matches the exact manifest bytes;
3. the manifest format and version are known (and the manifest is well formed and names the same
   signer);
4. every listed file is present, with the listed size and SHA-256;
5. there is no unlisted, duplicate, case-folded duplicate, absolute, ``..``, symlinked or special
   entry.

For a zip every check runs on the archive itself: nothing is extracted (see
:func:`extract_package`, which verifies first). Each failure has its own code and message.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import io
import itertools
import json
import os
import re
import secrets
import shutil
import stat
import struct
import unicodedata
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app import __version__
from app.errors import PackageError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security import access, audit
from app.security.atomic import atomic_write_bytes, fsync_dir
from app.security.signing import (
    PublicKey,
    RecipientKey,
    RecipientPublicKey,
    SigningKey,
    TrustStore,
    utc_now,
)
from app.settings import Paths, resolve_paths

FORMAT_NAME = "medprint-print-package"
FORMAT_VERSION = 1
KNOWN_FORMATS: dict[str, frozenset[int]] = {FORMAT_NAME: frozenset({1})}
SIGNATURE_FORMAT = "medprint-signature"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
APPROVAL_FILE = "approval.json"
OVERRIDE_FILE = "override.json"
FREE_TEXT_FIELDS = frozenset({"comment", "reason"})
RESERVED = frozenset({MANIFEST, SIGNATURE})
PARTIAL_MARK = ".partial-"
ZIP_SUFFIX = ".zip"
ENCRYPTED_SUFFIX = ".mpkg"

CHUNK = 1 << 20
ZIP_LEVEL = 1
MAX_MANIFEST_BYTES = 16 << 20
MAX_SIGNATURE_BYTES = 64 << 10
_SPACE_MARGIN = 1 << 20
_PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,47}$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_PART_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?$")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10)}
)
_PACKAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,47}_[0-9a-f]{8}(\.zip|\.mpkg)?$")


# --- problems and the report ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a package fails verification: a stable code and a message for people."""

    code: str
    message: str
    path: str | None = None


# Problem codes, in the order verification meets them.
NOT_A_PACKAGE = "not-a-package"
ENCRYPTED = "encrypted"
DECRYPT_FAILED = "decrypt-failed"
NO_SIGNATURE = "no-signature"
BAD_SIGNATURE_FILE = "bad-signature-file"
KEY_REVOKED = "key-revoked"
KEY_UNTRUSTED = "key-untrusted"
NO_MANIFEST = "no-manifest"
BAD_SIGNATURE = "bad-signature"
UNKNOWN_FORMAT = "unknown-format"
BAD_MANIFEST = "bad-manifest"
SIGNER_MISMATCH = "signer-mismatch"
UNSAFE_LISTED = "unsafe-listed-path"
MISSING = "missing-file"
RENAMED = "renamed-file"
SIZE_MISMATCH = "size-mismatch"
HASH_MISMATCH = "hash-mismatch"
CORRUPT_ENTRY = "corrupt-entry"
UNLISTED = "unlisted-entry"
DUPLICATE = "duplicate-entry"
CASEFOLD_DUPLICATE = "casefold-duplicate"
ABSOLUTE = "absolute-path"
PARENT_REF = "parent-path"
SYMLINK = "symlink"
SPECIAL = "special-entry"


@dataclass
class VerifyReport:
    """What :func:`verify_package` found; ``ok`` only when ``problems`` is empty."""

    path: Path
    problems: list[Problem] = field(default_factory=list)
    key_id: str | None = None
    fingerprint: str | None = None
    package_id: str | None = None
    case: str | None = None
    manifest: dict | None = None
    files_checked: int = 0
    bytes_checked: int = 0
    container: str = "folder"
    ignored: list[str] = field(default_factory=list)  # OS metadata files in a folder

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def codes(self) -> list[str]:
        return [p.code for p in self.problems]

    @property
    def message(self) -> str:
        if self.ok:
            return (
                f"package {self.package_id} verified: {self.files_checked} files, "
                f"{self.bytes_checked} bytes, signed by trusted key {self.key_id}"
            )
        more = len(self.problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        return f"package NOT valid: {self.problems[0].message}{tail}"

    def raise_if_invalid(self) -> None:
        if not self.ok:
            raise PackageError(self.message)


# What reading one entry of a damaged or odd archive can raise (CRC, inflate, encrypted entry,
# unsupported compression method, truncated data).
_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    RuntimeError,
    NotImplementedError,
    ValueError,
)


class _Failed(Exception):
    """Internal: a step failed and verification stops (the problem is already recorded)."""


# --- package content ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageMeta:
    """What the manifest says about where a package came from and what it is for."""

    case: str
    printer: Mapping[str, object] = field(default_factory=dict)
    slicer: Mapping[str, object] = field(default_factory=dict)
    software_version: str = __version__


def canonical_json(obj: object) -> bytes:
    """Deterministic, readable JSON bytes (sorted keys, ASCII, trailing newline)."""
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")


def _fold(name: str) -> str:
    """The name as a case-insensitive, normalising file system (NTFS, APFS, FAT) sees it."""
    return unicodedata.normalize("NFC", name).casefold()


def check_entry_path(path: str) -> str | None:
    """The problem code when ``path`` is not a safe relative package path, else None."""
    if not path or "\x00" in path:
        return UNSAFE_LISTED
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return ABSOLUTE
    parts = re.split(r"[/\\]", path)
    if ".." in parts:
        return PARENT_REF
    if "\\" in path or any(part in ("", ".") for part in parts):
        return UNSAFE_LISTED
    return None


def _validate_files(files: Mapping[str, bytes | os.PathLike[str]]) -> None:
    """Package paths every file system takes as they are: plain ASCII parts, no Windows device
    names, no case-only differences (FAT, NTFS, APFS and ext4 all hold the same package)."""
    folded: dict[str, str] = {}
    for name in files:
        parts = name.split("/")
        if (
            check_entry_path(name) is not None
            or name in RESERVED
            or not all(_PART_RE.match(p) for p in parts)
            or any(p.split(".")[0].upper() in _WINDOWS_DEVICES for p in parts)
        ):
            msg = f"'{name}' cannot be a package path: use plain relative names such as "
            msg += "'mesh/model.stl' (letters, digits, '.', '_', '-'; no '..' or leading '/')"
            raise PackageError(msg)
        key = name.casefold()
        if key in folded:
            msg = f"'{name}' and '{folded[key]}' differ only in letter case; rename one"
            raise PackageError(msg)
        folded[key] = name


# --- building -------------------------------------------------------------------------------


def build_package(
    out_dir: str | os.PathLike[str],
    *,
    files: Mapping[str, bytes | os.PathLike[str]],
    meta: PackageMeta,
    approval: Mapping[str, object] | None,
    override: Mapping[str, object] | None = None,
    signer: SigningKey | None = None,
    paths: Paths | None = None,
    make_zip: bool = False,
    recipient: RecipientPublicKey | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """Write a signed package into ``out_dir`` atomically, read it back and verify it.

    Parameters
    ----------
    out_dir
        The target folder: the root of a removable drive or any folder.
    files
        Package path (``mesh/model.stl``) -> content (bytes, or a file to stream from).
    meta
        Case pseudonym, printer and slicer settings, software version.
    approval, override
        The approval record and/or the administrator override (from :mod:`app.security.access`);
        a package needs at least one. Both are written as files and embedded in the manifest,
        without their free-text fields (comment, reason), which stay in the vault.
    signer
        The signing key; by default this workstation's key from the OS keystore.
    make_zip
        Also write ``<name>.zip`` beside the folder.
    recipient
        Encrypt for this recipient: only ``<name>.mpkg`` (the zip, encrypted) is written.

    Returns
    -------
    Path
        The package folder, or the encrypted ``.mpkg`` file when ``recipient`` is given.
    """
    progress = ensure(progress)
    paths = paths or resolve_paths()
    out = Path(out_dir)
    if not out.is_dir():
        msg = "the target folder does not exist or is not mounted; choose a drive or folder"
        raise PackageError(msg)
    if not _PSEUDONYM_RE.match(meta.case):
        msg = "the case pseudonym must be letters, digits and '-' (like C-7K3M-Q9)"
        raise PackageError(msg)
    if not approval and not override:
        msg = "a package needs an approval record or an administrator override; "
        msg += "ask a reviewer to approve the mesh"
        raise PackageError(msg)
    signer = signer or SigningKey.load_or_create(paths=paths)
    if signer.public_key.fingerprint in TrustStore(paths).revoked():
        msg = f"signing key {signer.key_id} is revoked; an administrator replaces it with "
        msg += "'medprint keys revoke'"
        raise PackageError(msg)
    approval, override = _public_record(approval), _public_record(override)
    content = dict(files)
    content[APPROVAL_FILE] = canonical_json(approval or {})
    if override:
        content[OVERRIDE_FILE] = canonical_json(override)
    _validate_files(content)
    _check_space(out, content, make_zip=make_zip or recipient is not None)
    package_id = str(uuid.uuid4())
    name = f"{meta.case}_{package_id[:8]}"
    header = _manifest_header(meta, package_id, signer, approval, override)
    job = _Job(out, name, content, header, signer, progress, cancel)
    try:
        result = _build_encrypted(job, recipient) if recipient else _build_folder(job, make_zip)
    except OSError as exc:
        raise PackageError(_write_error(exc)) from None
    audit.record(
        "package.build",
        case=meta.case,
        package_id=package_id,
        key_id=signer.key_id,
        files=len(content),
        zip=make_zip,
        encrypted_for=recipient.key_id if recipient else None,
        manifest_sha256=job.manifest_sha256,
        approval_id=(approval or {}).get("id"),
        override_id=(override or {}).get("id"),
        override_kind=(override or {}).get("kind"),
    )
    progress.update(1.0, "package written and verified; the drive is safe to remove")
    return result


def _write_error(exc: OSError) -> str:
    """What a failed write to the target means for the user, without echoing paths."""
    reasons = {
        errno.ENOSPC: "the drive is full; free some space or use a larger drive",
        errno.EFBIG: "a file is too large for this drive's file system (FAT32 holds at most "
        "4 GiB per file); reformat the drive as exFAT or use another drive",
        errno.EROFS: "the drive is write-protected; unlock it or use another drive",
        errno.EACCES: "MedPrint may not write to this folder; choose another",
    }
    reason = reasons.get(exc.errno or 0)
    if reason is None:
        code = errno.errorcode.get(exc.errno or 0, "unknown error")
        reason = f"the drive was removed or failed while writing ({code}); nothing usable was "
        reason += "left on it: insert it again and write the package again"
    return f"writing the package failed: {reason}"


def package_case(
    case: access.CaseStore,
    out_dir: str | os.PathLike[str],
    *,
    mesh: str,
    user: str,
    qa: str | None = None,
    extra: Mapping[str, str] | None = None,
    printer: Mapping[str, object] | None = None,
    slicer: Mapping[str, object] | None = None,
    make_zip: bool = False,
    recipient: RecipientPublicKey | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Path, access.Release]:
    """Package one mesh version of a case: what the Package panel and ``medprint package`` do.

    Checks that ``user`` may package this exact mesh version (approved, or an administrator's
    override; see :func:`app.security.access.release`), then builds the package from the case's
    files: the mesh as ``mesh/<name>``, the QA report (canonical JSON) as ``qa/report.json`` and
    each ``extra`` case file under its package path (e.g. ``{"gcode/v3.gcode":
    "gcode/model.gcode"}``). Returns the package path and the release it relied on.
    """
    mesh_bytes = case.load_bytes(mesh)
    report = case.load_json(qa) if qa else None
    qa_sha = access.qa_report_sha256(report) if report is not None else None
    release = access.release(case, access.sha256_hex(mesh_bytes), user, "package", qa_sha)
    files: dict[str, bytes | os.PathLike[str]] = _model_files(case, mesh, mesh_bytes, report)
    for name, target in (extra or {}).items():
        files[target] = case.load_bytes(name)
    meta = PackageMeta(case=case.pseudonym, printer=printer or {}, slicer=slicer or {})
    path = build_package(
        out_dir,
        files=files,
        meta=meta,
        approval=release.approval,
        override=release.override,
        make_zip=make_zip,
        recipient=recipient,
        progress=progress,
        cancel=cancel,
    )
    return path, release


def _model_files(
    case: access.CaseStore, mesh: str, mesh_bytes: bytes, report: Mapping[str, Any] | None
) -> dict[str, bytes | os.PathLike[str]]:
    """The approved STL (the exact bytes), its 3MF, and the QA report as JSON and HTML.

    Files are named ``<pseudonym>_<part>``; the part comes from the mesh version's build info.
    """
    from app.security import strip  # noqa: PLC0415
    from app.tools.mesh.core import make_mesh  # noqa: PLC0415
    from app.tools.mesh.qa import QAReport  # noqa: PLC0415
    from app.tools.mesh.report import qa_report_html  # noqa: PLC0415

    info_name = str(PurePosixPath(mesh).with_suffix(".json"))
    info = case.load_json(info_name) if case.has(info_name) else {}
    part = str(info.get("part") or "model")
    vertices, faces = strip.read_mesh_bytes(mesh_bytes, "stl")
    files: dict[str, bytes | os.PathLike[str]] = {
        f"mesh/{strip.export_name(case.pseudonym, part, 'stl')}": mesh_bytes,
        f"mesh/{strip.export_name(case.pseudonym, part, '3mf')}": strip.mesh_bytes(
            vertices, faces, "3mf"
        ),
    }
    if report is not None:
        files["qa/report.json"] = access.qa_report_bytes(report)
        try:
            qa = QAReport.from_dict(dict(report))
        except (KeyError, TypeError):  # not a MedPrint QA report: the JSON travels alone
            return files
        page = qa_report_html(qa, make_mesh(vertices, faces), pseudonym=case.pseudonym, part=part)
        files["qa/report.html"] = page.encode("utf-8")
    return files


def _public_record(record: Mapping[str, object] | None) -> dict | None:
    """An approval/override record as it leaves the workstation: free-text fields (a comment or
    reason may name the patient) stay in the vault; everything else travels."""
    if not record:
        return None
    public = {k: v for k, v in record.items() if k not in FREE_TEXT_FIELDS}
    kept = sorted(k for k in record if k in FREE_TEXT_FIELDS)
    if kept:
        public["kept_in_vault"] = kept
    return public


def _manifest_header(
    meta: PackageMeta,
    package_id: str,
    signer: SigningKey,
    approval: Mapping[str, object] | None,
    override: Mapping[str, object] | None,
) -> dict:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_id": package_id,
        "created_utc": utc_now(),
        "case": meta.case,
        "software": {"name": "MedPrint", "version": meta.software_version},
        "signer_key_id": signer.key_id,
        "printer": dict(meta.printer),
        "slicer": dict(meta.slicer),
        "approval": dict(approval) if approval else None,
        "override": dict(override) if override else None,
    }


def _signature_bytes(signer: SigningKey, manifest: bytes) -> bytes:
    return canonical_json(
        {
            "format": SIGNATURE_FORMAT,
            "version": 1,
            "algorithm": "Ed25519",
            "signed_file": MANIFEST,
            "key_id": signer.key_id,
            "public_key": signer.public_key.to_base64(),
            "signature": base64.b64encode(signer.sign(manifest)).decode("ascii"),
        }
    )


def _check_space(
    out: Path, content: Mapping[str, bytes | os.PathLike[str]], make_zip: bool
) -> None:
    total = sum(
        len(v) if isinstance(v, bytes) else Path(v).stat().st_size for v in content.values()
    )
    needed = total * (2 if make_zip else 1) + _SPACE_MARGIN
    free = shutil.disk_usage(out).free
    if free < needed:
        msg = f"not enough free space on the target: the package needs {_mib(needed)}, "
        msg += f"the drive has {_mib(free)} free; free some space or use another drive"
        raise PackageError(msg)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@dataclass
class _Job:
    """One package being written: where, under which name, what, signed by whom."""

    out: Path
    name: str
    content: Mapping[str, bytes | os.PathLike[str]]
    header: dict
    signer: SigningKey
    progress: Progress
    cancel: CancelToken | None
    manifest_sha256: str = ""


def _build_folder(job: _Job, make_zip: bool) -> Path:
    """Folder (and zip) without a signature first; the signature is the commit point.

    Until ``manifest.sig`` is in place nothing verifies: a write killed at any moment leaves a
    hidden partial folder or an unsigned package, never something that verifies half-written.
    """
    out, name, progress, cancel = job.out, job.name, job.progress, job.cancel
    final = out / name
    zip_final = out / f"{name}{ZIP_SUFFIX}" if make_zip else None
    tmp = out / f".{name}{PARTIAL_MARK}{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o755)
    try:
        manifest = _write_tree(tmp, job.content, job.header, progress.sub(0.0, 0.6), cancel)
        job.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        _write_file(tmp / MANIFEST, manifest)
        _fsync_tree(tmp)
        if zip_final is not None:
            _write_unsigned_zip(tmp, zip_final, progress.sub(0.6, 0.75), cancel)
        check_cancel(cancel)
        os.rename(tmp, final)
        fsync_dir(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if zip_final is not None:
            zip_final.unlink(missing_ok=True)
        raise
    try:
        signature = _signature_bytes(job.signer, manifest)
        atomic_write_bytes(final / SIGNATURE, signature)
        if zip_final is not None:
            _append_to_zip(zip_final, SIGNATURE, signature)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        if zip_final is not None:
            zip_final.unlink(missing_ok=True)
        raise
    trusted = [job.signer.public_key]
    progress.sub(0.75, 1.0).update(0.0, "reading the package back from the drive")
    for written in (final, zip_final):
        if written is None:
            continue
        report = verify_package(written, trusted, set(), audited=False)
        if not report.ok:
            shutil.rmtree(final, ignore_errors=True)
            if zip_final is not None:
                zip_final.unlink(missing_ok=True)
            msg = f"the package read back from the drive is wrong ({report.problems[0].message}); "
            msg += "it was removed: the drive may be failing, use another one"
            raise PackageError(msg)
    return final


def _write_unsigned_zip(
    folder: Path, target: Path, progress: Progress, cancel: CancelToken | None
) -> None:
    tmp = target.with_name(f".{target.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    try:
        with open(tmp, "xb") as handle:
            _zip_folder(folder, handle, progress, cancel)
            _sync_handle(handle)
        os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _append_to_zip(target: Path, name: str, data: bytes) -> None:
    """Add one entry to a finished zip and make it durable (a cut-off append never verifies)."""
    with open(target, "r+b") as handle:
        with zipfile.ZipFile(handle, "a") as zf:
            zf.writestr(_zip_info(name), data)
        _sync_handle(handle)


def _write_tree(
    root: Path,
    content: Mapping[str, bytes | os.PathLike[str]],
    header: dict,
    progress: Progress,
    cancel: CancelToken | None,
) -> bytes:
    """Write every file under ``root``; return the manifest bytes listing them."""
    entries = []
    names = sorted(content)
    for i, rel in enumerate(names):
        check_cancel(cancel)
        progress.update(i / max(len(names), 1), f"writing {rel}")
        target = root.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        size, digest = _write_file(target, content[rel], cancel)
        entries.append({"path": rel, "size": size, "sha256": digest})
    return canonical_json({**header, "files": entries})


def _write_file(
    target: Path, source: bytes | os.PathLike[str], cancel: CancelToken | None = None
) -> tuple[int, str]:
    """Copy ``source`` to a new file, fsync it; return (size, SHA-256 of what was written)."""
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as out:
        for block in _blocks(source):
            check_cancel(cancel)
            digest.update(block)
            out.write(block)
            size += len(block)
        _sync_handle(out)
    return size, digest.hexdigest()


def _blocks(source: bytes | os.PathLike[str]) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
        return
    with open(source, "rb") as handle:
        while block := handle.read(CHUNK):
            yield block


def _sync_handle(handle: BinaryIO) -> None:
    """Flush and fsync, then drop the cached pages so a read-back comes from the device."""
    handle.flush()
    os.fsync(handle.fileno())
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` bottom-up, then ``root`` itself."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(folder))


def _zip_folder(
    root: Path, handle: BinaryIO, progress: Progress, cancel: CancelToken | None
) -> None:
    """Zip the finished package folder (entries at the archive root, no folder entries)."""
    names = [e.name for e in _walk_folder(root) if e.kind == "file"]
    with zipfile.ZipFile(
        handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as zf:
        for i, rel in enumerate(sorted(names)):
            check_cancel(cancel)
            progress.update(i / max(len(names), 1), f"zipping {rel}")
            with open(root / rel, "rb") as src:
                info = _zip_info(rel, src.read(256 << 10))
                src.seek(0)
                with zf.open(info, "w", force_zip64=True) as dst:
                    shutil.copyfileobj(src, dst, CHUNK)


def remove_partials(out_dir: str | os.PathLike[str]) -> list[str]:
    """Delete what interrupted writes left in ``out_dir``; returns the names removed.

    That is hidden ``.<name>.partial-*`` entries, and packages that never reached their commit
    point: a package folder or zip without ``manifest.sig``, an ``.mpkg`` without its magic.
    Nothing else is touched.
    """
    removed = []
    for entry in sorted(Path(out_dir).iterdir()):
        hidden_partial = entry.name.startswith(".") and PARTIAL_MARK in entry.name
        if not hidden_partial and not (
            _PACKAGE_NAME_RE.match(entry.name) and _is_uncommitted(entry)
        ):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
        removed.append(entry.name)
    if removed:
        fsync_dir(Path(out_dir))
    return removed


def _is_uncommitted(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_dir():
        return (entry / MANIFEST).is_file() and not (entry / SIGNATURE).exists()
    if entry.name.endswith(ENCRYPTED_SUFFIX):
        with open(entry, "rb") as handle:
            return handle.read(len(ENC_MAGIC)) != ENC_MAGIC
    try:
        with zipfile.ZipFile(entry) as zf:
            return SIGNATURE not in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return True


# --- containers: one view over a folder or a zip ---------------------------------------------


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str  # "file", "dir", "symlink", "special"
    size: int = 0
    ref: object = None


class _Container:
    kind = "?"

    def entries(self) -> list[_Entry]:
        raise NotImplementedError

    def open(self, entry: _Entry) -> BinaryIO:
        raise NotImplementedError

    def read_small(self, entry: _Entry, limit: int) -> bytes | None:
        """The whole entry, or None when it is larger than ``limit``."""
        if entry.size > limit:
            return None
        with self.open(entry) as handle:
            data = handle.read(limit + 1)
        return None if len(data) > limit else data


class _Folder(_Container):
    kind = "folder"

    def __init__(self, root: Path) -> None:
        self.root = root

    def entries(self) -> list[_Entry]:
        return list(_walk_folder(self.root))

    def open(self, entry: _Entry) -> BinaryIO:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(self.root.joinpath(*entry.name.split("/")), flags)
        return os.fdopen(fd, "rb")


def _walk_folder(root: Path) -> Iterator[_Entry]:
    """Every entry under ``root`` (links not followed), depth-first in name order; iterative,
    so a maliciously deep tree cannot exhaust the stack."""
    pending: list[tuple[Path, str]] = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        with os.scandir(folder) as it:
            items = sorted(it, key=lambda e: e.name)
        below: list[tuple[Path, str]] = []
        for item in items:
            name = f"{prefix}{item.name}"
            if item.is_symlink():
                yield _Entry(name, "symlink")
            elif item.is_dir(follow_symlinks=False):
                yield _Entry(f"{name}/", "dir")
                below.append((Path(item.path), f"{name}/"))
            elif item.is_file(follow_symlinks=False):
                yield _Entry(name, "file", item.stat(follow_symlinks=False).st_size)
            else:
                yield _Entry(name, "special")
        pending.extend(reversed(below))


class _Zip(_Container):
    kind = "zip"

    def __init__(self, zf: zipfile.ZipFile) -> None:
        self.zf = zf

    def entries(self) -> list[_Entry]:
        found = []
        for info in self.zf.infolist():
            # Unix-made archives keep the file type in the high bits of external_attr.
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            if stat.S_ISLNK(mode):
                kind = "symlink"
            elif info.is_dir() or stat.S_ISDIR(mode):
                kind = "dir"
            elif stat.S_IFMT(mode) and not stat.S_ISREG(mode):
                kind = "special"
            else:
                kind = "file"
            found.append(_Entry(info.filename, kind, info.file_size, info))
        return found

    def open(self, entry: _Entry) -> BinaryIO:
        return self.zf.open(entry.ref)  # type: ignore[arg-type]


# --- verifying ----------------------------------------------------------------------------------


def verify_package(
    path: str | os.PathLike[str],
    trusted_keys: Iterable[PublicKey],
    revoked: Iterable[str] = (),
    *,
    recipient_key: RecipientKey | None = None,
    audited: bool = True,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Check a package folder, zip or encrypted ``.mpkg`` without extracting anything.

    Parameters
    ----------
    path
        The package folder, its zip, or its encrypted form.
    trusted_keys
        Public keys whose signatures are accepted.
    revoked
        Fingerprints (64 hex digits) of revoked keys; they never verify, trusted or not.
    recipient_key
        The recipient's private key, needed for an encrypted package.
    audited
        Record the outcome in the audit log.

    Returns
    -------
    VerifyReport
        ``report.ok`` and, when not ok, the problems with their own codes and messages.
    """
    path = Path(path)
    report = VerifyReport(path)
    trust = _Trust({k.fingerprint: k for k in trusted_keys}, {r.lower() for r in revoked})
    try:
        with _open_container(path, report, recipient_key) as container:
            _verify_container(container, report, trust, ensure(progress), cancel)
    except _Failed:
        pass
    if audited:
        audit.record(
            "package.verify",
            case=report.case,
            package_id=report.package_id,
            key_id=report.key_id,
            ok=report.ok,
            problems=report.codes[:20],
            container=report.container,
        )
    return report


@dataclass(frozen=True)
class _Trust:
    keys: dict[str, PublicKey]  # fingerprint -> key
    revoked: set[str]  # fingerprints


def _fail(report: VerifyReport, code: str, message: str, path: str | None = None) -> _Failed:
    report.problems.append(Problem(code, message, path))
    return _Failed()


@contextlib.contextmanager
def _open_container(
    path: Path, report: VerifyReport, recipient_key: RecipientKey | None
) -> Iterator[_Container]:
    if path.is_dir():
        report.container = "folder"
        yield _Folder(path)
        return
    if not path.is_file():
        raise _fail(report, NOT_A_PACKAGE, f"{path.name} does not exist; check the path")
    with open(path, "rb") as handle:
        start = handle.read(len(ENC_MAGIC))
    if start == ENC_MAGIC:
        report.container = "encrypted zip"
        data = _decrypt_for_verify(path, report, recipient_key)
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            yield _Zip(zf)
        return
    report.container = "zip"
    if not zipfile.is_zipfile(path):
        msg = f"{path.name} is not a print package (not a package folder, zip or .mpkg file)"
        raise _fail(report, NOT_A_PACKAGE, msg)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        msg = f"{path.name} is a damaged zip archive ({exc.__class__.__name__}); copy it again"
        raise _fail(report, NOT_A_PACKAGE, msg) from None
    with zf:
        yield _Zip(zf)


def _verify_container(
    container: _Container,
    report: VerifyReport,
    trust: _Trust,
    progress: Progress,
    cancel: CancelToken | None,
) -> None:
    """Steps 1-5 in order; raises :class:`_Failed` when a step fails and later ones are moot."""
    listing = _Listing(container.entries())
    sig_entry = _single_reserved(listing, SIGNATURE, report)
    signed = _read_signature(container, sig_entry, report)
    key = _check_key(signed, report, trust)
    manifest_entry = _single_reserved(listing, MANIFEST, report)
    try:
        manifest_bytes = container.read_small(manifest_entry, MAX_MANIFEST_BYTES)
    except _READ_ERRORS as exc:
        msg = f"manifest.json cannot be read ({exc.__class__.__name__}); copy the package again"
        raise _fail(report, BAD_MANIFEST, msg) from None
    if manifest_bytes is None:
        raise _fail(report, BAD_MANIFEST, "manifest.json is too large to be a package manifest")
    if not key.verify(signed["signature"], manifest_bytes):
        msg = "the signature does not match the manifest: manifest.json or manifest.sig was "
        msg += "altered after signing; do not use this package"
        raise _fail(report, BAD_SIGNATURE, msg)
    manifest = _check_manifest(manifest_bytes, key, report)
    listed = {item["path"]: item for item in manifest["files"]}
    _check_listed_files(container, listing, listed, report, progress=progress, cancel=cancel)
    _check_entries(listing, listed, report)


@dataclass
class _Listing:
    """A container's entries, by name; ``accounted`` names are explained (e.g. renamed)."""

    entries: list[_Entry]
    by_name: dict[str, list[_Entry]] = field(default_factory=dict)
    accounted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for entry in self.entries:
            self.by_name.setdefault(entry.name, []).append(entry)

    def named(self, name: str) -> list[_Entry]:
        return self.by_name.get(name, [])


def _single_reserved(listing: _Listing, name: str, report: VerifyReport) -> _Entry:
    found = listing.named(name)
    if not found:
        code, what = (NO_SIGNATURE, "signature") if name == SIGNATURE else (NO_MANIFEST, "manifest")
        msg = f"the package has no {what} ({name} is missing); it cannot be trusted"
        raise _fail(report, code, msg, name)
    if len(found) > 1:
        msg = f"entry '{name}' appears {len(found)} times in the archive; do not use this package"
        raise _fail(report, DUPLICATE, msg, name)
    if found[0].kind == "symlink":
        raise _fail(report, SYMLINK, f"{name} is a symbolic link, not the file itself", name)
    if found[0].kind != "file":
        raise _fail(report, SPECIAL, f"{name} is not a regular file", name)
    return found[0]


def _read_signature(container: _Container, entry: _Entry, report: VerifyReport) -> dict:
    try:
        data = container.read_small(entry, MAX_SIGNATURE_BYTES)
        signed = json.loads(data or b"")
        if signed["format"] != SIGNATURE_FORMAT or signed["algorithm"] != "Ed25519":
            raise ValueError
        public = PublicKey(base64.b64decode(signed["public_key"], validate=True))
        signature = base64.b64decode(signed["signature"], validate=True)
    except (*_READ_ERRORS, KeyError, TypeError, PackageError):
        msg = "manifest.sig is not a MedPrint Ed25519 signature file; ask the sender to re-export"
        raise _fail(report, BAD_SIGNATURE_FILE, msg, SIGNATURE) from None
    report.key_id = public.key_id
    report.fingerprint = public.fingerprint
    return {"public": public, "signature": signature}


def _check_key(signed: dict, report: VerifyReport, trust: _Trust) -> PublicKey:
    public: PublicKey = signed["public"]
    if public.fingerprint in trust.revoked:
        msg = f"the package is signed by key {public.key_id}, which has been REVOKED; "
        msg += "do not use it and ask the sender for a package signed with a current key"
        raise _fail(report, KEY_REVOKED, msg)
    if public.fingerprint not in trust.keys:
        msg = f"the package is signed by key {public.key_id} (fingerprint "
        msg += f"{public.display_fingerprint}), which is not one of your trusted keys; "
        msg += "confirm the fingerprint with the sender, then pass it with --trusted-key"
        raise _fail(report, KEY_UNTRUSTED, msg)
    return trust.keys[public.fingerprint]


def _check_manifest(data: bytes, key: PublicKey, report: VerifyReport) -> dict:
    try:
        manifest = json.loads(data)
        fmt, version = manifest["format"], manifest["format_version"]
    except (ValueError, KeyError, TypeError):
        msg = "manifest.json is signed but is not a package manifest; ask the sender to rebuild it"
        raise _fail(report, BAD_MANIFEST, msg) from None
    if fmt not in KNOWN_FORMATS or version not in KNOWN_FORMATS[fmt]:
        msg = f"unknown package format '{fmt}' version {version}; this MedPrint reads "
        msg += f"'{FORMAT_NAME}' version {FORMAT_VERSION}: update MedPrint"
        raise _fail(report, UNKNOWN_FORMAT, msg)
    if not _manifest_shape_ok(manifest):
        msg = "manifest.json is signed but malformed (files list, sizes or hashes); "
        msg += "ask the sender to rebuild the package"
        raise _fail(report, BAD_MANIFEST, msg)
    if manifest["signer_key_id"] != key.key_id:
        msg = f"the manifest names signer {manifest['signer_key_id']} but was signed by key "
        msg += f"{key.key_id}; do not use this package"
        raise _fail(report, SIGNER_MISMATCH, msg)
    report.manifest = manifest
    report.package_id = str(manifest.get("package_id"))
    report.case = str(manifest.get("case"))
    _check_listed_paths(manifest["files"], report)
    return manifest


def _manifest_shape_ok(manifest: dict) -> bool:
    files = manifest.get("files")
    if not isinstance(files, list) or not isinstance(manifest.get("signer_key_id"), str):
        return False
    for item in files:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            return False
        size, digest = item.get("size"), item.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return False
        if not isinstance(digest, str) or not _SHA256_RE.match(digest):
            return False
    return True


def _check_listed_paths(files: list[dict], report: VerifyReport) -> None:
    seen: dict[str, str] = {}
    for item in files:
        name = item["path"]
        if check_entry_path(name) is not None or name in RESERVED:
            msg = f"the manifest lists an unsafe path '{name}'; do not use this package"
            raise _fail(report, UNSAFE_LISTED, msg, name)
        folded = _fold(name)
        if folded in seen:
            msg = f"the manifest lists '{name}' and '{seen[folded]}', which clash on "
            msg += "case-insensitive drives; do not use this package"
            raise _fail(report, UNSAFE_LISTED, msg, name)
        seen[folded] = name


def _check_listed_files(
    container: _Container,
    listing: _Listing,
    listed: dict[str, dict],
    report: VerifyReport,
    *,
    progress: Progress,
    cancel: CancelToken | None,
) -> None:
    """Step 4: every listed file present once, as a regular file, with its size and hash."""
    total = max(sum(item["size"] for item in listed.values()), 1)
    missing = []
    for name, item in sorted(listed.items()):
        check_cancel(cancel)
        found = listing.named(name)
        if not found:
            missing.append(name)
        elif len(found) == 1 and found[0].kind == "file":
            _check_file(container, found[0], item, report)
        # duplicates, symlinks and special entries get their own message in step 5
        progress.update(report.bytes_checked / total, f"checking {name}")
    candidates = [
        e
        for e in listing.entries
        if e.kind == "file"
        and e.name not in listed
        and e.name not in RESERVED
        and check_entry_path(e.name) is None
    ]
    for name in missing:
        renamed = _find_renamed(container, listed[name], candidates)
        if renamed is not None:
            msg = f"file '{name}' was renamed to '{renamed.name}' after signing"
            report.problems.append(Problem(RENAMED, msg, name))
            candidates.remove(renamed)
            listing.accounted.add(renamed.name)
        else:
            msg = f"listed file '{name}' is missing from the package: it was removed after signing"
            report.problems.append(Problem(MISSING, msg, name))


def _check_file(container: _Container, entry: _Entry, item: dict, report: VerifyReport) -> None:
    name = entry.name
    if entry.size != item["size"]:
        msg = f"file '{name}' has {entry.size} bytes but the manifest says {item['size']}: "
        msg += "it was changed or cut short"
        report.problems.append(Problem(SIZE_MISMATCH, msg, name))
        return
    try:
        size, digest = _hash_entry(container, entry, item["size"])
    except _READ_ERRORS as exc:
        msg = f"file '{name}' is damaged in the archive ({exc.__class__.__name__})"
        report.problems.append(Problem(CORRUPT_ENTRY, msg, name))
        return
    report.bytes_checked += size
    if size != item["size"]:
        msg = f"file '{name}' holds {size} bytes but the manifest says {item['size']}"
        report.problems.append(Problem(SIZE_MISMATCH, msg, name))
    elif digest != item["sha256"]:
        msg = f"file '{name}' does not match its SHA-256 in the manifest: its content was "
        msg += "changed after signing"
        report.problems.append(Problem(HASH_MISMATCH, msg, name))
    else:
        report.files_checked += 1


def _hash_entry(container: _Container, entry: _Entry, limit: int) -> tuple[int, str]:
    """(bytes read, SHA-256); never reads more than ``limit + 1`` bytes (zip bombs)."""
    digest = hashlib.sha256()
    size = 0
    with container.open(entry) as handle:
        while size <= limit and (block := handle.read(min(CHUNK, limit + 1 - size))):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _find_renamed(container: _Container, item: dict, candidates: list[_Entry]) -> _Entry | None:
    for entry in candidates:
        if entry.size == item["size"]:
            with contextlib.suppress(*_READ_ERRORS):
                if _hash_entry(container, entry, item["size"])[1] == item["sha256"]:
                    return entry
    return None


def _check_entries(listing: _Listing, listed: dict[str, dict], report: VerifyReport) -> None:
    """Step 5: every entry must be a listed regular file (or a folder holding them)."""
    allowed_dirs = {
        f"{p}/" for name in listed for p in PurePosixPath(name).parents if str(p) != "."
    }
    folded: dict[str, list[str]] = {}
    for name in listing.by_name:
        group = folded.setdefault(_fold(name.rstrip("/")), [])
        if name.rstrip("/") not in group:
            group.append(name.rstrip("/"))
    reported_dup: set[str] = set()
    for entry in listing.entries:
        if report.container == "folder" and _is_os_metadata(entry, listed, allowed_dirs):
            report.ignored.append(entry.name)
            continue
        problem = _entry_problem(entry, listing, listed, allowed_dirs, folded)
        if problem is not None and problem.code == DUPLICATE:
            if entry.name in reported_dup:
                continue
            reported_dup.add(entry.name)
        if problem is not None:
            report.problems.append(problem)


_OS_METADATA = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _is_os_metadata(entry: _Entry, listed: dict[str, dict], allowed_dirs: set[str]) -> bool:
    """Files a desktop drops into any folder it shows (Finder, Explorer): ignored in folders.

    ``.DS_Store``, ``Thumbs.db``, ``desktop.ini`` and AppleDouble ``._<name>`` of a listed file
    or folder. They are never read or used, and never accepted inside a zip.
    """
    if entry.kind != "file":
        return False
    folder, _, base = entry.name.rpartition("/")
    if base in _OS_METADATA:
        return True
    if base.startswith("._") and len(base) > 2:
        twin = f"{folder}/{base[2:]}" if folder else base[2:]
        return twin in listed or f"{twin}/" in allowed_dirs
    return False


def _entry_problem(
    entry: _Entry,
    listing: _Listing,
    listed: dict[str, dict],
    allowed_dirs: set[str],
    folded: dict[str, list[str]],
) -> Problem | None:
    name = entry.name
    code = check_entry_path(name.rstrip("/") if entry.kind == "dir" else name)
    if code == ABSOLUTE:
        msg = f"entry '{name}' has an absolute path; extracting it could write anywhere on disk"
        return Problem(ABSOLUTE, msg, name)
    if code == PARENT_REF:
        msg = f"entry '{name}' contains '..'; extracting it could write outside the target folder"
        return Problem(PARENT_REF, msg, name)
    if code is not None:
        return Problem(UNLISTED, f"entry '{name}' has a malformed path (empty part or '\\')", name)
    if entry.kind == "symlink":
        msg = f"entry '{name}' is a symbolic link; packages hold regular files only"
        return Problem(SYMLINK, msg, name)
    if entry.kind == "special":
        return Problem(SPECIAL, f"entry '{name}' is not a regular file or folder", name)
    count = len(listing.named(name))
    if count > 1:
        msg = f"entry '{name}' appears {count} times in the archive: which copy counts is ambiguous"
        return Problem(DUPLICATE, msg, name)
    if entry.kind == "dir":
        if name in allowed_dirs:
            return None
        return Problem(UNLISTED, f"folder '{name}' is not part of the signed package", name)
    twins = [n for n in folded.get(_fold(name), []) if n != name]
    if twins and name not in listed and name not in RESERVED:
        msg = f"entries '{twins[0]}' and '{name}' differ only in letter case; on Windows or "
        msg += "macOS one would overwrite the other"
        return Problem(CASEFOLD_DUPLICATE, msg, name)
    if name in listed or name in RESERVED or name in listing.accounted:
        return None
    msg = f"entry '{name}' is not listed in the manifest: it was added after signing"
    return Problem(UNLISTED, msg, name)


# --- extracting (verified first) ----------------------------------------------------------------


def extract_package(
    zip_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    trusted_keys: Iterable[PublicKey],
    revoked: Iterable[str] = (),
    *,
    recipient_key: RecipientKey | None = None,
) -> Path:
    """Verify a zip (or ``.mpkg``) package, then extract it into a new folder ``dest``."""
    if Path(zip_path).is_dir():
        msg = "this package is a folder already; use it where it is (nothing to extract)"
        raise PackageError(msg)
    trusted_keys = list(trusted_keys)
    report = verify_package(zip_path, trusted_keys, revoked, recipient_key=recipient_key)
    report.raise_if_invalid()
    dest = Path(dest)
    if dest.exists():
        msg = f"{dest.name} already exists; choose a new folder to extract into"
        raise PackageError(msg)
    tmp = dest.with_name(f".{dest.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    tmp.mkdir(parents=True)
    try:
        data = _container_bytes(Path(zip_path), recipient_key)
        with zipfile.ZipFile(io.BytesIO(data) if data else zip_path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                target = tmp.joinpath(*PurePosixPath(info.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                    _sync_handle(out)
        _fsync_tree(tmp)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The extracted copy is checked again: what is on disk is what was verified.
    verify_package(dest, trusted_keys, revoked, audited=False).raise_if_invalid()
    return dest


def _container_bytes(path: Path, recipient_key: RecipientKey | None) -> bytes | None:
    with open(path, "rb") as handle:
        if handle.read(len(ENC_MAGIC)) != ENC_MAGIC:
            return None
    if recipient_key is None:
        msg = "this package is encrypted; pass the recipient key"
        raise PackageError(msg)
    out = io.BytesIO()
    with open(path, "rb") as src:
        decrypt_stream(src, out, recipient_key)
    return out.getvalue()


# --- encryption for a named recipient -------------------------------------------------------

ENC_MAGIC = b"MPKGENC\x01"
ENC_FORMAT = "medprint-encrypted-package"
ENC_CIPHER = "X25519-HKDF-SHA256-AES-256-GCM-STREAM"
_HKDF_INFO = b"medprint package encryption v1"
_MAX_HEADER = 64 << 10
_MAX_CHUNK = 64 << 20


def encrypt_stream(
    src: BinaryIO, dst: BinaryIO, recipient: RecipientPublicKey, chunk: int = CHUNK
) -> None:
    """Encrypt ``src`` for ``recipient`` into ``dst`` (chunked AES-256-GCM).

    A fresh ephemeral X25519 key agrees a secret with the recipient's static key; HKDF-SHA256
    turns it into the AES key. Each chunk's nonce holds its counter and a last-chunk flag and every
    chunk authenticates the header, so reordering, truncation and header edits are all detected.
    """
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    header = canonical_json(
        {
            "format": ENC_FORMAT,
            "version": 1,
            "cipher": ENC_CIPHER,
            "recipient": recipient.name,
            "recipient_key_id": recipient.key_id,
            "ephemeral_public": base64.b64encode(eph_raw).decode("ascii"),
            "nonce_prefix": base64.b64encode(secrets.token_bytes(7)).decode("ascii"),
            "chunk_size": chunk,
        }
    )
    prelude = ENC_MAGIC + struct.pack(">I", len(header)) + header
    key = _derive_key(ephemeral.exchange(recipient.crypto_key()), eph_raw, recipient.raw)
    dst.write(prelude)
    _encrypt_chunks(src, dst, AESGCM(key), json.loads(header), prelude)


def _encrypt_chunks(src: BinaryIO, dst: BinaryIO, aead: AESGCM, header: dict, aad: bytes) -> None:
    prefix = base64.b64decode(header["nonce_prefix"])
    chunk = int(header["chunk_size"])
    counter = 0
    block = src.read(chunk)
    while True:
        following = src.read(chunk) if len(block) == chunk else b""
        last = not following
        nonce = prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
        dst.write(aead.encrypt(nonce, block, aad))
        if last:
            return
        block, counter = following, counter + 1


def read_encryption_header(src: BinaryIO) -> tuple[dict, bytes]:
    """The header of an encrypted package and the exact prelude bytes it authenticates."""
    magic = src.read(len(ENC_MAGIC))
    if magic != ENC_MAGIC:
        msg = "not an encrypted MedPrint package (.mpkg)"
        raise PackageError(msg)
    prefix = src.read(4)
    length = struct.unpack(">I", prefix)[0] if len(prefix) == 4 else _MAX_HEADER + 1
    if length > _MAX_HEADER:
        msg = "the encrypted package header is damaged; copy the package again"
        raise PackageError(msg)
    raw = src.read(length)
    try:
        header = json.loads(raw)
        if header["format"] != ENC_FORMAT or header["cipher"] != ENC_CIPHER:
            raise ValueError
        if not 1 <= int(header["chunk_size"]) <= _MAX_CHUNK:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        msg = "the encrypted package header is damaged or of an unknown kind; update MedPrint"
        raise PackageError(msg) from None
    return header, magic + struct.pack(">I", length) + raw


def decrypt_stream(src: BinaryIO, dst: BinaryIO, recipient_key: RecipientKey) -> dict:
    """Decrypt an encrypted package into ``dst``; returns its header. Wrong key or any
    tampering raises :class:`PackageError` with its own message."""
    header, prelude = read_encryption_header(src)
    mine = recipient_key.public_key
    if header.get("recipient_key_id") != mine.key_id:
        who = header.get("recipient") or "another recipient"
        msg = f"this package is encrypted for '{who}' (key {header.get('recipient_key_id')}), "
        msg += f"not for this recipient key ({mine.key_id}); ask the sender to encrypt it for you"
        raise PackageError(msg)
    eph_raw = base64.b64decode(header["ephemeral_public"])
    shared = recipient_key.private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
    aead = AESGCM(_derive_key(shared, eph_raw, mine.raw))
    prefix = base64.b64decode(header["nonce_prefix"])
    size = int(header["chunk_size"]) + 16
    counter = 0
    block = src.read(size)
    while True:
        following = src.read(size) if len(block) == size else b""
        last = not following
        nonce = prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
        try:
            dst.write(aead.decrypt(nonce, block, prelude))
        except InvalidTag:
            msg = "the encrypted package was altered or cut short (authentication failed); "
            msg += "do not use it and ask the sender for a new copy"
            raise PackageError(msg) from None
        if last:
            return header
        block, counter = following, counter + 1


def _derive_key(shared: bytes, eph_raw: bytes, recipient_raw: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + recipient_raw, info=_HKDF_INFO)
    return hkdf.derive(shared)


def _decrypt_for_verify(
    path: Path, report: VerifyReport, recipient_key: RecipientKey | None
) -> bytes:
    with open(path, "rb") as src:
        try:
            header, _ = read_encryption_header(src)
        except PackageError as exc:
            raise _fail(report, DECRYPT_FAILED, str(exc)) from None
        if recipient_key is None:
            who = header.get("recipient") or "a recipient"
            msg = f"the package is encrypted for '{who}' (key {header.get('recipient_key_id')}); "
            msg += "verify it on the recipient's workstation, which holds the private key"
            raise _fail(report, ENCRYPTED, msg)
        src.seek(0)
        out = io.BytesIO()
        try:
            decrypt_stream(src, out, recipient_key)
        except PackageError as exc:
            raise _fail(report, DECRYPT_FAILED, str(exc)) from None
    return out.getvalue()


def decrypt_package(
    path: str | os.PathLike[str], out_zip: str | os.PathLike[str], recipient_key: RecipientKey
) -> Path:
    """Decrypt an ``.mpkg`` into a zip file (written atomically); verify it afterwards."""
    out_zip = Path(out_zip)
    tmp = out_zip.with_name(f".{out_zip.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    try:
        with open(path, "rb") as src, open(tmp, "xb") as dst:
            decrypt_stream(src, dst, recipient_key)
            _sync_handle(dst)
        os.replace(tmp, out_zip)
        fsync_dir(out_zip.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return out_zip


def _build_encrypted(job: _Job, recipient: RecipientPublicKey) -> Path:
    """The zip is built and verified in memory (never in the clear on disk), then encrypted."""
    out, name, signer, progress, cancel = job.out, job.name, job.signer, job.progress, job.cancel
    buffer = io.BytesIO()
    manifest = _zip_content(buffer, job.content, job.header, progress.sub(0.0, 0.5), cancel)
    job.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr(_zip_info(SIGNATURE), _signature_bytes(signer, manifest))
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as zf:
        report = VerifyReport(out / name, container="zip in memory")
        trusted = {signer.public_key.fingerprint: signer.public_key}
        with contextlib.suppress(_Failed):
            _verify_container(_Zip(zf), report, _Trust(trusted, set()), Progress(), cancel)
        report.raise_if_invalid()
    final = out / f"{name}{ENCRYPTED_SUFFIX}"
    tmp = out / f".{final.name}{PARTIAL_MARK}{secrets.token_hex(4)}"
    digest = hashlib.sha256()
    try:
        buffer.seek(0)
        with open(tmp, "xb") as raw:
            # The magic is written last (the commit point): until then the file is no package.
            encrypt_stream(buffer, _HashingWriter(raw, digest, mask=len(ENC_MAGIC)), recipient)
            _sync_handle(raw)
        check_cancel(cancel)
        os.rename(tmp, final)
        fsync_dir(out)
    finally:
        tmp.unlink(missing_ok=True)
    with open(final, "r+b") as raw:
        raw.write(ENC_MAGIC)
        _sync_handle(raw)
    progress.update(0.9, "reading the package back from the drive")
    if _file_sha256(final) != digest.hexdigest():
        final.unlink(missing_ok=True)
        msg = "the package read back from the drive differs from what was written; "
        msg += "the drive may be failing: use another one"
        raise PackageError(msg)
    return final


def _zip_content(
    buffer: BinaryIO,
    content: Mapping[str, bytes | os.PathLike[str]],
    header: dict,
    progress: Progress,
    cancel: CancelToken | None,
) -> bytes:
    entries = []
    names = sorted(content)
    with zipfile.ZipFile(
        buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as zf:
        for i, rel in enumerate(names):
            progress.update(i / max(len(names), 1), f"adding {rel}")
            digest = hashlib.sha256()
            size = 0
            blocks = _blocks(content[rel])
            first = next(blocks, b"")
            with zf.open(_zip_info(rel, first), "w", force_zip64=True) as dst:
                for block in itertools.chain([first], blocks):
                    check_cancel(cancel)
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
            entries.append({"path": rel, "size": size, "sha256": digest.hexdigest()})
        manifest = canonical_json({**header, "files": entries})
        zf.writestr(_zip_info(MANIFEST), manifest)
    return manifest


def _zip_info(name: str, sample: bytes = b"") -> zipfile.ZipInfo:
    """A zip entry with a fixed date and mode; deflated unless ``sample`` shows it does not pay."""
    info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
    info.compress_type = (
        zipfile.ZIP_DEFLATED if _worth_deflating(name, sample) else zipfile.ZIP_STORED
    )
    # Level 1: within a few % of level 6 on meshes and G-code, at 4x the speed. The attribute is
    # `_compresslevel` up to Python 3.12 and `compress_level` from 3.13.
    for attr in ("_compresslevel", "compress_level"):
        if hasattr(info, attr):
            setattr(info, attr, ZIP_LEVEL)
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


_PACKED_SUFFIXES = (".3mf", ".zip", ".png", ".jpg", ".jpeg", ".gz", ".bgcode")


def _worth_deflating(name: str, sample: bytes) -> bool:
    """Binary STL floats or already-packed formats shrink little and deflate slowly: store them."""
    if name.lower().endswith(_PACKED_SUFFIXES):
        return False
    if len(sample) < 4096:
        return True
    return len(zlib.compress(sample[: 256 << 10], 1)) < 0.8 * min(len(sample), 256 << 10)


class _HashingWriter(io.RawIOBase):
    """Hashes what passes through; the first ``mask`` bytes reach the file as zeros."""

    def __init__(self, target: BinaryIO, digest: hashlib._Hash, mask: int = 0) -> None:
        self.target, self.digest, self.mask = target, digest, mask

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.digest.update(data)
        if self.mask:
            hidden = min(self.mask, len(data))
            data = b"\0" * hidden + bytes(data[hidden:])
            self.mask -= hidden
        return self.target.write(data)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()

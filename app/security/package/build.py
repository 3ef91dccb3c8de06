"""Writing a signed package atomically on a drive or folder, read back and verified.

**Writing** is atomic, and the signature is the commit point. The files and the manifest go into
a hidden ``.<name>.partial-*`` folder on the target drive; every file and folder is fsynced; the
folder is renamed to its final name and the parent fsynced; the zip (when asked for) is written
the same way; only then is ``manifest.sig`` put in place (temporary name, fsync, rename). The
package is finally read back from the drive (cached pages dropped) and verified. A write killed or
a drive pulled at any moment therefore leaves a hidden partial folder or an unsigned package,
never a half-written one that verifies; :func:`remove_partials` clears such leftovers. An
encrypted ``.mpkg`` gets its magic bytes last, for the same reason.

Before the manifest is written, the content (with the hashes taken while writing it) is checked
as :mod:`.binding` checks it on arrival: the approval names the packaged mesh, the overrides it
rests on are carried, and every G-code names that mesh or carries its foreign-gcode override. A
package that would not verify is removed unsigned. Nothing here decides who may build a package or
writes an audit record: the workflow does (:mod:`app.workflow.package`).
"""

from __future__ import annotations

import errno
import hashlib
import io
import itertools
import os
import re
import secrets
import shutil
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.atomic import atomic_write_bytes, fsync_dir
from app.errors import PackageError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security.package import binding
from app.security.package.container import walk_folder
from app.security.package.format import (
    CHUNK,
    ENC_MAGIC,
    ENCRYPTED_SUFFIX,
    MANIFEST,
    MAX_RECORD_BYTES,
    PACKAGE_NAME_RE,
    PARTIAL_MARK,
    PSEUDONYM_RE,
    SIGNATURE,
    ZIP_LEVEL,
    ZIP_SUFFIX,
    PackageMeta,
    PackageRecords,
    canonical_json,
    encrypt_stream,
    manifest_header,
    signature_bytes,
    validate_files,
    zip_info,
)
from app.security.package.verify import verify_package, verify_zip_in_memory
from app.security.signing import PublicKey, RecipientPublicKey, SigningKey, TrustStore, utc_now
from app.settings import Paths, resolve_paths

Source = bytes | os.PathLike[str]
_SPACE_MARGIN = 1 << 20
# What a package may carry besides its records: mesh parts (STL, 3MF, the whole model as GLB)
# and their manifest, G-code or a resin SL1 archive with its provenance, the QA report and the
# review report (PDF), the traceability chain.
# Nothing else (no DICOM, no loose user files) leaves this way.
PACKAGE_KINDS = re.compile(
    r"^(mesh/[^/]+\.(stl|3mf|glb)|mesh/manifest\.json|gcode/[^/]+\.(gcode|sl1|json)"
    r"|qa/report\.(json|html)|qa/review\.pdf|trace/chain\.json)$"
)


@dataclass(frozen=True)
class BuiltPackage:
    """A package written and verified: where it is, its ID, and what its manifest says."""

    path: Path
    package_id: str
    manifest_sha256: str
    key_id: str
    manifest: dict


def build_package(
    out_dir: str | os.PathLike[str],
    *,
    files: Mapping[str, Source],
    meta: PackageMeta,
    approval: Mapping[str, object] | None,
    overrides: Sequence[Mapping[str, object]] = (),
    roles: Mapping[str, object] | None = None,
    signer: SigningKey | None = None,
    lab_keys: Sequence[PublicKey] = (),
    paths: Paths | None = None,
    make_zip: bool = False,
    recipient: RecipientPublicKey | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> BuiltPackage:
    """Write a signed package into ``out_dir`` atomically, read it back and verify it.

    Parameters
    ----------
    out_dir
        The target folder: the root of a removable drive or any folder.
    files
        Package path (``mesh/C-7K3M-Q9_skull.stl``) -> content (bytes, or a file to stream from):
        the mesh parts with ``mesh/manifest.json``, the QA report, G-code with provenance
        (:data:`PACKAGE_KINDS`; any other file is refused).
    meta
        Case pseudonym, printer and slicer settings, software version.
    approval, overrides
        The approval record and every override it (or a G-code) rests on (from
        :mod:`app.security.access`). Each is written as a file and shown in the manifest,
        without its free-text fields (comment, reason), which stay in the vault.
    roles
        The role statements that show the signers' roles back to the lab's founding key
        (:func:`app.security.esign.roles_bundle`), written as ``roles.json``.
    signer
        The signing key; by default this workstation's key from the OS keystore.
    lab_keys
        Keys the read-back verification trusts besides the signer: the lab's founding key, to
        which the package's roles record chains the signers of its approval and overrides.
    make_zip
        Also write ``<name>.zip`` beside the folder.
    recipient
        Encrypt for this recipient: only ``<name>.mpkg`` (the zip, encrypted) is written.

    Returns
    -------
    BuiltPackage
        The package folder (or the encrypted ``.mpkg`` file when ``recipient`` is given), its ID
        and manifest.
    """
    progress = ensure(progress)
    paths = paths or resolve_paths()
    out = Path(out_dir)
    _check_target(out, meta)
    signer = signer or SigningKey.load_or_create(paths=paths)
    if signer.public_key.fingerprint in TrustStore(paths).revoked():
        msg = f"signing key {signer.key_id} is revoked; an administrator replaces it with "
        msg += "'medprint keys revoke'"
        raise PackageError(msg)
    records = PackageRecords.public(approval, overrides, roles)
    if not records.approval:
        msg = "a package needs the approval of its mesh version; ask a reviewer to approve it"
        raise PackageError(msg)
    content: dict[str, Source] = {**files, **records.files()}
    validate_files(content)
    _check_kinds(files)
    _check_space(out, content, make_zip=make_zip or recipient is not None)
    package_id = str(uuid.uuid4())
    job = _Job(out, meta, package_id, content, records, signer, progress, cancel)
    job.lab_keys = list(lab_keys)
    try:
        result = _build_encrypted(job, recipient) if recipient else _build_folder(job, make_zip)
    except OSError as exc:
        raise PackageError(_write_error(exc)) from None
    progress.update(1.0, "package written and verified; the drive is safe to remove")
    return BuiltPackage(result, package_id, job.manifest_sha256, signer.key_id, job.header)


def _check_target(out: Path, meta: PackageMeta) -> None:
    if not out.is_dir():
        msg = "the target folder does not exist or is not mounted; choose a drive or folder"
        raise PackageError(msg)
    if not PSEUDONYM_RE.match(meta.case):
        msg = "the case pseudonym must be letters, digits and '-' (like C-7K3M-Q9)"
        raise PackageError(msg)


def _check_kinds(files: Mapping[str, Source]) -> None:
    for name in files:
        if not PACKAGE_KINDS.match(name):
            msg = f"'{name}' cannot be a package file: a package holds only mesh parts (.stl, "
            msg += (
                ".3mf, .glb) and their manifest, G-code or SL1 with its provenance, the QA report "
            )
            msg += "the review report and the traceability chain"
            raise PackageError(msg)


def _check_binding(
    content: Mapping[str, Source], hashes: Mapping[str, str], records: PackageRecords
) -> dict:
    """Refuse content that would not verify on arrival; the manifest's mesh and G-code."""

    def read(name: str) -> bytes | None:
        source = content.get(name)
        if source is None or _source_size(source) > MAX_RECORD_BYTES:
            return None
        return bytes(source) if isinstance(source, bytes) else Path(source).read_bytes()

    found = binding.check(hashes, read, records.approval, records.overrides)
    if found.problems:
        msg = "this package would not verify: "
        msg += "; ".join(p.message for p in found.problems)
        raise PackageError(msg)
    return found.summary


def _source_size(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else Path(source).stat().st_size


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


def _check_space(out: Path, content: Mapping[str, Source], make_zip: bool) -> None:
    total = sum(_source_size(v) for v in content.values())
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
    """One package being written: where, what, with which records, signed by whom."""

    out: Path
    meta: PackageMeta
    package_id: str
    content: Mapping[str, Source]
    records: PackageRecords
    signer: SigningKey
    progress: Progress
    cancel: CancelToken | None
    header: dict = field(default_factory=dict)
    manifest_sha256: str = ""
    lab_keys: list[PublicKey] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.meta.case}_{self.package_id[:8]}"

    def manifest(self, entries: list[dict]) -> bytes:
        """The manifest listing ``entries`` (as written), once the content is known to bind
        its mesh: a package that would not verify is refused before it is signed."""
        hashes = {e["path"]: e["sha256"] for e in entries}
        summary = _check_binding(self.content, hashes, self.records)
        self.header = manifest_header(
            self.meta,
            package_id=self.package_id,
            created_utc=utc_now(),
            signer=self.signer,
            records=self.records,
            summary=summary,
        )
        manifest = canonical_json({**self.header, "files": entries})
        self.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        return manifest


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
        manifest = job.manifest(_write_tree(tmp, job.content, progress.sub(0.0, 0.6), cancel))
        _write_file(tmp / MANIFEST, manifest)
        fsync_tree(tmp)
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
        signature = signature_bytes(job.signer, manifest)
        atomic_write_bytes(final / SIGNATURE, signature)
        if zip_final is not None:
            _append_to_zip(zip_final, SIGNATURE, signature)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        if zip_final is not None:
            zip_final.unlink(missing_ok=True)
        raise
    trusted = [job.signer.public_key, *job.lab_keys]
    progress.sub(0.75, 1.0).update(0.0, "reading the package back from the drive")
    for written in (final, zip_final):
        if written is None:
            continue
        report = verify_package(written, trusted, set())
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
            sync_handle(handle)
        os.rename(tmp, target)
        fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _append_to_zip(target: Path, name: str, data: bytes) -> None:
    """Add one entry to a finished zip and make it durable (a cut-off append never verifies)."""
    with open(target, "r+b") as handle:
        with zipfile.ZipFile(handle, "a") as zf:
            zf.writestr(zip_info(name), data)
        sync_handle(handle)


def _write_tree(
    root: Path,
    content: Mapping[str, Source],
    progress: Progress,
    cancel: CancelToken | None,
) -> list[dict]:
    """Write every file under ``root``; return each one's path, size and SHA-256."""
    entries = []
    names = sorted(content)
    for i, rel in enumerate(names):
        check_cancel(cancel)
        progress.update(i / max(len(names), 1), f"writing {rel}")
        target = root.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        size, digest = _write_file(target, content[rel], cancel)
        entries.append({"path": rel, "size": size, "sha256": digest})
    return entries


def _write_file(target: Path, source: Source, cancel: CancelToken | None = None) -> tuple[int, str]:
    """Copy ``source`` to a new file, fsync it; return (size, SHA-256 of what was written)."""
    digest = hashlib.sha256()
    size = 0
    with open(target, "xb") as out:
        for block in _blocks(source):
            check_cancel(cancel)
            digest.update(block)
            out.write(block)
            size += len(block)
        sync_handle(out)
    return size, digest.hexdigest()


def _blocks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start : start + CHUNK])
        return
    with open(source, "rb") as handle:
        while block := handle.read(CHUNK):
            yield block


def sync_handle(handle: BinaryIO) -> None:
    """Flush and fsync, then drop the cached pages so a read-back comes from the device."""
    handle.flush()
    os.fsync(handle.fileno())
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def fsync_tree(root: Path) -> None:
    """fsync every folder under ``root`` bottom-up, then ``root`` itself."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(folder))


def _zip_folder(
    root: Path, handle: BinaryIO, progress: Progress, cancel: CancelToken | None
) -> None:
    """Zip the finished package folder (entries at the archive root, no folder entries)."""
    names = [e.name for e in walk_folder(root) if e.kind == "file"]
    with zipfile.ZipFile(
        handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL
    ) as zf:
        for i, rel in enumerate(sorted(names)):
            check_cancel(cancel)
            progress.update(i / max(len(names), 1), f"zipping {rel}")
            with open(root / rel, "rb") as src:
                info = zip_info(rel, src.read(256 << 10))
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
            PACKAGE_NAME_RE.match(entry.name) and _is_uncommitted(entry)
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


def _build_encrypted(job: _Job, recipient: RecipientPublicKey) -> Path:
    """The zip is built and verified in memory (never in the clear on disk), then encrypted."""
    out, name, signer, progress, cancel = job.out, job.name, job.signer, job.progress, job.cancel
    buffer = io.BytesIO()
    manifest = _zip_content(buffer, job, progress.sub(0.0, 0.5))
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr(zip_info(SIGNATURE), signature_bytes(signer, manifest))
    buffer.seek(0)
    with zipfile.ZipFile(buffer) as zf:
        trusted = [signer.public_key, *job.lab_keys]
        verify_zip_in_memory(zf, out / name, trusted, cancel).raise_if_invalid()
    final = out / f"{name}{ENCRYPTED_SUFFIX}"
    tmp = out / f".{final.name}{PARTIAL_MARK}{secrets.token_hex(4)}"
    digest = hashlib.sha256()
    try:
        buffer.seek(0)
        with open(tmp, "xb") as raw:
            # The magic is written last (the commit point): until then the file is no package.
            encrypt_stream(buffer, _HashingWriter(raw, digest, mask=len(ENC_MAGIC)), recipient)
            sync_handle(raw)
        check_cancel(cancel)
        os.rename(tmp, final)
        fsync_dir(out)
    finally:
        tmp.unlink(missing_ok=True)
    with open(final, "r+b") as raw:
        raw.write(ENC_MAGIC)
        sync_handle(raw)
    progress.update(0.9, "reading the package back from the drive")
    if _file_sha256(final) != digest.hexdigest():
        final.unlink(missing_ok=True)
        msg = "the package read back from the drive differs from what was written; "
        msg += "the drive may be failing: use another one"
        raise PackageError(msg)
    return final


def _zip_content(buffer: BinaryIO, job: _Job, progress: Progress) -> bytes:
    """Every file into a zip in ``buffer``, then the manifest listing them; the manifest."""
    content, cancel = job.content, job.cancel
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
            with zf.open(zip_info(rel, first), "w", force_zip64=True) as dst:
                for block in itertools.chain([first], blocks):
                    check_cancel(cancel)
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
            entries.append({"path": rel, "size": size, "sha256": digest.hexdigest()})
        manifest = job.manifest(entries)
        zf.writestr(zip_info(MANIFEST), manifest)
    return manifest


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

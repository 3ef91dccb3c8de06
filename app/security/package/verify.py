"""Verifying a package folder, zip or encrypted ``.mpkg`` before anything in it is used.

:func:`verify_package` checks, in this order, and stops at the first failed step:

1. the signer key is not revoked and is trusted: a trusted key, or one the package's roles record
   (``roles.json``, statements that verify back to a trusted lab key, so they are safe to read
   before anything else) shows as a member who may build packages;
2. the signature matches the exact manifest bytes;
3. the manifest format and version are known (and the manifest is well formed and names the same
   signer);
4. every listed file is present, with the listed size and SHA-256;
5. there is no unlisted, duplicate, case-folded duplicate, absolute, ``..``, symlinked or special
   entry;
6. the records bind (see :mod:`.binding`): the approval and override files are the ones the
   manifest shows, the approval names the packaged mesh, every override it rests on is there,
   and every G-code names that mesh or carries a foreign-gcode override;
7. the approval and every override carry good e-signatures (:mod:`app.security.esign`) by
   people whom the roles record, chained to a trusted lab key, shows in the role each needs, and
   the approval is for the packaged case.

For a zip every check runs on the archive itself, through one open handle: nothing is extracted
(:func:`open_verified` keeps that handle for
:func:`~app.security.package.extract.extract_package`, which extracts from the very bytes it
verified). An ``.mpkg`` is decrypted chunk by chunk as it is read, in bounded memory. Each failure
has its own code and message. Nothing here writes an audit record: the workflow does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from app.errors import PackageError
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.security import access, esign
from app.security.package import binding
from app.security.package.container import (
    READ_ERRORS,
    Container,
    DecryptedFile,
    Entry,
    Folder,
    StreamTampered,
    Zip,
    hash_entry,
)
from app.security.package.format import (
    ABSOLUTE,
    APPROVAL_FILE,
    BAD_MANIFEST,
    BAD_RECORD,
    BAD_SIGNATURE,
    BAD_SIGNATURE_FILE,
    CASEFOLD_DUPLICATE,
    CORRUPT_ENTRY,
    DECISION_CASE,
    DECRYPT_FAILED,
    DUPLICATE,
    ENC_MAGIC,
    ENCRYPTED,
    FORMAT_NAME,
    FORMAT_VERSION,
    HASH_MISMATCH,
    KEY_REVOKED,
    KEY_UNTRUSTED,
    KNOWN_FORMATS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_RECORD_BYTES,
    MAX_SIGNATURE_BYTES,
    MISSING,
    NO_MANIFEST,
    NO_SIGNATURE,
    NOT_A_PACKAGE,
    OVERRIDES_DIR,
    PARENT_REF,
    RENAMED,
    RESERVED,
    ROLES_FILE,
    SHA256_RE,
    SIGNATURE,
    SIGNATURE_FORMAT,
    SIGNER_MISMATCH,
    SIZE_MISMATCH,
    SPECIAL,
    SYMLINK,
    UNKNOWN_FORMAT,
    UNLISTED,
    UNSAFE_LISTED,
    Problem,
    check_entry_path,
    fold,
    override_file,
    read_encryption_header,
)
from app.security.roles import RolesState
from app.security.signing import PublicKey, RecipientKey


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
    extracted: Path | None = None  # where a verified zip was extracted, when asked

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


class _Failed(Exception):
    """Internal: a step failed and verification stops (the problem is already recorded)."""


def verify_package(
    path: str | os.PathLike[str],
    trusted_keys: Iterable[PublicKey],
    revoked: Iterable[str] = (),
    *,
    recipient_key: RecipientKey | None = None,
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

    Returns
    -------
    VerifyReport
        ``report.ok`` and, when not ok, the problems with their own codes and messages.
    """
    with open_verified(
        path, trusted_keys, revoked, recipient_key=recipient_key, progress=progress, cancel=cancel
    ) as (report, _):
        return report


@contextlib.contextmanager
def open_verified(
    path: str | os.PathLike[str],
    trusted_keys: Iterable[PublicKey],
    revoked: Iterable[str] = (),
    *,
    recipient_key: RecipientKey | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[VerifyReport, Container | None]]:
    """:func:`verify_package`, keeping the checked view open while the caller uses it.

    A zip or ``.mpkg`` is opened once; the view yielded (None unless the package verified)
    reads through that same handle, so what is used is what was verified even if the file is
    swapped meanwhile.
    """
    path = Path(path)
    report = VerifyReport(path)
    trust = _Trust({k.fingerprint: k for k in trusted_keys}, {r.lower() for r in revoked})
    with contextlib.ExitStack() as stack:
        container: Container | None = None
        try:
            container = stack.enter_context(_open_container(path, report, recipient_key))
            _verify_container(container, report, trust, ensure(progress), cancel)
        except _Failed:
            pass
        except StreamTampered as exc:
            report.problems.append(Problem(DECRYPT_FAILED, str(exc)))
        yield report, container if report.ok else None


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
) -> Iterator[Container]:
    if path.is_dir():
        report.container = "folder"
        yield Folder(path)
        return
    if not path.is_file():
        raise _fail(report, NOT_A_PACKAGE, f"{path.name} does not exist; check the path")
    with open(path, "rb") as handle:
        if handle.read(len(ENC_MAGIC)) == ENC_MAGIC:
            report.container = "encrypted zip"
            source = _decrypted(handle, report, recipient_key)
        else:
            report.container = "zip"
            source = handle
        if not zipfile.is_zipfile(source):
            msg = f"{path.name} is not a print package (not a package folder, zip or .mpkg file)"
            raise _fail(report, NOT_A_PACKAGE, msg)
        try:
            zf = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError) as exc:
            msg = f"{path.name} is a damaged zip archive ({exc.__class__.__name__}); copy it again"
            raise _fail(report, NOT_A_PACKAGE, msg) from None
        with zf:
            yield Zip(zf)


def _verify_container(
    container: Container,
    report: VerifyReport,
    trust: _Trust,
    progress: Progress,
    cancel: CancelToken | None,
) -> None:
    """Steps 1-5 in order; raises :class:`_Failed` when a step fails and later ones are moot."""
    listing = _Listing(container.entries())
    sig_entry = _single_reserved(listing, SIGNATURE, report)
    signed = _read_signature(container, sig_entry, report)
    key = _check_revoked(signed, report, trust)
    roles = _open_roles(container, listing, trust)
    _check_signer(key, roles, report, trust)
    manifest_entry = _single_reserved(listing, MANIFEST, report)
    try:
        manifest_bytes = container.read_small(manifest_entry, MAX_MANIFEST_BYTES)
    except READ_ERRORS as exc:
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
    if report.ok:
        _check_binding(container, listing, manifest, report, roles)


@dataclass
class _Listing:
    """A container's entries, by name; ``accounted`` names are explained (e.g. renamed)."""

    entries: list[Entry]
    by_name: dict[str, list[Entry]] = field(default_factory=dict)
    accounted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for entry in self.entries:
            self.by_name.setdefault(entry.name, []).append(entry)

    def named(self, name: str) -> list[Entry]:
        return self.by_name.get(name, [])


def _single_reserved(listing: _Listing, name: str, report: VerifyReport) -> Entry:
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


def _read_signature(container: Container, entry: Entry, report: VerifyReport) -> dict:
    try:
        data = container.read_small(entry, MAX_SIGNATURE_BYTES)
        signed = json.loads(data or b"")
        if signed["format"] != SIGNATURE_FORMAT or signed["algorithm"] != "Ed25519":
            raise ValueError
        public = PublicKey(base64.b64decode(signed["public_key"], validate=True))
        signature = base64.b64decode(signed["signature"], validate=True)
    except (*READ_ERRORS, KeyError, TypeError, PackageError):
        msg = "manifest.sig is not a MedPrint Ed25519 signature file; ask the sender to re-export"
        raise _fail(report, BAD_SIGNATURE_FILE, msg, SIGNATURE) from None
    report.key_id = public.key_id
    report.fingerprint = public.fingerprint
    return {"public": public, "signature": signature}


def _check_revoked(signed: dict, report: VerifyReport, trust: _Trust) -> PublicKey:
    public: PublicKey = signed["public"]
    if public.fingerprint in trust.revoked:
        msg = f"the package is signed by key {public.key_id}, which has been REVOKED; "
        msg += "do not use it and ask the sender for a package signed with a current key"
        raise _fail(report, KEY_REVOKED, msg)
    return public


_PACKAGE_MAKERS = frozenset({access.TECHNICIAN, access.ADMINISTRATOR})


def _open_roles(
    container: Container, listing: _Listing, trust: _Trust
) -> RolesState | esign.Invalid:
    """The package's roles record verified back to a trusted lab key, or why not. Its bytes are
    the listed ones by the time they are used for more than the signer (steps 4 and 5)."""
    found = listing.named(ROLES_FILE)
    data, bundle = None, None
    if len(found) == 1 and found[0].kind == "file":
        with contextlib.suppress(*READ_ERRORS):
            data = container.read_small(found[0], MAX_RECORD_BYTES)
    if data is not None:
        with contextlib.suppress(ValueError):
            bundle = json.loads(data)
    return esign.open_bundle(bundle, set(trust.keys), trust.revoked)


def _check_signer(
    key: PublicKey, roles: RolesState | esign.Invalid, report: VerifyReport, trust: _Trust
) -> None:
    """The package signer is trusted, or a member who may build packages (technician or
    administrator) of a lab whose key is trusted."""
    if key.fingerprint in trust.keys:
        return
    if not isinstance(roles, esign.Invalid):
        member = roles.identity_by_fingerprint(key.fingerprint)
        if member is not None and roles.roles.get(member.user, set()) & _PACKAGE_MAKERS:
            return
    msg = f"the package is signed by key {key.key_id} (fingerprint {key.display_fingerprint}), "
    msg += "which is neither one of your trusted keys nor a member of a lab you trust; "
    msg += "confirm the lab's key fingerprint with the sender, then pass it with --trusted-key"
    raise _fail(report, KEY_UNTRUSTED, msg)


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
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            return False
    return True


def _check_listed_paths(files: list[dict], report: VerifyReport) -> None:
    seen: dict[str, str] = {}
    for item in files:
        name = item["path"]
        if check_entry_path(name) is not None or name in RESERVED:
            msg = f"the manifest lists an unsafe path '{name}'; do not use this package"
            raise _fail(report, UNSAFE_LISTED, msg, name)
        folded = fold(name)
        if folded in seen:
            msg = f"the manifest lists '{name}' and '{seen[folded]}', which clash on "
            msg += "case-insensitive drives; do not use this package"
            raise _fail(report, UNSAFE_LISTED, msg, name)
        seen[folded] = name


def _check_listed_files(
    container: Container,
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


def _check_file(container: Container, entry: Entry, item: dict, report: VerifyReport) -> None:
    name = entry.name
    if entry.size != item["size"]:
        msg = f"file '{name}' has {entry.size} bytes but the manifest says {item['size']}: "
        msg += "it was changed or cut short"
        report.problems.append(Problem(SIZE_MISMATCH, msg, name))
        return
    try:
        size, digest = hash_entry(container, entry, item["size"])
    except READ_ERRORS as exc:
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


def _find_renamed(container: Container, item: dict, candidates: list[Entry]) -> Entry | None:
    for entry in candidates:
        if entry.size == item["size"]:
            with contextlib.suppress(*READ_ERRORS):
                if hash_entry(container, entry, item["size"])[1] == item["sha256"]:
                    return entry
    return None


def _check_entries(listing: _Listing, listed: dict[str, dict], report: VerifyReport) -> None:
    """Step 5: every entry must be a listed regular file (or a folder holding them)."""
    allowed_dirs = {
        f"{p}/" for name in listed for p in PurePosixPath(name).parents if str(p) != "."
    }
    folded: dict[str, list[str]] = {}
    for name in listing.by_name:
        group = folded.setdefault(fold(name.rstrip("/")), [])
        if name.rstrip("/") not in group:
            group.append(name.rstrip("/"))
    reported_dup: set[str] = set()
    for entry in listing.entries:
        problem = _entry_problem(entry, listing, listed, allowed_dirs, folded)
        if problem is not None and problem.code == DUPLICATE:
            if entry.name in reported_dup:
                continue
            reported_dup.add(entry.name)
        if problem is not None:
            report.problems.append(problem)


def _entry_problem(
    entry: Entry,
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
    twins = [n for n in folded.get(fold(name), []) if n != name]
    if twins and name not in listed and name not in RESERVED:
        msg = f"entries '{twins[0]}' and '{name}' differ only in letter case; on Windows or "
        msg += "macOS one would overwrite the other"
        return Problem(CASEFOLD_DUPLICATE, msg, name)
    if name in listed or name in RESERVED or name in listing.accounted:
        return None
    msg = f"entry '{name}' is not listed in the manifest: it was added after signing"
    return Problem(UNLISTED, msg, name)


def _decrypted(
    handle: BinaryIO, report: VerifyReport, recipient_key: RecipientKey | None
) -> DecryptedFile:
    """The zip inside an ``.mpkg`` (decrypted as it is read), or a problem."""
    handle.seek(0)
    try:
        header, _ = read_encryption_header(handle)
    except PackageError as exc:
        raise _fail(report, DECRYPT_FAILED, str(exc)) from None
    if recipient_key is None:
        who = header.get("recipient") or "a recipient"
        msg = f"the package is encrypted for '{who}' (key {header.get('recipient_key_id')}); "
        msg += "verify it on the recipient's workstation, which holds the private key"
        raise _fail(report, ENCRYPTED, msg)
    try:
        return DecryptedFile(handle, recipient_key)
    except PackageError as exc:
        raise _fail(report, DECRYPT_FAILED, str(exc)) from None


def _check_binding(
    container: Container,
    listing: _Listing,
    manifest: dict,
    report: VerifyReport,
    roles: RolesState | esign.Invalid,
) -> None:
    """Steps 6 and 7: the records are the manifest's, they bind the packaged mesh and G-code,
    and they are signed by people in the roles they need."""
    listed = {item["path"]: item["sha256"] for item in manifest["files"]}

    def read(name: str) -> bytes | None:
        found = listing.named(name)
        if name not in listed or len(found) != 1:
            return None
        with contextlib.suppress(*READ_ERRORS):
            return container.read_small(found[0], MAX_RECORD_BYTES)
        return None

    approval = _record(read, APPROVAL_FILE, report)
    overrides = [
        _record(read, name, report)
        for name in sorted(listed)
        if name.startswith(f"{OVERRIDES_DIR}/") and name.endswith(".json")
    ]
    if approval != (manifest.get("approval") or None) or overrides != manifest.get("overrides"):
        msg = "the approval or override files differ from the records the manifest shows; "
        msg += "do not use this package"
        report.problems.append(Problem(BAD_RECORD, msg, APPROVAL_FILE))
        return
    found = binding.check(listed, read, approval, [o for o in overrides if o])
    report.problems.extend(found.problems)
    if not found.problems and found.summary != {k: manifest.get(k) for k in ("mesh", "gcode")}:
        msg = "the manifest's mesh or G-code summary does not match the packaged files"
        report.problems.append(Problem(BAD_MANIFEST, msg, MANIFEST))
    if approval is not None:
        _check_signatures(manifest, approval, [o for o in overrides if o], roles, report)


def _check_signatures(
    manifest: dict,
    approval: dict,
    overrides: list[dict],
    roles: RolesState | esign.Invalid,
    report: VerifyReport,
) -> None:
    """Step 7: every record's e-signature, by someone the trusted lab's roles show in the role
    it needs; the approval is for this package's case."""
    if isinstance(roles, esign.Invalid):
        report.problems.append(Problem(roles.code, roles.message, ROLES_FILE))
        return
    if approval.get("case") != manifest.get("case"):
        msg = "the approval is for another case than the packaged one; do not print it"
        report.problems.append(Problem(DECISION_CASE, msg, APPROVAL_FILE))
    for record, path in [(approval, APPROVAL_FILE), *((o, override_file(o)) for o in overrides)]:
        invalid = esign.check(record, roles)
        if invalid is not None:
            report.problems.append(Problem(invalid.code, invalid.message, path))


def _record(read: binding.Reader, name: str, report: VerifyReport) -> dict | None:
    """A record file as a dict; None when absent or empty (``{}``); malformed is a problem."""
    data = read(name)
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        report.problems.append(Problem(BAD_RECORD, f"{name} is not a readable record", name))
        return None
    return record or None


def verify_zip_in_memory(
    zf: zipfile.ZipFile,
    label: Path,
    trusted_keys: Iterable[PublicKey],
    cancel: CancelToken | None = None,
) -> VerifyReport:
    """Verify an open zip (an encrypted package's content before it is sealed)."""
    report = VerifyReport(label, container="zip in memory")
    trust = _Trust({k.fingerprint: k for k in trusted_keys}, set())
    with contextlib.suppress(_Failed):
        _verify_container(Zip(zf), report, trust, Progress(), cancel)
    return report

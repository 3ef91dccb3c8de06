"""The package format: file names, problem codes, canonical JSON, the manifest and signature,
the records a package carries, zip entries, and the encrypted (``.mpkg``) stream.

A package is a folder (and optionally the same content as one zip, or that zip encrypted for a
named recipient) holding the de-identified print files plus

- ``manifest.json``: format name and version, package ID, creation time (UTC), case pseudonym,
  every file's path, size and SHA-256 (sorted by path), printer and slicer settings, the mesh
  (version, hash, parts) and G-code it carries, the approval record and every override it rests
  on, software version, signer key ID;
- ``manifest.sig``: the Ed25519 signature over the exact bytes of ``manifest.json``, with the
  signer's public key and key ID;
- ``approval.json`` and ``overrides/<kind>-<id>.json``: the approval and each override record,
  the same as in the manifest, each e-signed by the person who made it (free text such as
  comments and reasons stays in the vault);
- ``roles.json``: the role statements that show each signer's role, chained to the lab's
  founding key (public keys only; :func:`app.security.esign.roles_bundle`);
- ``mesh/manifest.json``: the mesh version's part list, whose hash the approval names
  (see :mod:`.binding`); ``gcode/NAME.gcode`` with its provenance ``gcode/NAME.json``;
- ``trace/chain.json``: the case's traceability chain as far as it existed when the package
  was made (hashes, pseudonym, roles, times), which must name the packaged mesh, approval and
  G-code (see :mod:`.binding`).
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app import __version__
from app.errors import PackageError
from app.security.signing import RecipientKey, RecipientPublicKey, SigningKey

FORMAT_NAME = "medprint-print-package"
FORMAT_VERSION = 2  # 2: the mesh manifest, G-code provenance and every override are bound
KNOWN_FORMATS: dict[str, frozenset[int]] = {FORMAT_NAME: frozenset({FORMAT_VERSION})}
SIGNATURE_FORMAT = "medprint-signature"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
APPROVAL_FILE = "approval.json"
ROLES_FILE = "roles.json"
OVERRIDES_DIR = "overrides"
MESH_MANIFEST = "mesh/manifest.json"
MESH_DIR = "mesh"
GCODE_DIR = "gcode"
QA_REPORT = "qa/report.json"
QA_REPORT_HTML = "qa/report.html"
REVIEW_REPORT_PDF = "qa/review.pdf"
CHAIN_FILE = "trace/chain.json"
FREE_TEXT_FIELDS = frozenset({"comment", "reason"})
RESERVED = frozenset({MANIFEST, SIGNATURE})
PARTIAL_MARK = ".partial-"
ZIP_SUFFIX = ".zip"
ENCRYPTED_SUFFIX = ".mpkg"

CHUNK = 1 << 20
ZIP_LEVEL = 1
MAX_MANIFEST_BYTES = 16 << 20
MAX_SIGNATURE_BYTES = 64 << 10
MAX_RECORD_BYTES = 4 << 20  # a record, mesh manifest or provenance file
PSEUDONYM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,47}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
PACKAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,47}_[0-9a-f]{8}(\.zip|\.mpkg)?$")
_PART_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9_-])?$")
_WINDOWS_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(1, 10)}
)


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
# What the records bind (checked once every file is known good; see .binding).
NO_APPROVAL = "no-approval"
BAD_RECORD = "bad-record"
BAD_MESH_MANIFEST = "bad-mesh-manifest"
APPROVAL_MESH_MISMATCH = "approval-mesh-mismatch"
QA_MISMATCH = "qa-mismatch"
MISSING_OVERRIDE = "missing-override"
BAD_PROVENANCE = "bad-provenance"
GCODE_MESH_MISMATCH = "gcode-mesh-mismatch"
DECISION_CASE = "decision-case"
CHAIN_MISMATCH = "chain-mismatch"
# The e-signature codes (decision-unsigned, decision-signature, signer-unknown, signer-role,
# no-roles, roles-chain, lab-untrusted) are app.security.esign's.


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


def fold(name: str) -> str:
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


def validate_files(files: Mapping[str, bytes | os.PathLike[str]]) -> None:
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


def public_record(record: Mapping[str, object] | None) -> dict | None:
    """An approval/override record as it leaves the workstation: free-text fields (a comment or
    reason may name the patient) stay in the vault; everything else travels."""
    if not record:
        return None
    public = {k: v for k, v in record.items() if k not in FREE_TEXT_FIELDS}
    kept = sorted(k for k in record if k in FREE_TEXT_FIELDS)
    if kept:
        public["kept_in_vault"] = kept
    return public


def override_file(record: Mapping[str, object]) -> str:
    """Where an override record travels in a package: ``overrides/<kind>-<id prefix>.json``."""
    return f"{OVERRIDES_DIR}/{record.get('kind')}-{str(record.get('id', ''))[:8]}.json"


@dataclass(frozen=True)
class PackageRecords:
    """The approval and the overrides a package carries, as they leave the workstation, and
    the role statements that show their signers' roles."""

    approval: dict | None
    overrides: tuple[dict, ...] = ()
    roles: dict | None = None

    @classmethod
    def public(
        cls,
        approval: Mapping[str, object] | None,
        overrides: Sequence[Mapping[str, object]],
        roles: Mapping[str, object] | None = None,
    ) -> PackageRecords:
        kept = (public_record(o) for o in overrides)
        return cls(
            public_record(approval),
            tuple(sorted((o for o in kept if o), key=override_file)),
            dict(roles) if roles else None,
        )

    def files(self) -> dict[str, bytes]:
        """Each record as its own file (the manifest shows the same approval and overrides)."""
        files = {APPROVAL_FILE: canonical_json(self.approval or {})}
        files |= {override_file(o): canonical_json(o) for o in self.overrides}
        if self.roles:
            files[ROLES_FILE] = canonical_json(self.roles)
        return files


def manifest_header(
    meta: PackageMeta,
    *,
    package_id: str,
    created_utc: str,
    signer: SigningKey,
    records: PackageRecords,
    summary: Mapping[str, object],
) -> dict:
    """Everything the manifest says besides its file list."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "package_id": package_id,
        "created_utc": created_utc,
        "case": meta.case,
        "software": {"name": "MedPrint", "version": meta.software_version},
        "signer_key_id": signer.key_id,
        "printer": dict(meta.printer),
        "slicer": dict(meta.slicer),
        "mesh": summary.get("mesh"),
        "gcode": summary.get("gcode", []),
        "approval": records.approval,
        "overrides": list(records.overrides),
    }


def signature_bytes(signer: SigningKey, manifest: bytes) -> bytes:
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


# --- zip entries ----------------------------------------------------------------------------


def zip_info(name: str, sample: bytes = b"") -> zipfile.ZipInfo:
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
    opened = ChunkCipher(header, prelude, recipient_key)
    size = opened.sealed_size
    counter = 0
    block = src.read(size)
    while True:
        following = src.read(size) if len(block) == size else b""
        last = not following
        dst.write(opened.open(counter, block, last=last))
        if last:
            return header
        block, counter = following, counter + 1


class ChunkCipher:
    """Opens the chunks of one encrypted package, each on its own (in order or not): chunk
    ``n`` authenticates with its number, whether it is the last, and the header."""

    def __init__(self, header: dict, prelude: bytes, recipient_key: RecipientKey) -> None:
        mine = recipient_key.public_key
        if header.get("recipient_key_id") != mine.key_id:
            who = header.get("recipient") or "another recipient"
            msg = f"this package is encrypted for '{who}' (key {header.get('recipient_key_id')}), "
            msg += f"not for this recipient key ({mine.key_id}); ask the sender to encrypt it "
            msg += "for you"
            raise PackageError(msg)
        try:
            eph_raw = base64.b64decode(header["ephemeral_public"], validate=True)
            shared = recipient_key.private.exchange(X25519PublicKey.from_public_bytes(eph_raw))
            self.prefix = base64.b64decode(header["nonce_prefix"], validate=True)
        except (ValueError, KeyError, TypeError):
            msg = "the encrypted package header is damaged; copy the package again"
            raise PackageError(msg) from None
        self.aead = AESGCM(_derive_key(shared, eph_raw, mine.raw))
        self.prelude = prelude
        self.chunk_size = int(header["chunk_size"])
        self.sealed_size = self.chunk_size + 16

    def open(self, counter: int, block: bytes, *, last: bool) -> bytes:
        nonce = self.prefix + struct.pack(">I", counter) + (b"\x01" if last else b"\x00")
        try:
            return self.aead.decrypt(nonce, block, self.prelude)
        except (InvalidTag, ValueError):
            msg = "the encrypted package was altered or cut short (authentication failed); "
            msg += "do not use it and ask the sender for a new copy"
            raise PackageError(msg) from None


def _derive_key(shared: bytes, eph_raw: bytes, recipient_raw: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_raw + recipient_raw, info=_HKDF_INFO)
    return hkdf.derive(shared)

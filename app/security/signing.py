"""Package signing keys: an Ed25519 key in the OS keystore, a trust store and a revocation list.

The workstation signs every print package with one Ed25519 key whose private half lives only in
the OS keystore (:class:`app.security.keystore.Keystore`); it is created on first use. The public
half is exported as PEM or raw base64, and identified by

- its **fingerprint**: SHA-256 of the 32 raw public-key bytes, shown as 16 groups of 4 hex digits;
- its **key ID**: the first 16 hex digits of that fingerprint (what manifests and messages name).

The receiving side decides which keys it trusts: a folder of public-key files
(``<data>/config/trusted-keys``, the workstation's own key is placed there when it is created) or
keys named explicitly (``medprint verify --trusted-key``). A revocation list
(``<data>/config/revoked-keys.json``) wins over trust: a revoked key never verifies.

Recipient keys (X25519) let a package be encrypted for one named receiver; their private half
also lives in the OS keystore of the receiving machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from app.atomic import atomic_write_bytes
from app.errors import KeystoreError, PackageError
from app.security.keystore import Keystore
from app.settings import Paths, resolve_paths

SIGNING_KEY_NAME = "package-signing-key-ed25519"
RECIPIENT_KEY_NAME = "package-recipient-key-x25519"
TRUSTED_KEYS_DIR = "trusted-keys"
REVOKED_KEYS_FILE = "revoked-keys.json"
RECIPIENTS_DIR = "recipients"
KEY_FILE_SUFFIX = ".pub"

_RAW_KEY_LEN = 32
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def fingerprint_of(raw: bytes) -> str:
    """SHA-256 of raw public-key bytes as 64 lowercase hex digits."""
    return hashlib.sha256(raw).hexdigest()


def format_fingerprint(fingerprint: str) -> str:
    """``3f2a9b01...`` as ``3f2a 9b01 ...`` (groups of four, easy to read aloud and compare)."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


def normalise_fingerprint(text: str) -> str:
    """A fingerprint or key ID typed by a user: spaces/colons dropped, lowercase."""
    return re.sub(r"[\s:]", "", text).lower()


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key (the 32 raw bytes), with the names people use for it."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != _RAW_KEY_LEN:
            msg = f"an Ed25519 public key has 32 bytes, not {len(self.raw)}; check the key file"
            raise PackageError(msg)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.raw)

    @property
    def key_id(self) -> str:
        return self.fingerprint[:16]

    @property
    def display_fingerprint(self) -> str:
        return format_fingerprint(self.fingerprint)

    def to_base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    def to_pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature over exactly ``data``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, data)
        except InvalidSignature:
            return False
        return True

    @classmethod
    def from_text(cls, text: str) -> PublicKey:
        """Parse a PEM public key or the raw key in base64 (what ``keys export`` writes)."""
        return cls(_parse_public_text(text, Ed25519PublicKey, "Ed25519"))

    @classmethod
    def load(cls, source: str | Path) -> PublicKey:
        """A key from a file path, or from the key text itself (PEM or base64)."""
        return cls.from_text(_read_key_source(source))


class SigningKey:
    """The workstation's Ed25519 signing key; the private half never leaves the keystore."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = PublicKey(raw)

    @property
    def key_id(self) -> str:
        return self.public_key.key_id

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature over ``data``."""
        return self._private.sign(data)

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key held only in memory (tests, or before storing it)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, keystore: Keystore | None = None) -> SigningKey | None:
        """The stored key, or None when this workstation has none yet."""
        secret = (keystore or Keystore()).get(SIGNING_KEY_NAME)
        if secret is None:
            return None
        if len(secret) != _RAW_KEY_LEN:
            msg = "the package signing key in the OS keystore is damaged; revoke it with "
            msg += "'medprint keys revoke' so a new one is created"
            raise KeystoreError(msg)
        return cls(Ed25519PrivateKey.from_private_bytes(secret))

    @classmethod
    def load_or_create(
        cls, keystore: Keystore | None = None, paths: Paths | None = None
    ) -> SigningKey:
        """The stored key, created on first use and then added to this workstation's trust store
        (of ``paths``, by default the current data folder)."""
        keystore = keystore or Keystore()
        key = cls.load(keystore)
        if key is not None:
            return key
        key = cls.generate()
        raw = key._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        keystore.set(SIGNING_KEY_NAME, raw)
        TrustStore(paths or resolve_paths()).add(key.public_key, name="this-workstation")
        return key


def delete_signing_key(keystore: Keystore | None = None) -> None:
    """Remove the signing key from the keystore; the next signature creates a new one."""
    (keystore or Keystore()).delete(SIGNING_KEY_NAME)


@dataclass(frozen=True)
class Revocation:
    fingerprint: str
    key_id: str
    revoked_utc: str
    reason: str


class TrustStore:
    """Trusted public keys (one file per key) and the revocation list, under ``paths.config``."""

    def __init__(self, paths: Paths) -> None:
        self.folder = paths.config / TRUSTED_KEYS_DIR
        self.revoked_file = paths.config / REVOKED_KEYS_FILE

    def trusted(self) -> list[PublicKey]:
        """Every readable key in the trust folder; an unreadable file is an error, not skipped."""
        if not self.folder.is_dir():
            return []
        found: dict[str, PublicKey] = {}
        for path in sorted(self.folder.glob(f"*{KEY_FILE_SUFFIX}")):
            try:
                key = PublicKey.from_text(path.read_text(encoding="ascii"))
            except (OSError, UnicodeDecodeError, PackageError) as exc:
                msg = f"trusted key file {path.name} is unreadable ({exc}); fix or remove it"
                raise PackageError(msg) from None
            found[key.fingerprint] = key
        return list(found.values())

    def add(self, key: PublicKey, name: str | None = None) -> Path:
        """Trust ``key``; the file is named after the key ID (and an optional plain name)."""
        if name is not None and not _NAME_RE.match(name):
            msg = "a key name uses letters, digits, '.', '_' or '-' (at most 64); choose another"
            raise PackageError(msg)
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = f"{name}-{key.key_id}" if name else key.key_id
        path = self.folder / f"{stem}{KEY_FILE_SUFFIX}"
        atomic_write_bytes(path, key.to_pem().encode("ascii"))
        return path

    def revocations(self) -> list[Revocation]:
        if not self.revoked_file.exists():
            return []
        try:
            raw = json.loads(self.revoked_file.read_text(encoding="utf-8"))
            return [Revocation(**item) for item in raw["revoked"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = f"revocation list {self.revoked_file.name} is unreadable "
            msg += f"({exc.__class__.__name__}); restore it from a backup"
            raise PackageError(msg) from None

    def revoked(self) -> set[str]:
        """Fingerprints of every revoked key."""
        return {r.fingerprint for r in self.revocations()}

    def revoke(self, key: PublicKey, reason: str = "") -> Revocation:
        """Add ``key`` to the revocation list (idempotent); returns its entry."""
        entries = self.revocations()
        for entry in entries:
            if entry.fingerprint == key.fingerprint:
                return entry
        entry = Revocation(key.fingerprint, key.key_id, utc_now(), reason)
        entries.append(entry)
        self.revoked_file.parent.mkdir(parents=True, exist_ok=True)
        data = {"revoked": [vars(e) for e in entries]}
        atomic_write_bytes(self.revoked_file, json.dumps(data, indent=2).encode("utf-8"))
        return entry

    def find(self, fingerprint_or_id: str) -> PublicKey | None:
        """The trusted key whose fingerprint starts with ``fingerprint_or_id`` (>= 16 digits)."""
        wanted = normalise_fingerprint(fingerprint_or_id)
        if len(wanted) < 16:
            msg = "name a key by its key ID (16 hex digits) or its full fingerprint"
            raise PackageError(msg)
        matches = [k for k in self.trusted() if k.fingerprint.startswith(wanted)]
        return matches[0] if len(matches) == 1 else None


# --- recipient keys (X25519) -------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientPublicKey:
    """A receiver's X25519 public key, with an optional plain name (e.g. 'print-room')."""

    raw: bytes
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.raw) != _RAW_KEY_LEN:
            msg = f"an X25519 public key has 32 bytes, not {len(self.raw)}; check the key file"
            raise PackageError(msg)

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.raw)

    @property
    def key_id(self) -> str:
        return self.fingerprint[:16]

    def to_base64(self) -> str:
        return base64.b64encode(self.raw).decode("ascii")

    def to_pem(self) -> str:
        pem = X25519PublicKey.from_public_bytes(self.raw).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem.decode("ascii")

    def crypto_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.raw)

    @classmethod
    def from_text(cls, text: str, name: str = "") -> RecipientPublicKey:
        return cls(_parse_public_text(text, X25519PublicKey, "X25519"), name)

    @classmethod
    def load(cls, source: str | Path, name: str = "") -> RecipientPublicKey:
        return cls.from_text(_read_key_source(source), name)


class RecipientKey:
    """A receiving side's X25519 private key, stored in its OS keystore."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self.private = private
        raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.public_key = RecipientPublicKey(raw)

    @classmethod
    def generate(cls) -> RecipientKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def load(cls, keystore: Keystore | None = None) -> RecipientKey | None:
        secret = (keystore or Keystore()).get(RECIPIENT_KEY_NAME)
        if secret is None:
            return None
        return cls(X25519PrivateKey.from_private_bytes(secret))

    @classmethod
    def load_or_create(cls, keystore: Keystore | None = None) -> RecipientKey:
        keystore = keystore or Keystore()
        key = cls.load(keystore)
        if key is None:
            key = cls.generate()
            keystore.set(RECIPIENT_KEY_NAME, key.private_bytes())
        return key

    def private_bytes(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )


class RecipientBook:
    """Named recipients' public keys, one file each in ``<data>/config/recipients``."""

    def __init__(self, paths: Paths) -> None:
        self.folder = paths.config / RECIPIENTS_DIR

    def add(self, name: str, key: RecipientPublicKey) -> Path:
        if not _NAME_RE.match(name):
            msg = "a recipient name uses letters, digits, '.', '_' or '-' (at most 64)"
            raise PackageError(msg)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}{KEY_FILE_SUFFIX}"
        atomic_write_bytes(path, key.to_pem().encode("ascii"))
        return path

    def get(self, name: str) -> RecipientPublicKey:
        path = self.folder / f"{name}{KEY_FILE_SUFFIX}"
        if not _NAME_RE.match(name) or not path.is_file():
            msg = f"no recipient named '{name}'; add their public key with "
            msg += "'medprint keys recipient-add NAME KEYFILE'"
            raise PackageError(msg)
        return RecipientPublicKey.load(path, name)

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name.removesuffix(KEY_FILE_SUFFIX) for p in self.folder.glob("*.pub"))


# --- helpers -----------------------------------------------------------------------------------


def utc_now() -> str:
    """The current time as ISO 8601 UTC with a ``Z`` (seconds precision)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _read_key_source(source: str | Path) -> str:
    text = str(source)
    if "BEGIN" not in text and len(text) < 4096:
        path = Path(text).expanduser()
        try:
            if path.is_file():
                return path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"key file {path.name} is unreadable ({exc.__class__.__name__})"
            raise PackageError(msg) from None
    return text


def _parse_public_text(text: str, key_type: type, label: str) -> bytes:
    text = text.strip()
    if "BEGIN PUBLIC KEY" in text:
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            msg = "not a readable PEM public key; export it again with 'medprint keys export'"
            raise PackageError(msg) from None
        if not isinstance(key, key_type):
            msg = f"the PEM key is not an {label} key; MedPrint uses {label} keys here"
            raise PackageError(msg)
        return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _RAW_KEY_LEN:
        msg = f"not an {label} public key (expected PEM or 44 characters of base64, "
        msg += "or a path to a key file)"
        raise PackageError(msg)
    return raw

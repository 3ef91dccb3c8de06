"""The case vault: every case file encrypted at rest, keyed through the OS keystore.

Keys
    A 256-bit master key lives only in the OS keystore (entry ``vault-master-<vault id>-<gen>``).
    Every case has its own random data key, stored wrapped (AES-256-GCM) by the master key in
    ``vault.json``; the case index and the global records have data keys of their own.
    ``rotate_key`` re-wraps the data keys under a new master key without touching the data.
    A recovery key, shown once at ``init`` (and later on request, audited), unwraps a copy of
    the master key kept in ``vault.json`` and puts it back into the keystore.

Files
    ``<vault>/vault.json`` key material (wrapped only) and the vault id, rewritten atomically;
    ``<vault>/cases/<pseudonym>/<name>`` chunked AEAD streams (app/security/streams.py);
    ``<vault>/index/index`` the encrypted case index (patient name, ID, birth date, ...);
    ``<vault>/records/<name>`` encrypted global records (roles, UID map, ...).
Outside this folder, a case is only its pseudonym.
"""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.atomic import atomic_write_bytes, atomic_writer
from app.errors import IntegrityError, VaultError
from app.security.keystore import Keystore
from app.security.streams import DecryptingReader, EncryptingWriter
from app.settings import Paths, resolve_paths

VAULT_FORMAT = 1
INDEX = "_index"
RECORDS = "_records"
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: readable over the phone
_CHECK = b"medprint-vault-key-check"


@dataclass
class CaseEntry:
    """One row of the decrypted case index."""

    pseudonym: str
    identity: dict[str, str] = field(default_factory=dict)
    created: str = ""


def new_pseudonym(taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A random case pseudonym like ``C-7K3M-Q9`` not in ``taken``."""
    while True:
        chars = "".join(secrets.choice(_ALPHABET) for _ in range(6))
        pseudonym = f"C-{chars[:4]}-{chars[4:]}"
        if pseudonym not in taken:
            return pseudonym


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def _wrap(key: bytes, secret: bytes, context: str) -> str:
    nonce = secrets.token_bytes(12)
    return _b64(nonce + AESGCM(key).encrypt(nonce, secret, context.encode("utf-8")))


def _unwrap(key: bytes, blob: str, context: str) -> bytes:
    raw = _unb64(blob)
    return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode("utf-8"))


def _recovery_kek(recovery_key: str, vault_id: str) -> bytes:
    raw = recovery_key.upper().replace("-", "").replace(" ", "").removeprefix("MPRK")
    try:
        secret = base64.b32decode(raw)
    except ValueError:
        msg = "recovery key is malformed; type it exactly as shown at 'vault init'"
        raise VaultError(msg) from None
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=vault_id.encode(), info=b"medprint-recovery"
    )
    return hkdf.derive(secret)


def _format_recovery(secret: bytes) -> str:
    text = base64.b32encode(secret).decode("ascii").rstrip("=")
    return "MPRK-" + "-".join(text[i : i + 4] for i in range(0, len(text), 4))


def _check_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        msg = f"invalid vault file name {name!r}"
        raise VaultError(msg)
    return name


class Vault:
    """An opened vault: the master key is held in memory only while this object lives."""

    def __init__(self, paths: Paths, meta: dict, master_key: bytes) -> None:
        self.paths = paths
        self.root = paths.vault
        self._meta = meta
        self._master = master_key
        self._lock = threading.RLock()

    # ----- creation and opening -------------------------------------------------------------
    @staticmethod
    def meta_path(paths: Paths) -> Path:
        return paths.vault / "vault.json"

    @classmethod
    def exists(cls, paths: Paths | None = None) -> bool:
        return cls.meta_path(paths or resolve_paths()).exists()

    @classmethod
    def init(cls, paths: Paths | None = None) -> tuple[Vault, str]:
        """Create a new vault; returns it and the recovery key (shown to the user once)."""
        paths = (paths or resolve_paths()).ensure()
        if cls.exists(paths):
            msg = f"a vault already exists in {paths.vault}; use 'medprint vault status'"
            raise VaultError(msg)
        vault_id = secrets.token_hex(8)
        master, recovery = secrets.token_bytes(32), secrets.token_bytes(20)
        recovery_text = _format_recovery(recovery)
        meta = {
            "format": VAULT_FORMAT,
            "vault_id": vault_id,
            "generation": 1,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "keys": {},
        }
        cls._seal_master(meta, master, recovery_text)
        Keystore().set(cls._entry(vault_id, 1), master)
        vault = cls(paths, meta, master)
        for special in (INDEX, RECORDS):
            meta["keys"][special] = _wrap(master, secrets.token_bytes(32), f"dek:{special}")
        vault._save_meta()
        vault._save_index({})
        return vault, recovery_text

    @staticmethod
    def _entry(vault_id: str, generation: int) -> str:
        return f"vault-master-{vault_id}-{generation}"

    @staticmethod
    def _seal_master(meta: dict, master: bytes, recovery_text: str) -> None:
        meta["check"] = _wrap(master, _CHECK, f"check:{meta['vault_id']}")
        meta["recovery_key"] = _wrap(master, recovery_text.encode(), "recovery-key")
        kek = _recovery_kek(recovery_text, meta["vault_id"])
        meta["master_by_recovery"] = _wrap(kek, master, "master")

    @classmethod
    def _load_meta(cls, paths: Paths) -> dict:
        path = cls.meta_path(paths)
        if not path.exists():
            msg = f"no vault in {paths.vault}; create one with 'medprint vault init'"
            raise VaultError(msg)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            msg = "vault.json is unreadable; restore it from a backup"
            raise VaultError(msg) from None
        if meta.get("format") != VAULT_FORMAT:
            msg = f"vault format {meta.get('format')!r} is not supported by this MedPrint version"
            raise VaultError(msg)
        return meta

    @classmethod
    def open(cls, paths: Paths | None = None) -> Vault:
        """Open the vault with the master key from the OS keystore."""
        paths = paths or resolve_paths()
        meta = cls._load_meta(paths)
        entry = cls._entry(meta["vault_id"], meta["generation"])
        master = Keystore().require(entry, "the vault master key")
        try:
            if _unwrap(master, meta["check"], f"check:{meta['vault_id']}") != _CHECK:
                raise InvalidTag
        except InvalidTag:
            msg = "the master key in the OS keystore does not open this vault; "
            msg += "restore it with 'medprint vault recovery-key --restore KEY'"
            raise VaultError(msg) from None
        return cls(paths, meta, master)

    @classmethod
    def restore_with_recovery_key(cls, recovery_key: str, paths: Paths | None = None) -> Vault:
        """Put the master key back into the keystore using the recovery key."""
        paths = paths or resolve_paths()
        meta = cls._load_meta(paths)
        kek = _recovery_kek(recovery_key, meta["vault_id"])
        try:
            master = _unwrap(kek, meta["master_by_recovery"], "master")
        except InvalidTag:
            msg = "the recovery key does not match this vault; check it and try again"
            raise VaultError(msg) from None
        Keystore().set(cls._entry(meta["vault_id"], meta["generation"]), master)
        return cls(paths, meta, master)

    # ----- key management -------------------------------------------------------------------
    @property
    def vault_id(self) -> str:
        return self._meta["vault_id"]

    @property
    def generation(self) -> int:
        return int(self._meta["generation"])

    def recovery_key(self) -> str:
        """The recovery key, decrypted on request."""
        return _unwrap(self._master, self._meta["recovery_key"], "recovery-key").decode()

    def rotate_key(self) -> None:
        """Re-wrap every data key under a new master key; the data is not re-encrypted.

        The new key is stored under a new keystore entry before ``vault.json`` switches to it,
        so a crash at any point leaves a vault that opens.
        """
        with self._lock:
            recovery_text = _unwrap(
                self._master, self._meta["recovery_key"], "recovery-key"
            ).decode()
            new_master = secrets.token_bytes(32)
            old_entry = self._entry(self.vault_id, self.generation)
            meta = dict(self._meta)
            meta["generation"] = self.generation + 1
            meta["keys"] = {
                name: _wrap(new_master, _unwrap(self._master, blob, f"dek:{name}"), f"dek:{name}")
                for name, blob in self._meta["keys"].items()
            }
            self._seal_master(meta, new_master, recovery_text)
            Keystore().set(self._entry(self.vault_id, meta["generation"]), new_master)
            self._meta, self._master = meta, new_master
            self._save_meta()
            Keystore().delete(old_entry)

    def _save_meta(self) -> None:
        text = json.dumps(self._meta, indent=1, sort_keys=True)
        atomic_write_bytes(self.meta_path(self.paths), text.encode("utf-8"))

    def _data_key(self, owner: str) -> bytes:
        blob = self._meta["keys"].get(owner)
        if blob is None:
            msg = f"case {owner} is not in this vault (deleted, or another vault)"
            raise VaultError(msg)
        try:
            return _unwrap(self._master, blob, f"dek:{owner}")
        except InvalidTag:
            msg = f"the data key of {owner} failed authentication; restore vault.json from a backup"
            raise IntegrityError(msg) from None

    # ----- files ----------------------------------------------------------------------------
    def _path(self, owner: str, name: str) -> Path:
        folder = {INDEX: self.root / "index", RECORDS: self.root / "records"}.get(owner)
        return (folder or self.root / "cases" / owner) / _check_name(name)

    @contextlib.contextmanager
    def write_file(self, pseudonym: str, name: str) -> Iterator[BinaryIO]:
        """A writer whose content replaces ``name`` atomically when the block ends."""
        key = self._data_key(pseudonym)
        with atomic_writer(self._path(pseudonym, name)) as sink:
            writer = EncryptingWriter(sink, key, f"{pseudonym}/{name}")
            yield writer  # type: ignore[misc]
            writer.finish()

    @contextlib.contextmanager
    def read_file(self, pseudonym: str, name: str) -> Iterator[BinaryIO]:
        key = self._data_key(pseudonym)
        path = self._path(pseudonym, name)
        if not path.exists():
            msg = f"{name} is not stored in case {pseudonym}"
            raise VaultError(msg)
        with open(path, "rb") as source:
            yield DecryptingReader(source, key, f"{pseudonym}/{name}", what=name)  # type: ignore[misc]

    def write_bytes(self, pseudonym: str, name: str, data: bytes) -> None:
        with self.write_file(pseudonym, name) as out:
            out.write(data)

    def read_bytes(self, pseudonym: str, name: str) -> bytes:
        with self.read_file(pseudonym, name) as src:
            return src.read()

    def has_file(self, pseudonym: str, name: str) -> bool:
        return self._path(pseudonym, name).exists()

    def list_files(self, pseudonym: str) -> list[str]:
        self._data_key(pseudonym)
        folder = self.root / "cases" / pseudonym
        if not folder.exists():
            return []
        return sorted(
            p.relative_to(folder).as_posix()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def put_record(self, name: str, data: bytes) -> None:
        self.write_bytes(RECORDS, name, data)

    def get_record(self, name: str) -> bytes | None:
        return self.read_bytes(RECORDS, name) if self.has_file(RECORDS, name) else None

    # ----- cases ----------------------------------------------------------------------------
    def _load_index(self) -> dict[str, dict]:
        return json.loads(self.read_bytes(INDEX, "index"))

    def _save_index(self, index: dict[str, dict]) -> None:
        self.write_bytes(INDEX, "index", json.dumps(index, sort_keys=True).encode("utf-8"))

    def create_case(self, identity: dict[str, str] | None = None) -> str:
        """Create a case with its own data key; returns its pseudonym."""
        with self._lock:
            index = self._load_index()
            pseudonym = new_pseudonym(set(index))
            self._meta["keys"][pseudonym] = _wrap(
                self._master, secrets.token_bytes(32), f"dek:{pseudonym}"
            )
            self._save_meta()
            index[pseudonym] = {
                "identity": {str(k): str(v) for k, v in (identity or {}).items()},
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._save_index(index)
        return pseudonym

    def set_identity(self, pseudonym: str, identity: dict[str, str]) -> None:
        """Replace the index fields of a case (corrections, or marking the sample case)."""
        with self._lock:
            index = self._load_index()
            if pseudonym not in index:
                msg = f"no case {pseudonym} in the vault; 'medprint cases' lists them"
                raise VaultError(msg)
            index[pseudonym]["identity"] = {str(k): str(v) for k, v in identity.items()}
            self._save_index(index)

    def list_cases(self) -> list[CaseEntry]:
        index = self._load_index()
        return [
            CaseEntry(p, dict(row.get("identity", {})), row.get("created", ""))
            for p, row in sorted(index.items(), key=lambda item: item[1].get("created", ""))
        ]

    def case_entry(self, pseudonym: str) -> CaseEntry:
        for entry in self.list_cases():
            if entry.pseudonym == pseudonym:
                return entry
        msg = f"no case {pseudonym} in the vault; 'medprint cases' lists them"
        raise VaultError(msg)

    def search_cases(self, text: str) -> list[CaseEntry]:
        """Cases whose pseudonym or any identity field contains ``text`` (case-insensitive)."""
        needle = text.casefold()
        return [
            e
            for e in self.list_cases()
            if needle in e.pseudonym.casefold()
            or any(needle in str(v).casefold() for v in e.identity.values())
        ]

    def delete_case(self, pseudonym: str) -> None:
        """Destroy the case's data key (crypto-shredding), then its files."""
        with self._lock:
            self._data_key(pseudonym)
            index = self._load_index()
            index.pop(pseudonym, None)
            del self._meta["keys"][pseudonym]
            self._save_meta()
            self._save_index(index)
            shutil.rmtree(self.root / "cases" / pseudonym, ignore_errors=True)

    def status(self) -> dict:
        cases = self.list_cases()
        return {
            "vault_id": self.vault_id,
            "folder": str(self.root),
            "key_generation": self.generation,
            "cases": len(cases),
            "created": self._meta.get("created", ""),
            "keystore_service": Keystore().service,
        }

"""The case vault: every case file encrypted at rest; each member opens it with their own key.

Keys
    A 256-bit master key that exists on disk only sealed: once per enrolled member, to that
    person's wrapping key (``members`` in ``vault.json``; :func:`app.security.identity.seal`),
    and once under the recovery key, which is shown once and never stored. Every case has its
    own random data key, wrapped by the master key in ``vault.json``; the case index and the
    global records have data keys of their own. :meth:`Vault.rotate_key` makes a new master key
    AND new data keys and re-encrypts every file (streamed, staged so that a crash loses
    nothing), so the old master key, the old recovery key and a removed member's key open
    nothing current. Deleting a case destroys its data key and re-keys the index and the
    records, so old copies of those files no longer open either.

State
    ``meta_version`` rises by one with every change of ``vault.json``; an opened vault refuses a
    ``vault.json`` older than one it has seen (the anchors in each member's keystore carry the
    version across runs). The founder's key fingerprint is pinned in each member's keystore the
    first time they open the vault, so a ``vault.json`` naming another founder is refused.

Files
    ``<vault>/vault.json`` key material (sealed or wrapped only), members' public keys, the
    vault id, the founder's fingerprint, ``meta_version``; rewritten atomically under
    ``<vault>/.lock`` (changes are serialised between processes and accounts);
    ``<vault>/cases/<pseudonym>/<name>`` chunked AEAD streams (app/security/streams.py);
    ``<vault>/index/index`` the encrypted case index (patient name, ID, birth date, ...);
    ``<vault>/records/<name>`` encrypted global records (roles, UID map, ...);
    ``<vault>/requests/<user>.json`` enrolment requests (public keys only, self-signed).
Outside this folder, a case is only its pseudonym.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import fcntl
import json
import os
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

from app.atomic import atomic_write_bytes, atomic_writer, fsync_dir
from app.errors import IntegrityError, VaultError
from app.security.identity import PersonalKeys, PublicIdentity, seal
from app.security.keystore import Keystore
from app.security.streams import CHUNK_SIZE, DecryptingReader, EncryptingWriter
from app.settings import Paths, resolve_paths

VAULT_FORMAT = 2
LEGACY_FORMAT = 1  # master key in one account's keystore, unsigned roles
INDEX = "_index"
RECORDS = "_records"
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U: readable over the phone
_CHECK = b"medprint-vault-key-check"
_LOCK = ".lock"
_STAGING = ".staging-"


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


def _index_bytes(index: dict[str, dict]) -> bytes:
    return json.dumps(index, sort_keys=True).encode("utf-8")


def _master_context(vault_id: str, generation: int) -> str:
    return f"master:{vault_id}:{generation}"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` shared by every process and account using the vault."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


_LEGACY = (
    "this vault was made by an older MedPrint version: its founder (the account that ran "
    "'vault init') opens it once to migrate it (README, 'Migrating an older vault')"
)


class Vault:
    """An opened vault: the master key is held in memory only while this object lives."""

    def __init__(
        self, paths: Paths, meta: dict, master_key: bytes, keys: PersonalKeys | None = None
    ) -> None:
        self.paths = paths
        self.root = paths.vault
        self._meta = meta
        self._master = master_key
        self._keys = keys
        self._lock = threading.RLock()
        self._stamp = self._meta_stamp()

    # ----- creation and opening -------------------------------------------------------------
    @staticmethod
    def meta_path(paths: Paths) -> Path:
        return paths.vault / "vault.json"

    @staticmethod
    def requests_folder(paths: Paths) -> Path:
        """Where accounts leave their enrolment requests (public keys only)."""
        return paths.vault / "requests"

    @classmethod
    def exists(cls, paths: Paths | None = None) -> bool:
        return cls.meta_path(paths or resolve_paths()).exists()

    @classmethod
    def is_legacy(cls, paths: Paths) -> bool:
        """A vault of the old format (master key in one keystore, unsigned roles)."""
        return cls.exists(paths) and cls._read_meta(paths).get("format") == LEGACY_FORMAT

    @classmethod
    def stored_id(cls, paths: Paths) -> str:
        """The id of the vault in ``paths`` (without opening it)."""
        return str(cls._read_meta(paths).get("vault_id", ""))

    @classmethod
    def lists_member(cls, paths: Paths, identity: PublicIdentity) -> bool:
        """Whether ``vault.json`` lists ``identity`` (same account and key) as a member."""
        member = cls._read_meta(paths).get("members", {}).get(identity.user)
        return bool(member) and member["identity"].get("fingerprint") == identity.fingerprint

    @classmethod
    def init(cls, paths: Paths, keys: PersonalKeys) -> tuple[Vault, str]:
        """Create a new vault founded by ``keys``; returns it and the recovery key (shown once)."""
        paths = paths.ensure()
        if cls.exists(paths):
            msg = f"a vault already exists in {paths.vault}; use 'medprint vault status'"
            raise VaultError(msg)
        cls.refuse_deleted_meta(paths)
        master = secrets.token_bytes(32)
        meta = {
            "format": VAULT_FORMAT,
            "vault_id": secrets.token_hex(8),
            "generation": 1,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "meta_version": 0,
            "founder": keys.public.fingerprint,
            "members": {},
            "keys": {},
        }
        vault = cls(paths, meta, master, keys)
        vault._put_member(meta, keys.public)
        recovery = vault._seal(meta, master)
        for special in (INDEX, RECORDS):
            meta["keys"][special] = _wrap(master, secrets.token_bytes(32), f"dek:{special}")
        with vault._lock, _file_lock(paths.vault / _LOCK):
            vault._commit(meta)
            vault._save_index({})
        vault._pin_founder()
        return vault, recovery

    @classmethod
    def open(cls, paths: Paths, keys: PersonalKeys) -> Vault:
        """Open the vault with the master key sealed to this member's personal wrapping key."""
        meta = cls._load_meta(paths)
        vault = cls(paths, meta, cls._open_master(meta, keys), keys)
        with vault._locked():
            vault._finish_staging()
        vault._pin_founder()
        return vault

    @classmethod
    def restore_with_recovery_key(
        cls, recovery_key: str, paths: Paths, keys: PersonalKeys
    ) -> Vault:
        """Open the vault with the recovery key and seal its master key to ``keys`` (a member
        whose keystore was lost, with new personal keys). Roles are not changed."""
        meta = cls._load_meta(paths)
        kek = _recovery_kek(recovery_key, meta["vault_id"])
        try:
            master = _unwrap(
                kek, meta["recovery"], _master_context(meta["vault_id"], meta["generation"])
            )
        except InvalidTag:
            msg = "the recovery key does not match this vault (or a newer one replaced it); "
            msg += "check it and try again"
            raise VaultError(msg) from None
        cls._check_master(meta, master)
        vault = cls(paths, meta, master, keys)
        with vault._locked() as fresh:
            vault._put_member(fresh, keys.public)
            vault._commit(fresh)
        vault._pin_founder()
        return vault

    @classmethod
    def open_legacy(cls, paths: Paths) -> Vault:
        """Open an old-format vault with the master key in this account's keystore (only to
        :meth:`upgrade` it)."""
        meta = cls._load_meta(paths, legacy=True)
        if meta.get("format") != LEGACY_FORMAT:
            msg = "this vault is already in the current format; open it normally"
            raise VaultError(msg)
        entry = cls._legacy_entry(meta)
        master = Keystore().require(entry, "the old vault master key")
        cls._check_master(meta, master)
        return cls(paths, meta, master)

    def upgrade(self, keys: PersonalKeys) -> None:
        """Make this old-format vault a current one founded by ``keys``.

        The master key is sealed to the founder and deleted from the keystore; the recovery
        key stays valid (its copy under the master key is dropped). Rotate the keys afterwards
        so nothing current opens with the old master key.
        """
        with self._lock, _file_lock(self.root / _LOCK):
            meta = self._load_meta(self.paths, legacy=True)
            vault_id, generation = meta["vault_id"], int(meta["generation"])
            recovery = _unwrap(self._master, meta.pop("recovery_key"), "recovery-key").decode()
            meta.pop("master_by_recovery", None)
            kek = _recovery_kek(recovery, vault_id)
            meta["recovery"] = _wrap(kek, self._master, _master_context(vault_id, generation))
            meta |= {"format": VAULT_FORMAT, "founder": keys.public.fingerprint, "members": {}}
            meta.setdefault("meta_version", 0)
            self._keys = keys
            self._put_member(meta, keys.public)
            self._commit(meta)
        Keystore().delete(self._legacy_entry(meta))
        self._pin_founder()

    @staticmethod
    def _legacy_entry(meta: dict) -> str:
        return f"vault-master-{meta['vault_id']}-{meta['generation']}"

    @staticmethod
    def holds_data(paths: Paths) -> bool:
        """Whether the vault folder holds a vault's encrypted index, records or cases (with or
        without its ``vault.json``)."""
        return any((paths.vault / name).is_dir() for name in ("index", "records", "cases"))

    @classmethod
    def refuse_deleted_meta(cls, paths: Paths) -> None:
        """Tampering, not an empty folder: ``vault.json`` gone while the vault's data stays
        (a new vault founded over it would make its founder administrator of the folder)."""
        if not cls.exists(paths) and cls.holds_data(paths):
            msg = f"vault.json is missing (deleted) from {paths.vault}, which holds a vault's "
            msg += "cases and records; restore vault.json from a backup and tell an administrator"
            raise IntegrityError(msg)

    @classmethod
    def _read_meta(cls, paths: Paths) -> dict:
        path = cls.meta_path(paths)
        cls.refuse_deleted_meta(paths)
        if not path.exists():
            msg = f"no vault in {paths.vault}; create one with 'medprint vault init'"
            raise VaultError(msg)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = None
        if not isinstance(meta, dict):
            msg = "vault.json is unreadable; restore it from a backup"
            raise VaultError(msg)
        return meta

    @classmethod
    def _load_meta(cls, paths: Paths, *, legacy: bool = False) -> dict:
        meta = cls._read_meta(paths)
        if meta.get("format") == LEGACY_FORMAT and not legacy:
            raise VaultError(_LEGACY)
        if meta.get("format") not in (VAULT_FORMAT, LEGACY_FORMAT):
            msg = f"vault format {meta.get('format')!r} is not supported by this MedPrint version"
            raise VaultError(msg)
        return meta

    @staticmethod
    def _open_master(meta: dict, keys: PersonalKeys) -> bytes:
        member = meta.get("members", {}).get(keys.user)
        if member is None:
            msg = f"'{keys.user}' is not a member of this vault; run 'medprint whoami', then ask "
            msg += f"an administrator to enrol you ('medprint users enrol {keys.user} ROLE')"
            raise VaultError(msg)
        enrolled = PublicIdentity.from_dict(member["identity"])
        if enrolled.fingerprint != keys.public.fingerprint:
            msg = f"the personal key of '{keys.user}' is not the one enrolled in this vault "
            msg += "(a new keystore?); run 'medprint whoami' and ask an administrator to enrol "
            msg += "you again"
            raise VaultError(msg)
        master = keys.open_sealed(
            member["master"], _master_context(meta["vault_id"], meta["generation"])
        )
        Vault._check_master(meta, master)
        return master

    @staticmethod
    def _check_master(meta: dict, master: bytes) -> None:
        try:
            if _unwrap(master, meta["check"], f"check:{meta['vault_id']}") != _CHECK:
                raise InvalidTag
        except (InvalidTag, KeyError, ValueError):
            msg = "the master key does not open this vault (vault.json changed?); "
            msg += "restore vault.json from a backup or ask an administrator"
            raise VaultError(msg) from None

    def _pin_founder(self) -> None:
        """Remember the founder's fingerprint in this member's keystore; refuse another one."""
        store = self._keys.keystore if self._keys else None
        if store is None:
            return
        name = f"vault-founder-{self.vault_id}"
        pinned = store.get(name)
        if pinned is None:
            store.set(name, self.founder.encode())
        elif pinned.decode() != self.founder:
            msg = "vault.json names another founding key than the one this account first saw "
            msg += "(tampered with); restore the vault folder from a backup"
            raise VaultError(msg)

    # ----- state ----------------------------------------------------------------------------
    @property
    def vault_id(self) -> str:
        return self._meta["vault_id"]

    @property
    def generation(self) -> int:
        return int(self._meta["generation"])

    @property
    def meta_version(self) -> int:
        """How many times ``vault.json`` was changed (never goes down)."""
        return int(self._fresh_meta().get("meta_version", 0))

    @property
    def founder(self) -> str:
        """The fingerprint of the founding key every roles chain of this vault starts from."""
        return str(self._meta.get("founder", ""))

    def members(self) -> dict[str, PublicIdentity]:
        """Everyone who can open the vault, with their public keys."""
        members = self._fresh_meta().get("members", {})
        return {u: PublicIdentity.from_dict(m["identity"]) for u, m in sorted(members.items())}

    def _meta_stamp(self) -> tuple[int, int, int] | None:
        try:
            info = self.meta_path(self.paths).stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _fresh_meta(self, *, force: bool = False) -> dict:
        """``vault.json`` as it is now (another process or account may have changed it)."""
        stamp = self._meta_stamp()
        if force or stamp != self._stamp:
            self._adopt(self._load_meta(self.paths, legacy=self._keys is None), stamp)
        return self._meta

    def _adopt(self, meta: dict, stamp: tuple[int, int, int] | None) -> None:
        if meta.get("vault_id") != self.vault_id:
            msg = "vault.json now belongs to another vault; restore it from a backup"
            raise VaultError(msg)
        seen, now = int(self._meta.get("meta_version", 0)), int(meta.get("meta_version", 0))
        if now < seen:
            msg = f"vault.json was replaced by an older copy (version {now}, this session saw "
            msg += f"{seen}): a rollback; put the current vault.json back or ask an administrator"
            raise VaultError(msg)
        if meta["generation"] != self.generation:
            if self._keys is None:
                msg = "the vault's keys were rotated meanwhile; open the vault again"
                raise VaultError(msg)
            self._master = self._open_master(meta, self._keys)
        self._meta, self._stamp = meta, stamp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        """Hold the vault's lock; yields a copy of the current ``vault.json`` to change and
        :meth:`_commit`."""
        with self._lock, _file_lock(self.root / _LOCK):
            yield copy.deepcopy(self._fresh_meta(force=True))

    def _commit(self, meta: dict) -> None:
        meta["meta_version"] = int(meta.get("meta_version", 0)) + 1
        text = json.dumps(meta, indent=1, sort_keys=True)
        atomic_write_bytes(self.meta_path(self.paths), text.encode("utf-8"))
        self._meta, self._stamp = meta, self._meta_stamp()

    # ----- members and keys -----------------------------------------------------------------
    def _put_member(self, meta: dict, identity: PublicIdentity) -> None:
        context = _master_context(meta["vault_id"], meta["generation"])
        sealed = seal(identity.wrap_key, self._master, context)
        meta.setdefault("members", {})[identity.user] = {
            "identity": identity.to_dict(),
            "master": sealed,
        }

    def add_member(self, identity: PublicIdentity) -> None:
        """Seal the master key to ``identity`` so that person can open the vault."""
        with self._locked() as meta:
            self._put_member(meta, identity)
            self._commit(meta)

    def remove_member(self, user: str) -> str:
        """Take ``user``'s sealed master key out and rotate every key, so their key opens
        nothing written from now on. Returns the new recovery key (show it once)."""
        with self._locked() as meta:
            if meta["members"].pop(user, None) is None:
                msg = f"'{user}' is not a member of this vault; 'medprint users list' shows them"
                raise VaultError(msg)
            return self._rotate(meta)

    def rotate_key(self) -> str:
        """New master key, new data keys, every file re-encrypted, new recovery key (returned:
        show it once). The old master key and the old recovery key open nothing current."""
        with self._locked() as meta:
            return self._rotate(meta)

    def _seal(self, meta: dict, master: bytes) -> str:
        """Seal ``master`` for every member and under a new recovery key (returned)."""
        vault_id, generation = meta["vault_id"], int(meta["generation"])
        recovery = _format_recovery(secrets.token_bytes(20))
        context = _master_context(vault_id, generation)
        meta["check"] = _wrap(master, _CHECK, f"check:{vault_id}")
        meta["recovery"] = _wrap(_recovery_kek(recovery, vault_id), master, context)
        for member in meta.get("members", {}).values():
            wrap_key = PublicIdentity.from_dict(member["identity"]).wrap_key
            member["master"] = seal(wrap_key, master, context)
        return recovery

    def _rotate(self, meta: dict) -> str:
        master = secrets.token_bytes(32)
        meta["generation"] = int(meta["generation"]) + 1
        staging = self._new_staging(meta)
        new_keys = {}
        for owner in meta["keys"]:
            fresh = secrets.token_bytes(32)
            self._restage(owner, self._data_key(owner), fresh, staging)
            new_keys[owner] = _wrap(master, fresh, f"dek:{owner}")
        meta["keys"] = new_keys
        recovery = self._seal(meta, master)
        self._commit(meta)
        self._master = master
        self._finish_staging()
        return recovery

    def _new_staging(self, meta: dict) -> Path:
        """A folder for re-encrypted files; they move into place once ``vault.json`` names it
        (see :meth:`_finish_staging`)."""
        name = f"{_STAGING}{secrets.token_hex(6)}"
        meta["staging"] = name
        return self.root / name

    def _restage(self, owner: str, old_key: bytes, new_key: bytes, staging: Path) -> None:
        """Re-encrypt every file of ``owner`` under ``new_key`` into ``staging`` (streamed)."""
        folder = self._folder(owner)
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        for path in files:
            name = path.relative_to(folder).as_posix()
            target = staging / path.relative_to(self.root)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "rb") as source, open(target, "wb") as sink:
                reader = DecryptingReader(source, old_key, f"{owner}/{name}", what=name)
                writer = EncryptingWriter(sink, new_key, f"{owner}/{name}")
                shutil.copyfileobj(reader, writer, CHUNK_SIZE)
                writer.finish()
                sink.flush()
                os.fsync(sink.fileno())

    def _stage_bytes(self, staging: Path, owner: str, name: str, key: bytes, data: bytes) -> None:
        target = staging / self._path(owner, name).relative_to(self.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as sink:
            writer = EncryptingWriter(sink, key, f"{owner}/{name}")
            writer.write(data)
            writer.finish()
            sink.flush()
            os.fsync(sink.fileno())

    def _finish_staging(self) -> None:
        """Move the files re-encrypted for the current ``vault.json`` into place (again, after
        a crash); drop any other staging folder (a change that never took effect)."""
        current = self._meta.get("staging")
        for staging in self.root.glob(f"{_STAGING}*"):
            if staging.name == current:
                for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                    target = self.root / path.relative_to(staging)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)
                    fsync_dir(target.parent)
            shutil.rmtree(staging, ignore_errors=True)

    def _data_key(self, owner: str) -> bytes:
        blob = self._fresh_meta()["keys"].get(owner)
        if blob is None:
            msg = f"case {owner} is not in this vault (deleted, or another vault)"
            raise VaultError(msg)
        try:
            return _unwrap(self._master, blob, f"dek:{owner}")
        except InvalidTag:
            msg = f"the data key of {owner} failed authentication; restore vault.json from a backup"
            raise IntegrityError(msg) from None

    # ----- files ----------------------------------------------------------------------------
    def _folder(self, owner: str) -> Path:
        return {INDEX: self.root / "index", RECORDS: self.root / "records"}.get(
            owner, self.root / "cases" / owner
        )

    def _path(self, owner: str, name: str) -> Path:
        return self._folder(owner) / _check_name(name)

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
        self.write_bytes(INDEX, "index", _index_bytes(index))

    def create_case(self, identity: dict[str, str] | None = None) -> str:
        """Create a case with its own data key; returns its pseudonym."""
        with self._locked() as meta:
            index = self._load_index()
            pseudonym = new_pseudonym(set(index) | set(meta["keys"]))
            meta["keys"][pseudonym] = _wrap(
                self._master, secrets.token_bytes(32), f"dek:{pseudonym}"
            )
            self._commit(meta)
            index[pseudonym] = {
                "identity": {str(k): str(v) for k, v in (identity or {}).items()},
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._save_index(index)
        return pseudonym

    def set_identity(self, pseudonym: str, identity: dict[str, str]) -> None:
        """Replace the index fields of a case (corrections, or marking the sample case)."""
        with self._locked():
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
        """Shred a case: destroy its data key, re-key the index (without its row) and the
        records, so restored copies of its files, the index or the records open nothing; then
        delete its files. Clear what the records hold of the case first."""
        with self._locked() as meta:
            self._data_key(pseudonym)
            index = self._load_index()
            index.pop(pseudonym, None)
            del meta["keys"][pseudonym]
            staging = self._new_staging(meta)
            records_key, index_key = secrets.token_bytes(32), secrets.token_bytes(32)
            self._restage(RECORDS, self._data_key(RECORDS), records_key, staging)
            self._stage_bytes(staging, INDEX, "index", index_key, _index_bytes(index))
            meta["keys"][RECORDS] = _wrap(self._master, records_key, f"dek:{RECORDS}")
            meta["keys"][INDEX] = _wrap(self._master, index_key, f"dek:{INDEX}")
            self._commit(meta)
            self._finish_staging()
            shutil.rmtree(self.root / "cases" / pseudonym, ignore_errors=True)

    def status(self) -> dict:
        cases = self.list_cases()
        return {
            "vault_id": self.vault_id,
            "folder": str(self.root),
            "key_generation": self.generation,
            "cases": len(cases),
            "created": self._meta.get("created", ""),
            "members": len(self.members()),
            "meta_version": self.meta_version,
            "founder": self.founder,
            "keystore_service": Keystore().service,
        }

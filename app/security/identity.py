"""Who is acting, and the keys that prove it.

**The account** is the OS account of the process's real user ID (:func:`os_user`), never an
environment variable: ``getpass.getuser()`` reads ``$LOGNAME``/``$USER`` first, so anyone could
claim to be anyone.

**Personal keys** live in that account's own OS keystore and nowhere else:

* the signing key (Ed25519, :class:`~app.security.signing.SigningKey`): signs the person's
  decisions, the role statements an administrator issues, audit records and packages;
* the wrapping key (X25519): the vault's master key is sealed to it (:func:`seal`), one copy per
  enrolled person, so several OS accounts share one vault and each opens it with their own key.

Another account (even root, without that keystore's password) cannot use them.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from app.errors import KeystoreError
from app.security.keystore import Keystore
from app.security.signing import PublicKey, SigningKey

WRAP_KEY_NAME = "personal-wrap-key"
_SEAL_FORMAT = "medprint-seal-1"


def os_user() -> str:
    """The login name of the account running this process."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes  # noqa: PLC0415 (Windows only)

        size = ctypes.c_ulong(256)
        buffer = ctypes.create_unicode_buffer(size.value)
        ctypes.windll.advapi32.GetUserNameW(buffer, ctypes.byref(size))
        return buffer.value
    import pwd  # noqa: PLC0415 (POSIX only)

    return pwd.getpwuid(os.getuid()).pw_name


def printed_name(user: str) -> str:
    """The person's full name from the OS account (GECOS), else the login name."""
    if sys.platform == "win32":  # pragma: no cover
        return user
    import pwd  # noqa: PLC0415 (POSIX only)

    try:
        gecos = pwd.getpwnam(user).pw_gecos.split(",")[0].strip()
    except KeyError:
        return user
    return gecos or user


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _raw(key: X25519PrivateKey | X25519PublicKey) -> bytes:
    if isinstance(key, X25519PrivateKey):
        return key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class PublicIdentity:
    """What others may know of a person: account, signing and wrapping public keys."""

    user: str
    signing_key: PublicKey
    wrap_key: bytes  # raw X25519 public key

    @property
    def fingerprint(self) -> str:
        return self.signing_key.fingerprint

    def to_dict(self) -> dict:
        return {
            "user": self.user,
            "signing_key": self.signing_key.to_base64(),
            "wrap_key": _b64(self.wrap_key),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict) -> PublicIdentity:
        try:
            wrap = base64.b64decode(data["wrap_key"], validate=True)
            signing = PublicKey.from_text(data["signing_key"])
            user = str(data["user"])
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"a person's public keys are malformed ({exc.__class__.__name__})"
            raise KeystoreError(msg) from None
        if len(wrap) != 32:
            msg = "a person's wrapping key is malformed"
            raise KeystoreError(msg)
        return cls(user, signing, wrap)


class PersonalKeys:
    """This account's signing and wrapping keys, from its own OS keystore."""

    def __init__(
        self,
        user: str,
        signing: SigningKey,
        wrap: X25519PrivateKey,
        keystore: Keystore | None = None,
    ) -> None:
        self.user = user
        self.signing = signing
        self._wrap = wrap
        self.keystore = keystore  # where the keys live; None for keys made in memory

    @classmethod
    def load_or_create(cls, keystore: Keystore | None = None) -> PersonalKeys:
        """The keys of the account running this process, made on its first run."""
        keystore = keystore or Keystore()
        signing = SigningKey.load_or_create(keystore)
        secret = keystore.get(WRAP_KEY_NAME)
        if secret is None:
            wrap = X25519PrivateKey.generate()
            keystore.set(WRAP_KEY_NAME, _raw(wrap))
        else:
            wrap = X25519PrivateKey.from_private_bytes(secret)
        return cls(os_user(), signing, wrap, keystore)

    @classmethod
    def in_memory(cls, user: str) -> PersonalKeys:
        """Fresh keys for ``user`` held only by this object (tests acting as several people in
        one process); nothing is stored."""
        return cls(user, SigningKey.generate(), X25519PrivateKey.generate())

    @property
    def public(self) -> PublicIdentity:
        return PublicIdentity(self.user, self.signing.public_key, _raw(self._wrap.public_key()))

    def sign(self, data: bytes) -> bytes:
        return self.signing.sign(data)

    def open_sealed(self, blob: str, context: str) -> bytes:
        """A secret sealed to this person's wrapping key (see :func:`seal`)."""
        try:
            data = json.loads(base64.b64decode(blob))
            ephemeral = X25519PublicKey.from_public_bytes(base64.b64decode(data["ephemeral"]))
            nonce, box = base64.b64decode(data["nonce"]), base64.b64decode(data["box"])
            key = _derive(self._wrap.exchange(ephemeral), _raw(ephemeral), context)
            return AESGCM(key).decrypt(nonce, box, context.encode())
        except (InvalidTag, KeyError, TypeError, ValueError):
            msg = "a key sealed for you does not open with your personal key (not yours, or "
            msg += "changed); ask an administrator to enrol you again"
            raise KeystoreError(msg) from None


def _derive(shared: bytes, ephemeral_raw: bytes, context: str) -> bytes:
    info = f"{_SEAL_FORMAT}:{context}".encode() + ephemeral_raw
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def seal(recipient_wrap_key: bytes, secret: bytes, context: str) -> str:
    """Encrypt ``secret`` so only the holder of that wrapping key opens it (X25519 + HKDF +
    AES-256-GCM; ``context`` binds what it is, e.g. ``master:VAULT_ID:GENERATION``)."""
    ephemeral = X25519PrivateKey.generate()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_wrap_key))
    key = _derive(shared, _raw(ephemeral.public_key()), context)
    nonce = os.urandom(12)
    box = AESGCM(key).encrypt(nonce, secret, context.encode())
    data = {"ephemeral": _b64(_raw(ephemeral.public_key())), "nonce": _b64(nonce), "box": _b64(box)}
    return _b64(json.dumps(data, sort_keys=True).encode())

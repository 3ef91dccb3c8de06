"""The OS keystore, through ``keyring``: the only place MedPrint's secrets live.

Secrets are bytes, stored base64-encoded under the service name ``MedPrint`` (or
``MEDPRINT_KEYSTORE_SERVICE``, which tests set to a name of their own). A missing or
plaintext-only backend is an error that names the fix: MedPrint never falls back to storing
keys on disk in the clear.
"""

from __future__ import annotations

import base64
import os
from types import ModuleType

from app.errors import KeystoreError

DEFAULT_SERVICE = "MedPrint"
SERVICE_ENV = "MEDPRINT_KEYSTORE_SERVICE"

_INSECURE_BACKENDS = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")
_FIX = (
    "no usable OS keystore: on Linux install and unlock gnome-keyring (Secret Service); "
    "on Windows/macOS the system keystore is used"
)


def _keyring() -> ModuleType:
    """``keyring``, imported on first use: its backends take about a second to import, which
    the window's start does not wait for (the vault opens once the window is shown)."""
    import keyring  # noqa: PLC0415
    import keyring.errors  # noqa: PLC0415

    return keyring


class Keystore:
    """Named secrets in one keystore service."""

    def __init__(self, service: str | None = None) -> None:
        self.service = service or os.environ.get(SERVICE_ENV) or DEFAULT_SERVICE
        self._keyring = keyring = _keyring()
        backend = keyring.get_keyring()
        module = type(backend).__module__
        if module.startswith(_INSECURE_BACKENDS) or backend.priority <= 0:
            raise KeystoreError(_FIX)

    def get(self, name: str) -> bytes | None:
        try:
            value = self._keyring.get_password(self.service, name)
        except self._keyring.errors.KeyringError as exc:
            raise KeystoreError(f"{_FIX} ({exc.__class__.__name__})") from None
        return None if value is None else base64.b64decode(value)

    def set(self, name: str, secret: bytes) -> None:
        try:
            self._keyring.set_password(self.service, name, base64.b64encode(secret).decode("ascii"))
        except self._keyring.errors.KeyringError as exc:
            raise KeystoreError(f"{_FIX} ({exc.__class__.__name__})") from None

    def delete(self, name: str) -> None:
        try:
            self._keyring.delete_password(self.service, name)
        except self._keyring.errors.PasswordDeleteError:
            return
        except self._keyring.errors.KeyringError as exc:
            raise KeystoreError(f"{_FIX} ({exc.__class__.__name__})") from None

    def require(self, name: str, what: str) -> bytes:
        """The secret ``name``, or a clear error saying which key is missing."""
        value = self.get(name)
        if value is None:
            msg = f"{what} is not in the OS keystore (service '{self.service}'); "
            msg += "run 'medprint vault init' or restore it with the recovery key"
            raise KeystoreError(msg)
        return value

"""The UID remapping key, kept in the OS keystore."""

from __future__ import annotations

import secrets

from app.security.keystore import Keystore

UID_KEY_NAME = "deid-uid-key"


def uid_key_from_keystore(keystore: Keystore | None = None) -> bytes:
    """The UID remapping key (``deid-uid-key``) from the OS keystore; created on first use."""
    store = keystore or Keystore()
    key = store.get(UID_KEY_NAME)
    if key is None:
        key = secrets.token_bytes(32)
        store.set(UID_KEY_NAME, key)
    return key

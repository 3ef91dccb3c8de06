"""The package signing key (OS keystore), its export and fingerprint, trust store, revocation."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from app.errors import KeystoreError, PackageError
from app.security.keystore import Keystore
from app.security.signing import (
    SIGNING_KEY_NAME,
    PublicKey,
    SigningKey,
    TrustStore,
    delete_signing_key,
    format_fingerprint,
)
from app.settings import resolve_paths


@pytest.fixture
def env(data_dir, keystore_service):
    return resolve_paths()


def test_key_is_created_once_in_the_keystore_and_trusted_locally(env):
    assert SigningKey.load() is None
    key = SigningKey.load_or_create(paths=env)
    again = SigningKey.load_or_create(paths=env)
    assert again.public_key == key.public_key
    assert len(Keystore().get(SIGNING_KEY_NAME)) == 32
    # The workstation trusts its own key; no private material is on disk.
    store = TrustStore(env)
    assert [k.fingerprint for k in store.trusted()] == [key.public_key.fingerprint]
    private = Keystore().get(SIGNING_KEY_NAME)
    for path in env.root.rglob("*"):
        if path.is_file():
            assert private not in path.read_bytes()
            assert base64.b64encode(private) not in path.read_bytes()


def test_sign_and_verify_exact_bytes():
    key = SigningKey.generate()
    sig = key.sign(b"manifest bytes")
    assert len(sig) == 64
    assert key.public_key.verify(sig, b"manifest bytes")
    assert not key.public_key.verify(sig, b"manifest bytes ")
    assert not SigningKey.generate().public_key.verify(sig, b"manifest bytes")


def test_fingerprint_key_id_and_exports():
    key = SigningKey.generate().public_key
    assert key.fingerprint == hashlib.sha256(key.raw).hexdigest()
    assert key.key_id == key.fingerprint[:16]
    assert re.fullmatch(r"([0-9a-f]{4} ){15}[0-9a-f]{4}", key.display_fingerprint)
    assert format_fingerprint("abcd1234") == "abcd 1234"
    assert PublicKey.from_text(key.to_pem()) == key
    assert PublicKey.from_text(key.to_base64()) == key
    assert PublicKey.from_text("\n  " + key.to_base64() + "\n") == key


def test_key_files_and_bad_keys(tmp_path):
    key = SigningKey.generate().public_key
    path = tmp_path / "sender.pub"
    path.write_text(key.to_pem())
    assert PublicKey.load(path) == key
    assert PublicKey.load(str(path)) == key
    for bad in ("hello", base64.b64encode(b"x" * 31).decode(), "-----BEGIN PUBLIC KEY-----\nAA\n"):
        with pytest.raises(PackageError):
            PublicKey.from_text(bad)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    other = (
        X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(PackageError, match="not an Ed25519 key"):
        PublicKey.from_text(other.decode())


def test_trust_store_revocation_and_lookup(env):
    store = TrustStore(env)
    a, b = SigningKey.generate().public_key, SigningKey.generate().public_key
    store.add(a, name="bureau")
    store.add(b)
    assert {k.fingerprint for k in store.trusted()} == {a.fingerprint, b.fingerprint}
    assert store.find(a.key_id) == a
    assert store.find(format_fingerprint(b.fingerprint)) == b
    with pytest.raises(PackageError, match="key ID"):
        store.find("abcd")
    entry = store.revoke(a, "laptop stolen")
    assert store.revoke(a, "again") == entry  # idempotent
    assert store.revoked() == {a.fingerprint}
    assert store.revocations()[0].reason == "laptop stolen"
    with pytest.raises(PackageError):
        store.add(a, name="../x")
    (store.folder / "broken.pub").write_text("garbage")
    with pytest.raises(PackageError, match=r"broken\.pub"):
        store.trusted()


def test_a_damaged_stored_key_is_reported_and_can_be_replaced(env):
    Keystore().set(SIGNING_KEY_NAME, b"short")
    with pytest.raises(KeystoreError, match="damaged"):
        SigningKey.load()
    delete_signing_key()
    assert SigningKey.load() is None
    assert SigningKey.load_or_create().public_key is not None

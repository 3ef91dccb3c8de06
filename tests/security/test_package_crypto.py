"""Packages encrypted for a named recipient (X25519 + HKDF-SHA256 + chunked AES-256-GCM)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from app.errors import PackageError
from app.security.package import format as pkg
from app.security.package.build import build_package
from app.security.package.extract import decrypt_package, extract_package
from app.security.package.format import PackageMeta
from app.security.package.verify import verify_package
from app.security.signing import RecipientBook, RecipientKey, SigningKey
from app.settings import resolve_paths
from tests.security.package_content import bound

STL = b"solid secret-shape\n" + b"vertex 1 2 3\n" * 30_000


@pytest.fixture
def env(data_dir, keystore_service):
    return resolve_paths()


@pytest.fixture
def signer() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def receiver() -> RecipientKey:
    return RecipientKey.generate()


@pytest.fixture
def sealed(env, tmp_path, signer, receiver) -> Path:
    out = tmp_path / "drive"
    out.mkdir()
    book = RecipientBook(env)
    book.add("print-room", receiver.public_key)
    files, approval = bound({"model.stl": STL})
    return build_package(
        out,
        files=files | {"qa/report.json": b'{"passed": true}'},
        meta=PackageMeta(case="C-7K3M-Q9"),
        approval=approval,
        signer=signer,
        recipient=book.get("print-room"),
    ).path


def test_only_the_encrypted_file_is_written_and_nothing_in_the_clear(sealed):
    assert sealed.suffix == ".mpkg"
    assert [p.name for p in sealed.parent.iterdir()] == [sealed.name]
    raw = sealed.read_bytes()
    assert raw.startswith(pkg.ENC_MAGIC)
    assert b"secret-shape" not in raw and b"manifest" not in raw and b"C-7K3M-Q9" not in raw
    header, _ = pkg.read_encryption_header(io.BytesIO(raw))
    assert header["recipient"] == "print-room"


def test_round_trip_verifies_with_the_recipient_key(sealed, signer, receiver, tmp_path):
    report = verify_package(sealed, [signer.public_key], recipient_key=receiver)
    assert report.ok, report.message
    assert report.container == "encrypted zip" and report.case == "C-7K3M-Q9"
    out = extract_package(
        sealed, tmp_path / "received", [signer.public_key], recipient_key=receiver
    )
    assert (out / "mesh" / "model.stl").read_bytes() == STL
    plain = decrypt_package(sealed, tmp_path / "plain.zip", receiver)
    with zipfile.ZipFile(plain) as zf:
        assert zf.read("mesh/model.stl") == STL


def test_without_the_key_or_with_the_wrong_key_it_fails_clearly(sealed, signer):
    report = verify_package(sealed, [signer.public_key])
    assert report.codes == [pkg.ENCRYPTED]
    assert "print-room" in report.message
    stranger = RecipientKey.generate()
    report = verify_package(sealed, [signer.public_key], recipient_key=stranger)
    assert report.codes == [pkg.DECRYPT_FAILED]
    assert (
        "encrypted for 'print-room'" in report.message
        and "not for this recipient" in report.message
    )
    with pytest.raises(PackageError, match="not for this recipient"):
        decrypt_package(sealed, sealed.parent / "x.zip", stranger)
    assert not (sealed.parent / "x.zip").exists()


@pytest.mark.parametrize(
    "where", ["first byte of data", "last byte", "header", "truncated", "chunk swap"]
)
def test_any_change_to_the_ciphertext_is_detected(env, receiver, where):
    chunk = 1000
    plain = bytes(range(256)) * 20  # 5120 bytes: 6 chunks of 1000 (the last one short)
    sink = io.BytesIO()
    recipient = receiver.public_key
    pkg.encrypt_stream(io.BytesIO(plain), sink, recipient, chunk=chunk)
    data = bytearray(sink.getvalue())
    header, prelude = pkg.read_encryption_header(io.BytesIO(bytes(data)))
    start = len(prelude)
    if where == "first byte of data":
        data[start] ^= 1
    elif where == "last byte":
        data[-1] ^= 1
    elif where == "header":
        # Only the authenticated header changes (the recipient's display name), not the keys.
        body = prelude[12:].replace(b'"recipient": ""', b'"recipient": "x"')
        assert body != prelude[12:]
        data = bytearray(prelude[:8] + len(body).to_bytes(4, "big") + body + bytes(data[start:]))
    elif where == "truncated":
        del data[start + 2 * (chunk + 16) :]  # cut at a chunk boundary
    else:
        a, b = start, start + chunk + 16
        data[a:b], data[b : b + chunk + 16] = data[b : b + chunk + 16], data[a:b]
    with pytest.raises(PackageError, match="altered or cut short"):
        pkg.decrypt_stream(io.BytesIO(bytes(data)), io.BytesIO(), receiver)
    # The untouched stream still decrypts.
    out = io.BytesIO()
    pkg.decrypt_stream(io.BytesIO(sink.getvalue()), out, receiver)
    assert out.getvalue() == plain
    assert header["chunk_size"] == chunk


@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001, 3000])
def test_stream_round_trip_at_chunk_boundaries(receiver, size):
    plain = bytes((i * 7) % 256 for i in range(size))
    sink = io.BytesIO()
    pkg.encrypt_stream(io.BytesIO(plain), sink, receiver.public_key, chunk=1000)
    out = io.BytesIO()
    pkg.decrypt_stream(io.BytesIO(sink.getvalue()), out, receiver)
    assert out.getvalue() == plain


def test_recipient_key_lives_in_the_keystore_and_exports(env):
    first = RecipientKey.load_or_create()
    again = RecipientKey.load_or_create()
    assert first.public_key == again.public_key
    pem = first.public_key.to_pem()
    assert "BEGIN PUBLIC KEY" in pem
    book = RecipientBook(env)
    book.add("bureau", type(first.public_key).from_text(pem))
    assert book.names() == ["bureau"]
    assert book.get("bureau").raw == first.public_key.raw
    with pytest.raises(PackageError, match="no recipient named"):
        book.get("nobody")
    with pytest.raises(PackageError):
        book.add("../evil", first.public_key)
    assert json.dumps(book.names())

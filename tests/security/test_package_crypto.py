"""Packages encrypted for a named recipient (X25519 + HKDF-SHA256 + chunked AES-256-GCM)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.errors import PackageError
from app.security.package import format as pkg
from app.security.package.build import build_package
from app.security.package.extract import decrypt_package, extract_package
from app.security.package.format import PackageMeta
from app.security.package.verify import VerifyReport, verify_package
from app.security.signing import RecipientBook, RecipientKey, SigningKey
from app.settings import resolve_paths
from tests.security.package_content import bound, signed

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
        **signed(signer, approval),
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


# --------------------------------------------------------------------------- extracting


NOISE = os.urandom(1 << 20)  # stored, not deflated: larger than any read buffer


@pytest.fixture
def zipped(env, tmp_path, signer) -> Path:
    out = tmp_path / "drive"
    out.mkdir()
    files, approval = bound({"model.stl": NOISE})
    folder = build_package(
        out, files=files, meta=PackageMeta(case="C-7K3M-Q9"), **signed(signer, approval), signer=signer,
        make_zip=True,
    ).path  # fmt: skip
    return folder.parent / f"{folder.name}.zip"


def _evil_zip(path: Path) -> None:
    """A zip that writes outside the folder it is extracted into (zip slip)."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../escaped.txt", b"written outside the target folder")
        zf.writestr("mesh/model.stl", b"solid other-shape\n")


def _after_verification(monkeypatch, action) -> None:
    """Run ``action`` once, right after the package was verified and before it is extracted
    (where a second process could swap the file)."""
    real = VerifyReport.raise_if_invalid
    done = []

    def hooked(self: VerifyReport) -> None:
        real(self)
        if not done:
            done.append(True)
            action()

    monkeypatch.setattr(VerifyReport, "raise_if_invalid", hooked)


def test_extract_uses_the_verified_file_when_it_is_swapped(zipped, signer, tmp_path, monkeypatch):
    evil = tmp_path / "evil.zip"
    _evil_zip(evil)
    _after_verification(monkeypatch, lambda: os.replace(evil, zipped))
    out = extract_package(zipped, tmp_path / "work" / "received", [signer.public_key])
    assert (out / "mesh" / "model.stl").read_bytes() == NOISE
    assert not (tmp_path / "work" / "escaped.txt").exists()
    assert verify_package(out, [signer.public_key]).ok


def test_extract_refuses_a_file_rewritten_in_place(zipped, signer, tmp_path, monkeypatch):
    evil = tmp_path / "evil.zip"
    _evil_zip(evil)

    def rewrite() -> None:
        with open(zipped, "r+b") as handle:  # the same file (inode), new bytes
            handle.write(evil.read_bytes())
            handle.truncate()

    _after_verification(monkeypatch, rewrite)
    work = tmp_path / "work"
    with pytest.raises(PackageError, match="changed while it was being extracted"):
        extract_package(zipped, work / "received", [signer.public_key])
    assert not (work / "escaped.txt").exists()
    assert not work.exists() or list(work.iterdir()) == []


def test_an_altered_chunk_is_reported_not_raised(sealed, signer, receiver):
    raw = bytearray(sealed.read_bytes())
    raw[-100] ^= 1
    sealed.write_bytes(bytes(raw))
    report = verify_package(sealed, [signer.public_key], recipient_key=receiver)
    assert report.codes == [pkg.DECRYPT_FAILED]
    assert "altered or cut short" in report.message


# --------------------------------------------------------------------------- bounded memory

MIB = 1 << 20
PAYLOAD = 300 * MIB
_MEASURE = """
import base64, json, re, sys
from pathlib import Path
from app.security.package.extract import extract_package
from app.security.package.verify import verify_package
from app.security.signing import PublicKey, RecipientKey

def peak():  # VmHWM: this process's own peak RSS (ru_maxrss can carry the parent's, from fork)
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))

path, dest, trusted = sys.argv[1], sys.argv[2], PublicKey(base64.b64decode(sys.argv[3]))
key = RecipientKey.load()
base = peak()
ok = verify_package(path, [trusted], recipient_key=key).ok
verified = peak()
extract_package(path, dest, [trusted], recipient_key=key)
print(json.dumps({"ok": ok, "base": base, "verified": verified, "extracted": peak()}))
"""


@pytest.mark.slow
def test_mpkg_is_verified_and_extracted_in_bounded_memory(env, tmp_path, signer):
    """A package with a 300 MB payload: verifying and extracting its ``.mpkg`` stays within a
    small constant of memory (it used to be decrypted whole into memory, twice)."""
    receiver = RecipientKey.load_or_create()
    out = tmp_path / "drive"
    out.mkdir()
    files, approval = bound({"model.stl": os.urandom(PAYLOAD)})  # random: stored, not deflated
    folder = build_package(
        out, files=files, meta=PackageMeta(case="C-7K3M-Q9"), **signed(signer, approval), signer=signer,
        make_zip=True,
    ).path  # fmt: skip
    del files
    sealed = out / "big.mpkg"
    with open(folder.parent / f"{folder.name}.zip", "rb") as src, open(sealed, "wb") as dst:
        pkg.encrypt_stream(src, dst, receiver.public_key)
    assert sealed.stat().st_size > PAYLOAD
    run = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(sealed), str(tmp_path / "received"),
         signer.public_key.to_base64()],
        capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    peak = json.loads(run.stdout)
    assert peak["ok"]
    assert (tmp_path / "received" / "mesh" / "model.stl").stat().st_size == PAYLOAD
    for step in ("verified", "extracted"):
        grown = (peak[step] - peak["base"]) * 1024
        assert grown < 64 * MIB, f"{step}: {grown / MIB:.0f} MiB above the baseline"

"""Extracting a zip or encrypted package (verified first, then checked again on disk), and
decrypting an ``.mpkg`` into its zip."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from app.atomic import fsync_dir
from app.errors import PackageError
from app.security.package.build import fsync_tree, sync_handle
from app.security.package.format import CHUNK, ENC_MAGIC, PARTIAL_MARK, decrypt_stream
from app.security.package.verify import verify_package
from app.security.signing import PublicKey, RecipientKey


def extract_package(
    zip_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    trusted_keys: Iterable[PublicKey],
    revoked: Iterable[str] = (),
    *,
    recipient_key: RecipientKey | None = None,
) -> Path:
    """Verify a zip (or ``.mpkg``) package, then extract it into a new folder ``dest``."""
    if Path(zip_path).is_dir():
        msg = "this package is a folder already; use it where it is (nothing to extract)"
        raise PackageError(msg)
    trusted_keys = list(trusted_keys)
    report = verify_package(zip_path, trusted_keys, revoked, recipient_key=recipient_key)
    report.raise_if_invalid()
    dest = Path(dest)
    if dest.exists():
        msg = f"{dest.name} already exists; choose a new folder to extract into"
        raise PackageError(msg)
    tmp = dest.with_name(f".{dest.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    tmp.mkdir(parents=True)
    try:
        data = _container_bytes(Path(zip_path), recipient_key)
        with zipfile.ZipFile(io.BytesIO(data) if data else zip_path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                target = tmp.joinpath(*PurePosixPath(info.filename).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                    sync_handle(out)
        fsync_tree(tmp)
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The extracted copy is checked again: what is on disk is what was verified.
    verify_package(dest, trusted_keys, revoked).raise_if_invalid()
    return dest


def _container_bytes(path: Path, recipient_key: RecipientKey | None) -> bytes | None:
    with open(path, "rb") as handle:
        if handle.read(len(ENC_MAGIC)) != ENC_MAGIC:
            return None
    if recipient_key is None:
        msg = "this package is encrypted; pass the recipient key"
        raise PackageError(msg)
    out = io.BytesIO()
    with open(path, "rb") as src:
        decrypt_stream(src, out, recipient_key)
    return out.getvalue()


def decrypt_package(
    path: str | os.PathLike[str], out_zip: str | os.PathLike[str], recipient_key: RecipientKey
) -> Path:
    """Decrypt an ``.mpkg`` into a zip file (written atomically); verify it afterwards."""
    out_zip = Path(out_zip)
    tmp = out_zip.with_name(f".{out_zip.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
    try:
        with open(path, "rb") as src, open(tmp, "xb") as dst:
            decrypt_stream(src, dst, recipient_key)
            sync_handle(dst)
        os.replace(tmp, out_zip)
        fsync_dir(out_zip.parent)
    finally:
        tmp.unlink(missing_ok=True)
    return out_zip

"""Extracting a zip or encrypted package from the very bytes that were verified, and decrypting
an ``.mpkg`` into its zip.

The package file is opened once: verified through that handle, then the files its signed
manifest lists (and nothing else) are copied out of the same open view into a hidden folder,
which is verified again before it takes its final name. A file swapped or rewritten between the
two steps therefore cannot be extracted: a swap is not seen (the handle holds the verified
file), a rewrite fails the second verification and leaves nothing behind.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from app.atomic import fsync_dir
from app.errors import PackageError
from app.security.package.build import fsync_tree, sync_handle
from app.security.package.container import READ_ERRORS, Container, StreamTampered
from app.security.package.format import CHUNK, PARTIAL_MARK, RESERVED, decrypt_stream
from app.security.package.verify import open_verified, verify_package
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
    dest = Path(dest)
    if dest.exists():
        msg = f"{dest.name} already exists; choose a new folder to extract into"
        raise PackageError(msg)
    trusted_keys, revoked = list(trusted_keys), list(revoked)
    with open_verified(zip_path, trusted_keys, revoked, recipient_key=recipient_key) as found:
        report, view = found
        report.raise_if_invalid()
        assert view is not None and report.manifest is not None
        tmp = dest.with_name(f".{dest.name}{PARTIAL_MARK}{secrets.token_hex(4)}")
        tmp.mkdir(parents=True)
        try:
            _copy_listed(view, report.manifest, tmp)
            again = verify_package(tmp, trusted_keys, revoked)
            if not again.ok or again.manifest != report.manifest:
                msg = "the package changed while it was being extracted; nothing was extracted: "
                msg += "copy it again and make sure no other program writes to it"
                raise PackageError(msg)
            fsync_tree(tmp)
            os.rename(tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return dest


def _copy_listed(view: Container, manifest: dict, tmp: Path) -> None:
    """Copy the files the verified manifest lists (safe relative paths, checked) and the
    manifest and signature from ``view`` into ``tmp``; no other entry is read."""
    wanted = {item["path"] for item in manifest["files"]} | RESERVED
    entries = {e.name: e for e in view.entries() if e.kind == "file" and e.name in wanted}
    for name in sorted(wanted):
        target = tmp.joinpath(*PurePosixPath(name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with view.open(entries[name]) as src, open(target, "xb") as out:
                shutil.copyfileobj(src, out, CHUNK)
                sync_handle(out)
        except (KeyError, StreamTampered, *READ_ERRORS):
            msg = "the package changed while it was being extracted; nothing was extracted: "
            msg += "copy it again and make sure no other program writes to it"
            raise PackageError(msg) from None


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

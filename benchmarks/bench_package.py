"""Signed print packages: build (atomic write + read-back verification) and verify, vs the bare
minimum the same guarantees need, on the same files in the same run.

Input: a 96 MiB binary STL of a real-looking triangle soup plus 32 MiB of G-code (quick: 1/8).

- build folder: ours = :func:`build_package` (write, fsync every file and folder, sign, rename,
  read back from the device and verify). Anchor = copy each file hashing it (the manifest needs
  the hash), fsync, drop its cached pages, read it back and SHA-256 it. Goal: <= 1.5x.
- verify folder: ours = :func:`verify_package`. Anchor = SHA-256 of every file. Goal: <= 1.2x.
- build with zip: ours = the above plus the zip. Anchor = the folder anchor plus ``zipfile``
  (deflate level 1, as ours) of the same files, fsynced, read back (inflate + SHA-256).
  Goal: <= 1.5x.
- build encrypted for a recipient: ours = in-memory zip, verification, chunked AES-256-GCM to the
  drive, read-back hash. Anchor = ``zipfile`` in memory, inflate + hash it, ``AESGCM`` over 1 MiB
  chunks + write + fsync, read-back hash. Goal: <= 1.5x.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from benchmarks.common import Row

MIB = 1 << 20


def _inputs(scale: int, folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(7)
    triangles = (96 * MIB // scale) // 50
    record = np.zeros(triangles, dtype=[("n", "<f4", 3), ("v", "<f4", 9), ("a", "<u2")])
    record["v"] = np.round(rng.normal(0, 40, (triangles, 9)), 2)
    stl = folder / "model.stl"
    stl.write_bytes(
        b"binary STL; units mm".ljust(80) + np.uint32(triangles).tobytes() + record.tobytes()
    )
    lines = [f"G1 X{x:.3f} Y{y:.3f} E{e:.5f}\n" for x, y, e in rng.uniform(0, 200, (4096, 3))]
    block = "".join(lines).encode()
    gcode = folder / "model.gcode"
    with open(gcode, "wb") as out:
        for _ in range((32 * MIB // scale) // len(block) + 1):
            out.write(block)
    return {"mesh/model.stl": stl, "gcode/model.gcode": gcode}


def _bind(files: dict[str, Path], folder: Path) -> dict:
    """Add the mesh manifest and the G-code's provenance (as the workflow packages them);
    returns the approval naming that mesh."""
    from app.security.access import mesh_manifest_sha256
    from app.security.package.format import canonical_json

    parts = [{"name": "model", "file": "model.stl", "sha256": _sha(files["mesh/model.stl"])}]
    mesh_sha = mesh_manifest_sha256(parts)
    provenance = {"mesh_sha256": mesh_sha, "gcode_sha256": _sha(files["gcode/model.gcode"])}
    for name, record in (("manifest.json", {"version": 1, "parts": parts}),
                         ("model.json", provenance)):  # fmt: skip
        (folder / name).write_bytes(canonical_json(record))
    files["mesh/manifest.json"] = folder / "manifest.json"
    files["gcode/model.json"] = folder / "model.json"
    return {"type": "decision", "decision": "approved", "mesh_sha256": mesh_sha}


def _drop_cache(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def _anchor_folder(files: dict[str, Path], out: Path) -> None:
    for rel, src in files.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()  # a manifest needs the hash of what is written...
        with open(src, "rb") as s, open(target, "wb") as d:
            while block := s.read(MIB):
                digest.update(block)
                d.write(block)
            _drop_cache(d)
        assert _sha(target) == digest.hexdigest()  # ...and the read-back is checked against it


def _anchor_zip(files: dict[str, Path], out: Path) -> None:
    _anchor_folder(files, out / "folder")
    with open(out / "p.zip", "wb") as raw:
        with zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for rel, src in files.items():
                zf.write(src, rel)
        _drop_cache(raw)
    _inflate_and_hash(out / "p.zip")  # read back: inflate and hash every entry


def _anchor_encrypted(files: dict[str, Path], out: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for rel, src in files.items():
            zf.write(src, rel)
    _inflate_and_hash(buffer)  # the zip is checked before it is sealed
    aead, data = AESGCM(secrets.token_bytes(32)), buffer.getbuffer()
    with open(out / "p.enc", "wb") as raw:
        for i, start in enumerate(range(0, len(data), MIB)):
            raw.write(aead.encrypt(i.to_bytes(12, "big"), bytes(data[start : start + MIB]), b""))
        _drop_cache(raw)
    _sha(out / "p.enc")  # read back from the drive


def _inflate_and_hash(source) -> None:
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            digest = hashlib.sha256()
            with zf.open(info) as src:
                while block := src.read(MIB):
                    digest.update(block)


def _timed(fn, repeat: int = 2) -> float:
    best = float("inf")
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="medprint-bench-out-") as tmp:
            start = time.perf_counter()
            fn(Path(tmp))
            best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool = False) -> list[Row]:
    scale = 8 if quick else 1
    with tempfile.TemporaryDirectory(prefix="medprint-bench-") as tmp:
        os.environ["MEDPRINT_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ.setdefault("MEDPRINT_KEYSTORE_SERVICE", f"medprint-bench-{os.getpid()}")
        from app.security.package.build import build_package
        from app.security.package.format import PackageMeta
        from app.security.package.verify import verify_package
        from app.security.signing import RecipientKey, SigningKey

        src = Path(tmp) / "src"
        src.mkdir()
        files = _inputs(scale, src)
        size = sum(p.stat().st_size for p in files.values()) / MIB
        signer = SigningKey.generate()
        recipient = RecipientKey.generate().public_key
        meta = PackageMeta(case="C-BNCH-01")
        approval = _bind(files, src)

        def build(out: Path, **kw) -> Path:
            return build_package(
                out, files=files, meta=meta, approval=approval, signer=signer, **kw
            ).path

        t_build = _timed(build, repeat=4)
        a_build = _timed(lambda out: _anchor_folder(files, out), repeat=4)
        t_zip = _timed(lambda out: build(out, make_zip=True))
        a_zip = _timed(lambda out: _anchor_zip(files, out))
        t_enc = _timed(lambda out: build(out, recipient=recipient))
        a_enc = _timed(lambda out: _anchor_encrypted(files, out))
        with tempfile.TemporaryDirectory(prefix="medprint-bench-out-") as out:
            folder = build(Path(out))
            t_verify = min(
                _time(lambda: verify_package(folder, [signer.public_key])) for _ in range(3)
            )
            a_verify = min(
                _time(lambda: [_sha(p) for p in folder.rglob("*") if p.is_file()]) for _ in range(3)
            )
    label = f"{size:.0f} MiB"
    return [
        Row(f"package build, folder ({label})", t_build, "hash+write+fsync+read-back hash", a_build, goal="<= 1.5"),
        Row(f"package verify, folder ({label})", t_verify, "SHA-256 of the files", a_verify, goal="<= 1.2"),
        Row(f"package build, folder + zip ({label})", t_zip, "folder anchor + zip -1 + read-back", a_zip, goal="<= 1.5"),
        Row(f"package build, encrypted ({label})", t_enc, "zip+check+AESGCM+fsync+read-back", a_enc, goal="<= 1.5"),
    ]  # fmt: skip


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

"""Signed print packages: build, read back, verify, and every kind of tampering caught by its own
message; a package whose records do not bind its mesh is refused when built."""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from app.errors import Cancelled, PackageError
from app.progress import CancelToken, Progress
from app.security import access
from app.security.package import build as builder
from app.security.package import format as fmt
from app.security.package.build import build_package, remove_partials
from app.security.package.extract import extract_package
from app.security.package.format import PackageMeta
from app.security.package.verify import VerifyReport, verify_package
from app.security.signing import SigningKey, TrustStore
from app.settings import resolve_paths
from tests.security.package_content import signed

STL = b"solid m\n" + b"facet normal 0 0 1\n" * 2000 + b"endsolid m\n"
QA = b'{"passed": true}\n'
PARTS = [{"name": "model", "file": "model.stl", "sha256": hashlib.sha256(STL).hexdigest()}]
MESH_SHA = access.mesh_manifest_sha256(PARTS)
APPROVAL = {
    "type": "decision",
    "id": "5b7f1c2e-0000-4000-8000-000000000001",
    "case": "C-7K3M-Q9",
    "decision": "approved",
    "meaning": "approved for printing",
    "mesh_sha256": MESH_SHA,
    "qa_sha256": hashlib.sha256(QA).hexdigest(),
    "qa_passed": True,
    "override_ids": [],
    "time_utc": "2026-01-01T00:00:00Z",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(data_dir, keystore_service):
    return resolve_paths()


@pytest.fixture
def signer() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def source_files(tmp_path: Path) -> dict[str, bytes | Path]:
    gcode = tmp_path / "src" / "model.gcode"
    gcode.parent.mkdir()
    gcode.write_bytes(b"G28\n" + b"G1 X10 Y10 E0.5\n" * 50_000)
    provenance = {"mesh_sha256": MESH_SHA, "gcode_sha256": _sha(gcode.read_bytes())}
    return {
        "mesh/model.stl": STL,
        "mesh/model.3mf": b"PK\x03\x04 not really a 3mf but bytes",
        "mesh/manifest.json": fmt.canonical_json({"version": 1, "parts": PARTS}),
        "gcode/model.gcode": gcode,
        "gcode/model.json": fmt.canonical_json(provenance),
        "qa/report.json": QA,
        "qa/report.html": b"<html><body>QA passed</body></html>",
    }


def _build(out: Path, files, signer, **kw) -> Path:
    meta = PackageMeta(
        case="C-7K3M-Q9",
        printer={"name": "generic-marlin-220", "nozzle_mm": 0.4},
        slicer={"name": "builtin", "layer_height_mm": 0.2},
    )
    kw |= signed(signer, kw.pop("approval", APPROVAL), kw.pop("overrides", ()))
    return build_package(out, files=files, meta=meta, signer=signer, **kw).path


@pytest.fixture
def drive(env, tmp_path) -> Path:
    """An empty folder standing for the removable drive."""
    out = tmp_path / "drive"
    out.mkdir()
    return out


@pytest.fixture
def built(drive, source_files, signer) -> Path:
    return _build(drive, source_files, signer, make_zip=True)


def _verify(path: Path, signer: SigningKey, revoked=()) -> VerifyReport:
    return verify_package(path, [signer.public_key], revoked)


def test_build_writes_a_complete_manifest_and_verifies(built, signer, source_files):
    report = _verify(built, signer)
    assert report.ok, report.message
    manifest = json.loads((built / "manifest.json").read_bytes())
    assert manifest["format"] == fmt.FORMAT_NAME and manifest["format_version"] == 2
    assert manifest["case"] == "C-7K3M-Q9"
    assert manifest["signer_key_id"] == signer.key_id
    assert manifest["created_utc"].endswith("Z")
    assert manifest["printer"]["nozzle_mm"] == 0.4 and manifest["slicer"]["name"] == "builtin"
    assert manifest["approval"]["mesh_sha256"] == MESH_SHA == manifest["mesh"]["sha256"]
    assert [p["path"] for p in manifest["mesh"]["parts"]] == ["mesh/model.stl"]
    assert manifest["gcode"][0]["mesh_sha256"] == MESH_SHA
    assert manifest["overrides"] == []
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths)
    assert set(paths) == {*source_files, "approval.json", "roles.json"}
    stl = next(f for f in manifest["files"] if f["path"] == "mesh/model.stl")
    assert stl["size"] == len(STL)
    assert (built / "mesh" / "model.stl").read_bytes() == STL
    assert report.files_checked == len(paths)
    # The zip holds the same package and verifies on its own.
    zipped = built.parent / f"{built.name}.zip"
    zreport = _verify(zipped, signer)
    assert zreport.ok and zreport.container == "zip" and zreport.package_id == report.package_id
    # Nothing half-written is left behind.
    assert sorted(p.name for p in built.parent.iterdir()) == sorted([built.name, zipped.name])


def _override(kind: str, subject: str, **fields) -> dict:
    return {
        "type": "override",
        "id": f"0000{kind}-override",
        "kind": kind,
        "subject_sha256": subject,
        "administrator": "admin",
        **fields,
    }


def test_overrides_travel_as_records_shown_in_the_manifest(drive, source_files, signer):
    """A reviewer's comment or an override reason may name the patient: it does not travel."""
    qa_override = _override("qa-failure", MESH_SHA, reason="DOE urgent")
    approval = {
        **APPROVAL,
        "meaning": "approved with QA override",
        "qa_passed": False,
        "override_ids": [qa_override["id"]],
        "comment": "Mrs DOE's left orbit fits",
    }
    path = _build(drive, source_files, signer, approval=approval, overrides=[qa_override])
    assert _verify(path, signer).ok
    manifest = json.loads((path / "manifest.json").read_bytes())
    (shown,) = manifest["overrides"]
    assert shown["kind"] == "qa-failure" and shown["kept_in_vault"] == ["reason"]
    assert json.loads((path / fmt.override_file(shown)).read_bytes()) == shown
    assert manifest["approval"]["kept_in_vault"] == ["comment"]
    assert manifest["approval"]["signer"] == "surgeon"
    for file in path.rglob("*"):
        assert file.is_dir() or b"DOE" not in file.read_bytes()


def _without(files: dict, *names: str) -> dict:
    return {k: v for k, v in files.items() if k not in names}


REFUSED_CONTENT = {
    "no approval": ({"approval": None}, "needs the approval"),
    "a rejection": ({"approval": {**APPROVAL, "decision": "rejected"}}, "no approval"),
    "another mesh": ({"approval": {**APPROVAL, "mesh_sha256": "ab" * 32}}, "another mesh"),
    "another QA": ({"approval": {**APPROVAL, "qa_sha256": "ab" * 32}}, "QA report"),
    "self-approved alone": (
        {"approval": {**APPROVAL, "meaning": "self-approved"}},
        "no self-approval override",
    ),
    "QA failed": ({"approval": {**APPROVAL, "qa_passed": False}}, "no qa-failure override"),
    "no mesh manifest": ({"drop": ["mesh/manifest.json"]}, "no mesh manifest"),
    "a stray STL": ({"add": {"mesh/other.stl": STL}}, "not a part"),
    "no provenance": ({"drop": ["gcode/model.json"]}, "no readable provenance"),
}


@pytest.mark.parametrize("what", sorted(REFUSED_CONTENT))
def test_content_that_would_not_verify_is_refused_before_writing(drive, source_files, signer, what):
    change, text = REFUSED_CONTENT[what]
    files = _without(source_files, *change.get("drop", [])) | change.get("add", {})
    approval = change.get("approval", APPROVAL)
    with pytest.raises(PackageError, match=text):
        _build(drive, files, signer, approval=approval)
    assert list(drive.iterdir()) == []


def test_gcode_of_another_mesh_needs_its_foreign_gcode_override(drive, source_files, signer):
    gcode = source_files["gcode/model.gcode"].read_bytes()
    provenance = {"mesh_sha256": "ab" * 32, "gcode_sha256": _sha(gcode)}
    files = source_files | {"gcode/model.json": fmt.canonical_json(provenance)}
    with pytest.raises(PackageError, match="sliced from another mesh"):
        _build(drive, files, signer)
    foreign = _override("foreign-gcode", _sha(gcode), reason="sliced elsewhere")
    path = _build(drive, files, signer, overrides=[foreign])
    report = _verify(path, signer)
    assert report.ok, report.message
    assert report.manifest["gcode"][0]["foreign_gcode_override"] == foreign["id"]


def test_refuses_without_approval_unsafe_paths_and_case_clashes(env, tmp_path, signer):
    meta = PackageMeta(case="C-7K3M-Q9")
    tmp_path = tmp_path / "drive"
    tmp_path.mkdir()
    with pytest.raises(PackageError, match="approval"):
        build_package(tmp_path, files={"a.stl": b"x"}, meta=meta, approval=None, signer=signer)
    for bad in (
        "../a.stl", "/abs.stl", "manifest.json", "a\\b.stl", "a//b", "mesh/.hidden",
        "mesh/model.", "aux.stl", "mesh/CON", "mesh/modèle.stl", "a b.stl",
    ):  # fmt: skip
        with pytest.raises(PackageError, match="cannot be a package path"):
            build_package(tmp_path, files={bad: b"x"}, meta=meta, approval=APPROVAL, signer=signer)
    with pytest.raises(PackageError, match="letter case"):
        files = {"Mesh.stl": b"x", "mesh.stl": b"y"}
        build_package(tmp_path, files=files, meta=meta, approval=APPROVAL, signer=signer)
    with pytest.raises(PackageError, match="pseudonym"):
        build_package(
            tmp_path,
            files={"a": b"x"},
            meta=PackageMeta(case="DOE^JANE"),
            approval=APPROVAL,
            signer=signer,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "failure",
    [
        (errno.ENOSPC, "drive is full"),
        (errno.EFBIG, "FAT32"),
        (errno.EROFS, "write-protected"),
        (errno.EIO, "removed or failed while writing (EIO)"),
    ],
)
def test_write_failures_say_what_to_do(drive, source_files, signer, monkeypatch, failure):
    err, text = failure
    out = drive
    real = builder._write_file
    calls = []

    def failing(target, source, cancel=None):
        calls.append(target)
        if len(calls) == 3:
            raise OSError(err, os.strerror(err))
        return real(target, source, cancel)

    monkeypatch.setattr(builder, "_write_file", failing)
    with pytest.raises(PackageError, match=re.escape(text)):
        _build(out, source_files, signer)
    assert list(out.iterdir()) == []


def test_cancel_leaves_nothing(env, tmp_path, source_files, signer):
    out = tmp_path / "drive"
    out.mkdir()
    token = CancelToken()
    seen = []

    def on_progress(fraction: float, message: str) -> None:
        seen.append(message)
        if len(seen) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        _build(out, source_files, signer, progress=Progress(on_progress), cancel=token)
    assert list(out.iterdir()) == []


def test_not_enough_space_is_refused_up_front(env, tmp_path, source_files, signer, monkeypatch):
    out = tmp_path / "drive"
    out.mkdir()
    monkeypatch.setattr(builder.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10, 9, 1))
    with pytest.raises(PackageError, match="not enough free space"):
        _build(out, source_files, signer)
    assert list(out.iterdir()) == []


def test_a_bad_read_back_removes_the_package(env, tmp_path, source_files, signer, monkeypatch):
    """What the drive returns is verified; a package that reads back wrong is not left behind."""
    out = tmp_path / "drive"
    out.mkdir()
    real_write = builder._write_file

    def flaky_drive(target, source, cancel=None):
        size, digest = real_write(target, source, cancel)
        if target.name == "model.stl":  # the drive silently corrupts one block
            with open(target, "r+b") as handle:
                handle.seek(4096)
                handle.write(b"\0" * 16)
        return size, digest

    monkeypatch.setattr(builder, "_write_file", flaky_drive)
    with pytest.raises(PackageError, match="read back from the drive is wrong"):
        _build(out, source_files, signer, make_zip=True)
    assert list(out.iterdir()) == []


def test_revoked_signer_cannot_sign(env, tmp_path, source_files, signer):
    TrustStore(env).revoke(signer.public_key, "lost laptop")
    with pytest.raises(PackageError, match="revoked"):
        _build(tmp_path, source_files, signer)


# --- tampering with a folder package ---------------------------------------------------------


def _resign(folder: Path, key: SigningKey, edit=None) -> None:
    """Rewrite the manifest (optionally edited) and sign it with ``key``."""
    manifest = json.loads((folder / "manifest.json").read_bytes())
    if edit:
        edit(manifest)
    data = fmt.canonical_json(manifest)
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig").write_bytes(fmt.signature_bytes(key, data))


def _change_byte(p: Path) -> None:
    target = p / "mesh" / "model.stl"
    data = bytearray(target.read_bytes())
    data[100] ^= 0x01
    target.write_bytes(bytes(data))


def _add_file(p: Path) -> None:
    (p / "mesh" / "extra.stl").write_bytes(b"solid extra\nendsolid extra\n")


def _remove_file(p: Path) -> None:
    (p / "qa" / "report.html").unlink()


def _rename_file(p: Path) -> None:
    (p / "mesh" / "model.3mf").rename(p / "mesh" / "renamed.3mf")


def _replace_signature(p: Path) -> None:
    signed = json.loads((p / "manifest.sig").read_bytes())
    raw = bytearray(base64.b64decode(signed["signature"]))
    raw[0] ^= 0xFF
    signed["signature"] = base64.b64encode(bytes(raw)).decode()
    (p / "manifest.sig").write_bytes(json.dumps(signed).encode())


def _edit_manifest(p: Path) -> None:
    text = (p / "manifest.json").read_text().replace('"nozzle_mm": 0.4', '"nozzle_mm": 0.6')
    (p / "manifest.json").write_text(text)


def _other_key(p: Path) -> None:
    _resign(p, SigningKey.generate(), lambda m: m.update(signer_key_id="ignored"))


def _symlink(p: Path) -> None:
    target = p / "qa" / "report.json"
    outside = p.parent / "outside.json"
    outside.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(outside)


def _case_twin(p: Path) -> None:
    (p / "mesh" / "Model.stl").write_bytes(STL)


def _drop_signature(p: Path) -> None:
    (p / "manifest.sig").unlink()


FOLDER_TAMPERING = {
    "changed byte": (_change_byte, fmt.HASH_MISMATCH),
    "added file": (_add_file, fmt.UNLISTED),
    "removed file": (_remove_file, fmt.MISSING),
    "renamed file": (_rename_file, fmt.RENAMED),
    "replaced signature": (_replace_signature, fmt.BAD_SIGNATURE),
    "edited manifest": (_edit_manifest, fmt.BAD_SIGNATURE),
    "other key": (_other_key, fmt.KEY_UNTRUSTED),
    "symlink": (_symlink, fmt.SYMLINK),
    "case-folded duplicate": (_case_twin, fmt.CASEFOLD_DUPLICATE),
    "no signature": (_drop_signature, fmt.NO_SIGNATURE),
}


@pytest.mark.parametrize("case", sorted(FOLDER_TAMPERING))
def test_folder_tampering_is_rejected_with_its_own_message(built, signer, case):
    tamper, code = FOLDER_TAMPERING[case]
    tamper(built)
    report = _verify(built, signer)
    assert not report.ok
    assert report.problems[0].code == code, report.message
    with pytest.raises(PackageError, match="NOT valid"):
        report.raise_if_invalid()


@pytest.mark.parametrize("name", [".DS_Store", "Thumbs.db", "desktop.ini", "mesh/._model.stl"])
def test_unsigned_desktop_metadata_is_rejected_in_a_folder_and_a_zip(built, signer, tmp_path, name):
    """Nothing unsigned passes: a file named like a desktop's metadata may hold anything."""
    (built / name).write_bytes(b"\0\0\0\1Bud1 not signed")
    report = _verify(built, signer)
    assert report.codes == [fmt.UNLISTED], report.message
    zipped = built.parent / f"{built.name}.zip"
    bad = tmp_path / "bad.zip"
    _rewrite_zip(zipped, bad, extra=[(zipfile.ZipInfo(name), b"x")])
    assert _verify(bad, signer).codes == [fmt.UNLISTED]


def test_revoked_key_is_rejected_even_when_trusted(built, signer):
    report = _verify(built, signer, revoked=[signer.public_key.fingerprint])
    assert report.codes == [fmt.KEY_REVOKED]
    assert "REVOKED" in report.message


def test_key_is_checked_before_signature_and_signature_before_files(built, signer):
    _change_byte(built)
    _edit_manifest(built)
    assert _verify(built, signer).codes == [fmt.BAD_SIGNATURE]
    assert verify_package(built, [SigningKey.generate().public_key]).codes == [fmt.KEY_UNTRUSTED]


def test_unicode_normalisation_twins_count_as_case_folded_duplicates(built, signer, tmp_path):
    """'é' composed and decomposed are one name on macOS: a zip holding both is refused."""
    zipped = built.parent / f"{built.name}.zip"
    bad = tmp_path / "bad.zip"
    extra = [(zipfile.ZipInfo("caf\u00e9.txt"), b"a"), (zipfile.ZipInfo("cafe\u0301.txt"), b"b")]
    _rewrite_zip(zipped, bad, extra=extra)
    assert fmt.CASEFOLD_DUPLICATE in _verify(bad, signer).codes


def test_unknown_format_and_signer_mismatch(built, signer):
    _resign(built, signer, lambda m: m.update(format_version=99))
    assert _verify(built, signer).codes == [fmt.UNKNOWN_FORMAT]
    _resign(
        built, signer, lambda m: m.update(format_version=fmt.FORMAT_VERSION, signer_key_id="0" * 16)
    )
    assert _verify(built, signer).codes == [fmt.SIGNER_MISMATCH]


def _drop_approval(folder: Path, manifest: dict) -> None:
    (folder / fmt.APPROVAL_FILE).unlink()
    manifest["approval"] = None
    manifest["files"] = [f for f in manifest["files"] if f["path"] != fmt.APPROVAL_FILE]


def test_a_signed_package_without_an_approval_fails_verify(built, signer):
    """A sender whose own key is trusted (the technician who packages) still needs a decision:
    a package re-signed without its approval does not verify."""
    _resign(built, signer, lambda m: _drop_approval(built, m))
    report = _verify(built, signer)
    assert report.codes == [fmt.NO_APPROVAL], report.message
    assert "carries no approval of its mesh" in report.message


def test_a_signed_package_whose_decision_is_a_rejection_fails_verify(built, signer):
    rejection = signed(signer, {**APPROVAL, "decision": "rejected"})["approval"]
    raw = fmt.canonical_json(rejection)
    (built / fmt.APPROVAL_FILE).write_bytes(raw)

    def show(manifest: dict) -> None:
        manifest["approval"] = rejection
        for item in manifest["files"]:
            if item["path"] == fmt.APPROVAL_FILE:
                item |= {"size": len(raw), "sha256": _sha(raw)}

    _resign(built, signer, show)
    assert _verify(built, signer).codes == [fmt.NO_APPROVAL]


def test_a_signed_manifest_listing_an_unsafe_path_is_refused(built, signer):
    def edit(m):
        m["files"].append({"path": "../escape", "size": 0, "sha256": "0" * 64})

    _resign(built, signer, edit)
    assert _verify(built, signer).codes == [fmt.UNSAFE_LISTED]


# --- tampering with a zip package (checked without extracting anything) -----------------------


def _rewrite_zip(src: Path, dst: Path, extra=(), drop=(), replace=None) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = zin.read(info)
            if replace and info.filename in replace:
                data = replace[info.filename]
            zout.writestr(info, data)
        for info, data in extra:
            zout.writestr(info, data)


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _zip_cases(stl_in_zip: bytes) -> dict:
    changed = bytearray(stl_in_zip)
    changed[10] ^= 1
    return {
        "parent entry": ({"extra": [(zipfile.ZipInfo("../evil.sh"), b"rm -rf ~")]}, fmt.PARENT_REF),
        "absolute entry": ({"extra": [(zipfile.ZipInfo("/tmp/evil.sh"), b"x")]}, fmt.ABSOLUTE),
        "duplicate entry": (
            {"extra": [(zipfile.ZipInfo("mesh/model.stl"), b"evil")]},
            fmt.DUPLICATE,
        ),
        "case-folded duplicate": (
            {"extra": [(zipfile.ZipInfo("MESH/model.stl"), stl_in_zip)]},
            fmt.CASEFOLD_DUPLICATE,
        ),
        "symlink entry": (
            {"extra": [(_symlink_info("mesh/link.stl"), b"/etc/passwd")]},
            fmt.SYMLINK,
        ),
        "changed byte": ({"replace": {"mesh/model.stl": bytes(changed)}}, fmt.HASH_MISMATCH),
        "removed file": ({"drop": ["qa/report.json"]}, fmt.MISSING),
        "added file": ({"extra": [(zipfile.ZipInfo("notes.txt"), b"hi")]}, fmt.UNLISTED),
    }


@pytest.mark.parametrize(
    "case",
    [
        "parent entry",
        "absolute entry",
        "duplicate entry",
        "case-folded duplicate",
        "symlink entry",
        "changed byte",
        "removed file",
        "added file",
    ],
)
def test_zip_tampering_is_rejected_before_extraction(built, signer, tmp_path, case, monkeypatch):
    zipped = built.parent / f"{built.name}.zip"
    spec, code = _zip_cases(STL)[case]
    bad = tmp_path / "bad.zip"
    with pytest.warns(UserWarning) if case == "duplicate entry" else contextlib.nullcontext():
        _rewrite_zip(zipped, bad, **spec)
    monkeypatch.chdir(tmp_path)  # an extraction bug would write ../evil.sh next to tmp_path
    report = _verify(bad, signer)
    assert report.problems[0].code == code, report.message
    assert not (tmp_path.parent / "evil.sh").exists()
    with pytest.raises(PackageError, match="NOT valid"):
        extract_package(bad, tmp_path / "out", [signer.public_key])
    assert not (tmp_path / "out").exists()


def _set_method(zip_path: Path, name: str, method: int) -> None:
    """Patch the compression method of ``name`` in the central directory (as a foreign tool
    or a damaged copy might leave it)."""
    with zipfile.ZipFile(zip_path) as zf:
        at = zf.start_dir  # offset of the central directory
    raw = bytearray(zip_path.read_bytes())
    while raw[at : at + 4] == b"PK\x01\x02":
        name_len = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + name_len] == name.encode():
            raw[at + 10 : at + 12] = method.to_bytes(2, "little")
        extra, comment = (int.from_bytes(raw[at + i : at + i + 2], "little") for i in (30, 32))
        at += 46 + name_len + extra + comment
    zip_path.write_bytes(bytes(raw))


@pytest.mark.parametrize(("name", "code"), [("mesh/model.stl", fmt.CORRUPT_ENTRY),
                                            ("manifest.json", fmt.BAD_MANIFEST),
                                            ("manifest.sig", fmt.BAD_SIGNATURE_FILE)])  # fmt: skip
def test_unreadable_zip_entries_are_reported_not_raised(built, signer, tmp_path, name, code):
    zipped = tmp_path / "odd.zip"
    shutil.copy(built.parent / f"{built.name}.zip", zipped)
    _set_method(zipped, name, 99)  # a compression method nobody supports
    report = _verify(zipped, signer)
    assert report.codes == [code], report.message


def test_every_tampering_has_a_distinct_message(built, signer, tmp_path):
    """Different kinds of failure never share a message, so a user can tell them apart."""
    codes_to_messages: dict[str, set[str]] = {}
    zipped = built.parent / f"{built.name}.zip"
    for i, case in enumerate(_zip_cases(STL)):
        spec, _ = _zip_cases(STL)[case]
        bad = tmp_path / f"bad{i}.zip"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate on purpose
            _rewrite_zip(zipped, bad, **spec)
        problem = _verify(bad, signer).problems[0]
        codes_to_messages.setdefault(problem.code, set()).add(_shape(problem.message))
    for name, (tamper, _) in FOLDER_TAMPERING.items():
        copy = tmp_path / f"copy-{name.replace(' ', '-')}"
        shutil.copytree(built, copy, symlinks=True)
        tamper(copy)
        problem = _verify(copy, signer).problems[0]
        codes_to_messages.setdefault(problem.code, set()).add(_shape(problem.message))
    shapes = [next(iter(v)) for v in codes_to_messages.values()]
    assert len(codes_to_messages) == 12
    assert len(set(shapes)) == len(shapes)


def _shape(message: str) -> str:
    """A message with its quoted names removed: what stays is the kind of failure."""
    return re.sub(r"'[^']*'", "''", message)


def test_extract_verifies_then_writes_the_same_package(built, signer, tmp_path):
    zipped = built.parent / f"{built.name}.zip"
    out = extract_package(zipped, tmp_path / "received", [signer.public_key])
    assert (out / "mesh" / "model.stl").read_bytes() == STL
    assert _verify(out, signer).ok
    with pytest.raises(PackageError, match="already exists"):
        extract_package(zipped, out, [signer.public_key])
    with pytest.raises(PackageError, match="folder already"):
        extract_package(built, tmp_path / "again", [signer.public_key])


def test_a_very_deep_folder_is_reported_not_a_crash(built, signer):
    levels = [built / "x"]
    for _ in range(1100):  # deeper than Python's recursion limit
        levels.append(levels[-1] / "d")
    for level in levels:
        level.mkdir()
    try:
        report = _verify(built, signer)
        assert report.problems[0].code == fmt.UNLISTED and report.problems[0].path == "x/"
    finally:
        for level in reversed(levels):  # shutil.rmtree would recurse as deep
            level.rmdir()


def test_not_a_package(env, tmp_path, signer):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(100))
    assert _verify(junk, signer).codes == [fmt.NOT_A_PACKAGE]
    assert _verify(tmp_path / "absent", signer).codes == [fmt.NOT_A_PACKAGE]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _verify(empty, signer).codes == [fmt.NO_SIGNATURE]


def test_remove_partials_cleans_leftovers_only(env, tmp_path):
    tmp_path = tmp_path / "drive"
    tmp_path.mkdir()
    (tmp_path / ".C-1_abcd.partial-1234").mkdir()
    (tmp_path / ".C-1_abcd.zip.partial-99").write_bytes(b"x")
    (tmp_path / "keep").mkdir()
    assert sorted(remove_partials(tmp_path)) == [
        ".C-1_abcd.partial-1234",
        ".C-1_abcd.zip.partial-99",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]

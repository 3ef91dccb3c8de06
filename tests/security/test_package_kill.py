"""A package write killed (SIGKILL) at any moment never leaves anything that verifies, except the
complete package itself; :func:`remove_partials` cleans up the rest.

A child process builds a package and prints every progress message; the parent kills it after
the N-th message (plus whatever the child managed in between, so the exact point varies). N runs
over the early files, the middle, the zip, the commit of the signature and the read-back.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from app.security.package.build import remove_partials
from app.security.package.verify import verify_package
from app.security.signing import PublicKey

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys
from pathlib import Path
from app.progress import Progress
from app.security.package.build import build_package
from app.security.package.format import PackageMeta
from app.security.signing import SigningKey
from tests.security.package_content import bound, signed

out, mode = Path(sys.argv[1]), sys.argv[2]
signer = SigningKey.generate()
print("KEY", signer.public_key.to_base64(), flush=True)
parts = {f"part{i:03d}.stl": bytes([i % 251]) * (40_000 + i) for i in range(120)}
files, approval = bound({"model.stl": b"solid x\n" * 50_000, **parts}, case="C-KILL-01")

def on_progress(fraction, message):
    print("P", f"{fraction:.4f}", message, flush=True)

build_package(
    out,
    files=files,
    meta=PackageMeta(case="C-KILL-01"),
    **signed(signer, approval),
    signer=signer,
    make_zip=mode == "zip",
    recipient=None,
    progress=Progress(on_progress),
)
print("DONE", flush=True)
"""


def _run_and_kill(out: Path, mode: str, kill_after: int) -> tuple[PublicKey, bool]:
    """Run the child; SIGKILL it after ``kill_after`` progress lines. Returns (key, finished)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(out), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=REPO,
        text=True,
    )
    assert child.stdout is not None
    key = None
    seen = 0
    finished = False
    for line in child.stdout:
        if line.startswith("KEY"):
            key = PublicKey(base64.b64decode(line.split()[1]))
        elif line.startswith("P"):
            seen += 1
            if seen >= kill_after:
                child.send_signal(signal.SIGKILL)
                break
        elif line.startswith("DONE"):
            finished = True
    child.wait(timeout=60)
    child.stdout.close()
    assert key is not None
    return key, finished


def _check_nothing_half_written_verifies(out: Path, key: PublicKey) -> int:
    """Every entry either fails verification or is a complete package; returns how many verify."""
    verified = 0
    for entry in sorted(out.iterdir()):
        report = verify_package(entry, [key])
        if report.ok:
            assert not entry.name.startswith("."), f"hidden partial {entry.name} verifies"
            files = report.manifest["files"]
            assert len(files) == 124  # 120 parts, the model, its manifest, approval, roles
            verified += 1
    return verified


@pytest.fixture
def env(data_dir, keystore_service):
    return data_dir


def test_counting_the_progress_messages_of_a_full_run(env, tmp_path):
    """The reference run: how many progress lines a complete write prints (for the kill points)."""
    out = tmp_path / "drive"
    out.mkdir()
    key, finished = _run_and_kill(out, "zip", kill_after=10**9)
    assert finished
    assert _check_nothing_half_written_verifies(out, key) == 2  # folder and zip
    assert remove_partials(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["folder", "zip"])
def test_killed_write_never_leaves_a_package_that_verifies(env, tmp_path, mode):
    # A full run prints 125 lines in folder mode and 249 with the zip; kill across all of it,
    # including points close to the end (signature commit and read-back).
    rng = random.Random(20261122 + len(mode))
    total = 125 if mode == "folder" else 249
    points = sorted({1, 5, total // 2, total - 6, total - 3, total - 1, total, total + 1})
    points += [rng.randrange(1, total + 4) for _ in range(3)]
    outcomes = []
    for i, kill_after in enumerate(points):
        out = tmp_path / f"drive-{i}"
        out.mkdir()
        key, finished = _run_and_kill(out, mode, kill_after)
        verified = _check_nothing_half_written_verifies(out, key)
        if not finished and verified:
            # Killed after the commit point: the package is complete and that is all there is.
            assert all(not e.name.startswith(".") for e in out.iterdir())
        removed = remove_partials(out)
        leftover = sorted(e.name for e in out.iterdir())
        assert len(leftover) == verified, leftover
        outcomes.append((kill_after, finished, verified, removed))
    # The kill points really hit different stages: half-written output that did not verify
    # (and was cleaned up), and complete packages.
    assert any(removed for *_, removed in outcomes), outcomes
    assert any(verified for _, _, verified, _ in outcomes), outcomes

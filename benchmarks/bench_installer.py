"""The frozen app (installer/medprint.spec): build time, folder size, start-up and a scan.

Each figure against an anchor from the same run:
- build time vs copying the built folder (``shutil.copytree``): the cost of the analysis;
- folder size vs the installed size of the virtual environment it was built from;
- ``medprint --version`` and ``medprint scan`` of the bundled sample, frozen vs the installed
  ``.venv/bin/medprint``. Goal: the frozen app starts no slower than the installed one.

The build is the cached one of tests/installer when it is current (``--quick`` also accepts a
stale one); otherwise it is built here, which takes minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, Row

sys.path.insert(0, str(REPO / "installer"))
import buildlib

MIB = 1 << 20


def _best_wall(argv: list[str], env: dict[str, str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True, timeout=600)
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool) -> list[Row]:
    latest = buildlib.latest_build() if quick else None
    if latest is not None:
        return _measure(*latest, quick)
    with buildlib.frozen_build() as (app, info):
        return _measure(app, info, quick)


def _measure(app: Path, info: dict, quick: bool) -> list[Row]:
    note = "built in this run" if info["rebuilt"] else "the cached build's time"
    note += "; clean" if info.get("clean_build") else "; reusing PyInstaller's work cache"
    rows = []

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        shutil.copytree(app, Path(tmp) / "copy", symlinks=True)
        copy_seconds = time.perf_counter() - start
    rows.append(
        Row(
            "frozen build (one folder)",
            info["build_seconds"],
            "copying the built folder",
            copy_seconds,
            goal="< 10 min",
            note=f"{note}; 2 shared cores, under load",
        )
    )
    venv_size = buildlib.folder_size(Path(sys.prefix))
    rows.append(
        Row(
            "frozen folder size",
            info["size_bytes"] / MIB,
            "the .venv it was built from",
            venv_size / MIB,
            unit="M",
            goal="< 1000 MiB",
        )
    )

    repeat = 3 if quick else 5
    installed = str(Path(sys.prefix) / "bin" / "medprint")
    sample = app / "_internal" / "resources" / "sample" / "ct-abdomen"
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "MEDPRINT_DATA_DIR": data}
        frozen_env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        frozen_env["PATH"] = "/usr/bin:/bin"
        for label, args in (
            ("--version", ["--version"]),
            (
                f"scan of the sample ({len(list(sample.glob('*.dcm')))} files)",
                ["scan", str(sample), "--json"],
            ),
        ):
            ours = _best_wall([str(app / "medprint"), *args], frozen_env, repeat)
            anchor = _best_wall([installed, *args], env, repeat)
            rows.append(
                Row(
                    f"frozen medprint {label}",
                    ours,
                    "installed .venv/bin/medprint",
                    anchor,
                    goal="ratio <= 1.2",
                    note=f"best of {repeat}",
                )
            )
    return rows

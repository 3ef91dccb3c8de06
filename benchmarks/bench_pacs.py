"""PACS retrieve: ``medprint pacs retrieve`` (C-GET into the vault: received in memory,
scanned, loaded, stored encrypted) vs DCMTK ``getscu`` into a folder, whole commands, same run,
against a real Orthanc holding the 536-slice resampled TCIA CT (134 slices with --quick)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row
from benchmarks.inputs import dicom_series
from tests.pacs.orthanc import OUR_AET, PACS_AET, Orthanc

REPO = Path(__file__).resolve().parents[1]


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True, cwd=REPO)
    return time.perf_counter() - started


def run(quick: bool = False) -> list[Row]:
    slices = 134 if quick else 536
    series = dicom_series(slices)
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        server = Orthanc(root / "orthanc").start()
        try:
            return [_measure(server, series, root, slices)]
        finally:
            server.stop()


def _measure(server: Orthanc, series: Path, root: Path, slices: int) -> Row:
    server.upload(sorted(series.glob("*.dcm")))
    [study] = server.get("/studies")  # type: ignore[misc]
    study_uid = server.get(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"]  # type: ignore[index]
    env = os.environ | {"MEDPRINT_DATA_DIR": str(root / "data")}
    medprint = [sys.executable, "-m", "app"]
    subprocess.run([*medprint, "vault", "init"], check=True, env=env, capture_output=True)
    add = ["pacs", "add", "bench", "--aet", PACS_AET, "--host", "127.0.0.1"]
    add += ["--port", str(server.dicom_port), "--our-aet", OUR_AET]
    subprocess.run([*medprint, *add], check=True, env=env, capture_output=True)
    ours, anchor = [], []
    for n in range(2):
        target = root / f"getscu-{n}"
        target.mkdir()
        anchor.append(_timed(_getscu(server, study_uid, target), env))
        shutil.rmtree(target)
        cmd = [*medprint, "pacs", "retrieve", "bench", "--study", study_uid, "--json"]
        ours.append(_timed(cmd, env))
    return Row(
        f"PACS retrieve {slices} slices into the vault",
        min(ours),
        "DCMTK getscu into a folder",
        min(anchor),
        goal="<= 1.2x",
        note=json.dumps({"slices": slices}),
    )


def _getscu(server: Orthanc, study_uid: str, target: Path) -> list[str]:
    return [
        "getscu", "-aet", OUR_AET, "-aec", PACS_AET, "-S", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={study_uid}", "-od", str(target),
        "127.0.0.1", str(server.dicom_port),
    ]  # fmt: skip

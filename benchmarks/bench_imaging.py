"""Imaging: series load vs SimpleITK, header scan vs a bare pydicom loop, peak memory vs volume.

* ``load``: ``load_series(folder)`` (scan + sort + decode + rescale) on the 134-slice TCIA CT
  from a warm page cache, against SimpleITK's ``GetGDCMSeriesFileNames`` + ``ImageSeriesReader``
  on the same folder. Goal <= 1.0x.
* ``scan``: files per second of ``scan()`` over the whole shared dicom tree, against a bare
  ``pydicom.dcmread(stop_before_pixels=True)`` loop over the same files (ratio is ours/anchor in
  files per second: higher is better; the anchor does no grouping, no validation, no zip or
  DICOMDIR handling).
* ``memory``: peak RSS above the post-import baseline while loading the TCIA CT in a fresh
  interpreter, against the size of the volume it returns. Goal <= 1.5x.
"""

from __future__ import annotations

import contextlib
import os
import time

from benchmarks.common import SHARED_DATA, Row, best_of, peak_rss_mib_of

CT = SHARED_DATA / "dicom" / "ct-abdomen-tcia-pancreas-134"
TREE = SHARED_DATA / "dicom"


def _sitk_load(folder: str) -> object:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return reader.Execute()


def _load_rows(repeat: int) -> list[Row]:
    from app.imaging.load import load_series

    folder = str(CT)
    load_series(folder)  # warm the page cache and the imports
    _sitk_load(folder)
    ours = best_of(lambda: load_series(folder), repeat)
    anchor = best_of(lambda: _sitk_load(folder), repeat)
    return [
        Row(
            "load 134-slice CT (warm cache)",
            ours,
            "SimpleITK ImageSeriesReader",
            anchor,
            goal="<= 1.0x",
            note=f"best of {repeat}",
        )
    ]


def _all_files(root) -> list[str]:
    files = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        files.extend(os.path.join(folder, n) for n in sorted(names))
    return files


def _bare_scan(files: list[str]) -> None:
    import pydicom

    for path in files:
        with contextlib.suppress(Exception):  # the anchor skips what it cannot read
            pydicom.dcmread(path, stop_before_pixels=True)


def _scan_rows(repeat: int) -> list[Row]:
    import warnings

    from app.imaging.scan import scan

    files = _all_files(TREE)
    scan(TREE)  # warm
    ours = best_of(lambda: scan(TREE), repeat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anchor = best_of(lambda: _bare_scan(files), repeat)
    count = len(files)
    return [
        Row(
            f"header scan, shared dicom tree ({count} files)",
            count / ours,
            "bare pydicom dcmread(stop_before_pixels)",
            count / anchor,
            unit="",
            goal="higher",
            note="files/s; ratio >1 = faster than the anchor",
        )
    ]


_MEMORY_CODE = """
from app.imaging.load import load_series
import numpy, SimpleITK, scipy.ndimage, pydicom, pydicom.pixels
_baseline()
volume = load_series({folder!r})
print('VOLUME', volume.array.nbytes)
"""


def _memory_rows() -> list[Row]:
    import subprocess
    import sys

    from benchmarks.common import REPO

    code = _MEMORY_CODE.format(folder=str(CT))
    baseline, peak = peak_rss_mib_of(code)
    wrapper = code.replace("_baseline()", "")
    out = subprocess.run(
        [sys.executable, "-c", wrapper], check=True, capture_output=True, text=True, cwd=REPO
    ).stdout
    volume_mib = int(
        next(line.split()[1] for line in out.splitlines() if line.startswith("VOLUME"))
    )
    volume_mib /= 1 << 20
    return [
        Row(
            "peak memory loading the 134-slice CT",
            peak - baseline,
            "size of the loaded volume",
            volume_mib,
            unit="M",
            goal="<= 1.5x",
            note="MiB above the post-import baseline, fresh process",
        )
    ]


def run(quick: bool) -> list[Row]:
    if not CT.is_dir():
        return []
    start = time.perf_counter()
    # Memory first: a child's ru_maxrss starts from the parent's RSS at fork (Linux keeps it
    # across exec), so it must be measured while this process is still small.
    memory = _memory_rows()
    rows = _load_rows(2 if quick else 5)
    rows += _scan_rows(1 if quick else 3)
    rows += memory
    rows[0].note += f"; whole benchmark {time.perf_counter() - start:.0f} s, shared machine"
    return rows

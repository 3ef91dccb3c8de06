"""Peak memory of the whole ``medprint mesh`` command on a thin-slice CT (issue 15).

The shared TCIA CT (512×512×134, 3 mm) resampled to 536 slices (0.75 mm, 268 MiB as int16)
is meshed in a child process with the default settings and every QA check; its peak
resident memory, with its decimation child's (``ru_maxrss`` from ``wait4`` through
:mod:`tests.peak`: address-space limits trip on VTK's and BLAS's reservations), must stay
under 1.5 GiB. The code before the issue peaked at 5.9 GB already on the original 134 slices
(its self-intersection search alone) and at 6.0 GB on the 536 when stopped, unfinished, after
6.5 minutes; at the start of session 4 it peaked at 1.84 GiB (fast-simplification's arrays
held to the end); the command now peaks near 1.1 GiB.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.peak import run_with_peak

REPO = Path(__file__).resolve().parents[2]
TCIA = REPO.parent / "shared" / "data" / "dicom" / "ct-abdomen-tcia-pancreas-134"
LIMIT_MIB = 1536

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TCIA.is_dir(), reason="the shared TCIA CT is not on this machine"),
]


def _thin_slice_ct(path: Path, slices: int = 536) -> Path:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(TCIA)))
    image = reader.Execute()
    size, spacing = list(image.GetSize()), list(image.GetSpacing())
    spacing[2] *= (size[2] - 1) / (slices - 1)
    size[2] = slices
    thin = sitk.Resample(
        image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), spacing,
        image.GetDirection(), -1024, sitk.sitkInt16,
    )  # fmt: skip
    sitk.WriteImage(thin, str(path))
    return path


def test_mesh_of_a_536_slice_ct_stays_under_1_5_gib(tmp_path: Path) -> None:
    image = _thin_slice_ct(tmp_path / "ct-536.nrrd")
    out = tmp_path / "bone.stl"
    code, peak, text = run_with_peak([
        sys.executable, "-m", "app", "mesh", "--volume", str(image), "--threshold", "226",
        "--out", str(out), "--json",
    ], cwd=REPO)  # fmt: skip
    assert code in (0, 1), text[-2000:]  # 1: built, the QA report fails a check (thin walls)
    assert out.stat().st_size > 84 + 50 * 100_000  # a binary STL of >100k triangles
    assert peak < LIMIT_MIB, f"peak RSS {peak:.0f} MiB"

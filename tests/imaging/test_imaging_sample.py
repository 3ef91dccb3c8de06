"""The bundled sample CT (resources/sample, made by scripts/make_sample.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from scipy import ndimage

from app.imaging.load import load_series
from app.imaging.scan import scan

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "resources" / "sample" / "ct-abdomen"


def test_sample_is_small_rle_and_pseudonymous() -> None:
    files = sorted(SAMPLE.glob("*.dcm"))
    assert len(files) == 67
    assert sum(f.stat().st_size for f in files) < 8e6
    assert (REPO / "resources" / "sample" / "ATTRIBUTION.md").read_text().count("CC BY 4.0") >= 1
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert str(ds.PatientName) == ds.PatientID == "MedPrint Sample"
    assert "Pancreas-CT-CB_001" not in str(ds.PatientName)
    assert not any(elem.tag.is_private for elem in ds)
    result = scan(SAMPLE)
    assert len(result.series) == 1 and result.rejected == []


def test_sample_loads_as_a_correct_ct_with_visible_bone() -> None:
    volume = load_series(SAMPLE)
    assert volume.shape == (67, 256, 256)
    assert volume.array.dtype == np.int16
    assert volume.spacing == (2.1484375, 2.1484375, 6.0)
    assert volume.warnings == []
    assert volume.array.min() == -1000
    bone = volume.array > 200
    assert 0.005 < bone.mean() < 0.05
    # the spine: a bony column present on (nearly) every slice near the midline, posteriorly
    labels, count = ndimage.label(bone)
    sizes = ndimage.sum(bone, labels, range(1, count + 1))
    biggest = labels == (1 + int(np.argmax(sizes)))
    assert biggest.any(axis=(1, 2)).mean() > 0.9


def test_sample_geometry_matches_the_full_resolution_source(dicom_dir: Path) -> None:
    sample = load_series(SAMPLE)
    full = load_series(dicom_dir / "ct-abdomen-tcia-pancreas-134")
    grid = np.array(
        [[i, j, k] for i in range(8, 256, 24) for j in range(8, 256, 24) for k in range(0, 67, 6)]
    )
    index = full.lps_to_index(sample.index_to_lps(grid))
    expected = ndimage.map_coordinates(full.array.astype(np.float32), index[:, ::-1].T, order=1)
    got = sample.array[grid[:, 2], grid[:, 1], grid[:, 0]]
    assert np.corrcoef(expected, got)[0, 1] > 0.999
    assert np.median(np.abs(expected - got)) < 5

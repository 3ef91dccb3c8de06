"""NIfTI / NRRD: the LPS geometry of an oblique volume survives a round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from app.errors import DicomError
from app.imaging.load import load_image_file, load_series, write_image_file
from app.imaging.volume import Volume


@pytest.fixture(scope="module")
def oblique(dicom_dir: Path) -> Volume:
    return load_series(dicom_dir / "mr-brain-t1-sagittal-philips-170")


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii"])
def test_round_trip_keeps_values_and_lps_geometry(
    oblique: Volume, tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"brain{suffix}"
    write_image_file(oblique, path)
    back = load_image_file(path)
    assert back.array.dtype == oblique.array.dtype
    assert np.array_equal(back.array, oblique.array)
    assert back.same_grid(oblique, tol=1e-4)
    corner = np.array([[255, 255, 169]])
    assert np.allclose(back.index_to_lps(corner), oblique.index_to_lps(corner), atol=1e-3)
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind
    assert back.modality == ("MR" if suffix == ".nrrd" else "OT")


def test_nifti_header_holds_ras_so_other_tools_agree(oblique: Volume, tmp_path: Path) -> None:
    path = tmp_path / "brain.nii.gz"
    write_image_file(oblique, path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    srow_x = [float(v) for v in reader.GetMetaData("srow_x").split()]
    # NIfTI is RAS: its x row is minus the LPS x row of the affine
    assert np.allclose(srow_x, -oblique.affine[0], atol=1e-3)


def test_unsupported_and_unreadable_files_raise_dicom_error(
    oblique: Volume, tmp_path: Path
) -> None:
    with pytest.raises(DicomError):
        write_image_file(oblique, tmp_path / "brain.stl")
    bad = tmp_path / "bad.nrrd"
    bad.write_bytes(b"NRRD0004\nnot really\n")
    with pytest.raises(DicomError):
        load_image_file(bad)
    with pytest.raises(DicomError):
        load_image_file(tmp_path / "brain.png")


def test_a_volume_header_declaring_absurd_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.nrrd"
    path.write_bytes(
        b"NRRD0004\ntype: short\ndimension: 3\nsizes: 65535 65535 65535\n"
        b"space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n"
        b"space origin: (0,0,0)\nencoding: raw\nendian: little\n\n" + b"\0" * 64
    )
    with pytest.raises(DicomError, match="declares 65535×65535×65535"):
        load_image_file(path)


def test_float64_research_volumes_come_in_as_float32(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.linspace(0, 1, 24, dtype=np.float64).reshape(2, 3, 4))
    image.SetSpacing((0.5, 0.6, 0.7))
    path = tmp_path / "f64.nii.gz"
    sitk.WriteImage(image, str(path))
    volume = load_image_file(path)
    assert volume.array.dtype == np.float32
    assert volume.spacing == pytest.approx((0.5, 0.6, 0.7))

"""Geometry of loaded series: SimpleITK agreement, de-shearing, uneven spacing, gaps, sorting."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from app.errors import DicomError
from app.imaging.load import load_series, plan_geometry
from app.imaging.scan import scan
from app.imaging.volume import Volume

UNIFORM = ["ct-abdomen-tcia-pancreas-134", "mr-brain-t1-sagittal-philips-170"]


def _sitk_volume(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.mark.parametrize("name", UNIFORM)
def test_uniform_series_match_simpleitk_within_a_micrometre(dicom_dir: Path, name: str) -> None:
    volume = load_series(dicom_dir / name)
    image = _sitk_volume(dicom_dir / name)
    assert volume.size_ijk == image.GetSize()
    assert np.allclose(volume.origin, image.GetOrigin(), atol=1e-3)
    assert np.allclose(volume.spacing, image.GetSpacing(), atol=1e-3)
    assert np.allclose(volume.direction, np.reshape(image.GetDirection(), (3, 3)), atol=1e-6)
    assert volume.warnings == []
    reference = sitk.GetArrayViewFromImage(image)
    tolerance = 0 if volume.array.dtype.kind in "iu" else 1e-3
    assert np.abs(volume.array.astype(np.float64) - reference).max() <= tolerance


def _physical_error(volume: Volume, folder: Path, stride: int = 8) -> np.ndarray:
    """|volume − original pixel| sampled at every original pixel's true LPS position."""
    errors = []
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(
            ds.RescaleIntercept
        )
        ipp = np.array(ds.ImagePositionPatient, dtype=float)
        iop = np.array(ds.ImageOrientationPatient, dtype=float)
        dv, du = (float(v) for v in ds.PixelSpacing)
        j, i = np.mgrid[0 : pixels.shape[0] : stride, 0 : pixels.shape[1] : stride]
        lps = ipp + i[..., None] * du * iop[:3] + j[..., None] * dv * iop[3:]
        index = volume.lps_to_index(lps.reshape(-1, 3))
        inside = (index >= 0).all(axis=1) & (index < np.array(volume.size_ijk) - 1).all(axis=1)
        values = ndimage.map_coordinates(volume.array.astype(np.float32), index[:, ::-1].T, order=1)
        source = pixels[::stride, ::stride].reshape(-1)
        keep = inside & (source > -500)  # inside the head, not the padding
        errors.append(np.abs(values[keep] - source[keep]))
    return np.concatenate(errors)


def test_tilted_ge_head_ct_is_desheared_onto_an_orthogonal_uniform_grid(dicom_dir: Path) -> None:
    folder = dicom_dir / "ct-head-ge-gantry-tilt-28"
    volume = load_series(folder)
    direction = volume.direction
    assert np.allclose(direction.T @ direction, np.eye(3), atol=1e-6)
    assert volume.array.dtype == np.int16
    assert any("gantry tilt of 18.5°" in w for w in volume.warnings)
    spacing_warning = next(w for w in volume.warnings if "irregular" in w)
    assert "1.08 mm" in spacing_warning and "7.00 mm" in spacing_warning
    assert "uniform 4.002 mm" in spacing_warning
    assert volume.spacing[2] == pytest.approx(4.0025, abs=1e-3)
    # Anatomy is where the scanner put it: sampling the volume at each original pixel's true
    # position gives back that pixel; a reader that ignores the shear (ITK's series reader)
    # puts the skull tens of millimetres off.
    ours = _physical_error(volume, folder)
    naive = _physical_error(Volume.from_sitk(_sitk_volume(folder)), folder)
    assert len(ours) > 30000
    assert np.median(ours) < 5.0  # HU
    assert ours.mean() < 0.1 * naive.mean()


def _copy_slices(source: Path, target: Path, numbers: list[int]) -> list[Path]:
    target.mkdir()
    paths = []
    for n in numbers:
        paths.append(Path(shutil.copy(source / f"1-{n:03d}.dcm", target / f"1-{n:03d}.dcm")))
    return paths


def test_a_missing_slice_is_reported_and_filled(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    numbers = [n for n in range(40, 61) if n != 50]
    _copy_slices(source, tmp_path / "gap", numbers)
    full = load_series([source / f"1-{n:03d}.dcm" for n in range(40, 61)])
    gap = load_series(tmp_path / "gap")
    assert gap.same_grid(full)
    assert any("1 slice(s) missing" in w for w in gap.warnings)
    k = 60 - 50  # slices run from 1-060 (lowest z) up to 1-040
    untouched = [i for i in range(gap.shape[0]) if i != k]
    assert np.array_equal(gap.array[untouched], full.array[untouched])
    expected = (full.array[k - 1].astype(np.float32) + full.array[k + 1]) / 2
    assert np.abs(gap.array[k] - expected).max() <= 1


def test_one_short_step_is_resampled_with_the_original_spacings_stated(
    dicom_dir: Path, tmp_path: Path
) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    paths = _copy_slices(source, tmp_path / "uneven", list(range(60, 80)))
    z = np.cumsum([0.0] + [1.5] * 9 + [1.0] + [1.5] * 9)
    for path, height in zip(paths, z, strict=True):
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [-275.0, -178.1, float(height)]
        ds.save_as(path)
    volume = load_series(tmp_path / "uneven")
    warning = next(w for w in volume.warnings if "irregular" in w)
    assert "1.00 mm ×1" in warning and "1.50 mm ×18" in warning
    assert volume.spacing[2] == pytest.approx(z[-1] / round(z[-1] / 1.5), abs=1e-6)
    assert volume.origin == pytest.approx((-275.0, -178.1, 0.0))
    assert volume.shape[0] == round(z[-1] / 1.5) + 1


def test_order_comes_from_positions_not_file_names(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    target = tmp_path / "shuffled"
    target.mkdir()
    numbers = list(range(1, 31))
    rng = np.random.default_rng(7)
    for n, name in zip(numbers, rng.permutation(len(numbers)), strict=True):
        ds = pydicom.dcmread(source / f"1-{n:03d}.dcm")
        ds.InstanceNumber = int(rng.integers(1, 1000))
        ds.save_as(target / f"{name:04d}.dcm")
    shuffled = load_series(target)
    ordered = load_series([source / f"1-{n:03d}.dcm" for n in numbers])
    assert shuffled.same_grid(ordered)
    assert np.array_equal(shuffled.array, ordered.array)


def test_series_inside_a_zip_loads_like_the_folder(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for n in range(1, 21):
            out.write(source / f"1-{n:03d}.dcm", f"DICOM/S1/IM{n:04d}")
        out.writestr("README.TXT", "not dicom")
    result = scan(archive)
    assert len(result.series) == 1
    assert [r.reason for r in result.rejected] == ["not a DICOM file"]
    zipped = load_series(result.series[0])
    plain = load_series([source / f"1-{n:03d}.dcm" for n in range(1, 21)])
    assert zipped.same_grid(plain)
    assert np.array_equal(zipped.array, plain.array)


def test_paths_with_several_series_ask_for_a_choice(dicom_dir: Path) -> None:
    with pytest.raises(DicomError, match="2 series"):
        load_series(
            [
                dicom_dir / "ct-head-ge-gantry-tilt-28",
                dicom_dir / "mr-brain-t1-sagittal-philips-170",
            ]
        )
    with pytest.raises(DicomError, match="no loadable image series"):
        load_series(dicom_dir / "odd" / "pydicom-wheel-test_files" / "reportsi.dcm")


def test_plan_geometry_reads_no_pixels_and_sorts_descending_files(dicom_dir: Path) -> None:
    series = scan(dicom_dir / "ct-abdomen-tcia-pancreas-134").series[0]
    geometry = plan_geometry(series.slices)
    assert geometry.regular and not geometry.sheared
    assert np.all(np.diff(geometry.d) > 0)
    assert geometry.step == pytest.approx(3.0)


def test_legacy_multiframe_with_spacing_between_slices(dicom_dir: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(dicom_dir / "odd" / "pydicom-wheel-test_files" / "MR_small.dcm")
    frames = np.stack([ds.pixel_array + k * 100 for k in range(3)]).astype(np.int16)
    ds.NumberOfFrames = 3
    ds.SpacingBetweenSlices = 2.5
    ds.FrameIncrementPointer = pydicom.tag.Tag("SpacingBetweenSlices")
    ds.PixelData = frames.tobytes()
    path = tmp_path / "multi.dcm"
    ds.save_as(path)
    volume = load_series(path)
    assert volume.shape == (3, 64, 64)
    assert volume.spacing[2] == pytest.approx(2.5)
    assert volume.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert np.array_equal(volume.array, frames)


def test_dicomdir_inside_a_zip(dicom_dir: Path, tmp_path: Path) -> None:
    folder = dicom_dir / "odd" / "pydicom-wheel-test_files" / "dicomdirtests"
    archive = tmp_path / "cd.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out.write(path, f"CD/{path.relative_to(folder)}")
    zipped = scan(archive)
    plain = scan(folder)
    assert f"{archive}!CD/DICOMDIR" in zipped.dicomdirs
    assert len(zipped.series) == len(plain.series)
    assert sorted(s.slice_count for s in zipped.series) == sorted(
        s.slice_count for s in plain.series
    )
    volume = load_series(max(zipped.series, key=lambda s: s.slice_count))
    assert volume.shape[0] > 1


def _phantom_slice(ipp, u, v, *, shape, spacing, centre, radius) -> np.ndarray:
    """A ball of 1000 HU (linear 2 mm edge) sampled at a slice's true pixel positions."""
    j, i = np.mgrid[0 : shape[0], 0 : shape[1]]
    points = ipp + i[..., None] * spacing * u + j[..., None] * spacing * v
    distance = np.linalg.norm(points - centre, axis=-1)
    return (np.clip((radius + 1 - distance) / 2, 0, 1) * 1000).astype(np.int16)


def test_synthetic_tilted_irregular_ball_comes_out_round_and_in_place(
    dicom_dir: Path, tmp_path: Path
) -> None:
    template = pydicom.dcmread(dicom_dir / "odd" / "pydicom-wheel-test_files" / "CT_small.dcm")
    tilt = np.radians(-12.0)
    u = np.array([1.0, 0.0, 0.0])
    v = np.array([0.0, np.cos(tilt), -np.sin(tilt)])
    centre, radius, spacing, shape = np.array([5.0, -3.0, 22.0]), 12.0, 1.5, (64, 64)
    heights = [0, 3, 6, 9, 10.5, 13.5, 16.5, 19.5, 22.5, 25.5, 28.5, 35.5, 38.5, 41.5, 44.5]
    for number, z in enumerate(heights):
        ipp = np.array([-48.0, -48.0, z])
        ds = template.copy()
        ds.ImageOrientationPatient = [*u, *v]
        ds.ImagePositionPatient = list(ipp)
        ds.PixelSpacing = [spacing, spacing]
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.Rows, ds.Columns = shape
        ds.PixelData = _phantom_slice(
            ipp, u, v, shape=shape, spacing=spacing, centre=centre, radius=radius
        ).tobytes()
        ds.save_as(tmp_path / f"{number:02d}.dcm")
    volume = load_series(tmp_path)
    assert np.allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-9)
    assert any("gantry tilt of 12.0°" in w for w in volume.warnings)
    # steps along the slice normal are the table steps × cos(tilt): 1.5, 3 and 7 mm
    assert any(
        "1.47 mm ×1" in w and "2.93 mm ×12" in w and "6.85 mm ×1" in w for w in volume.warnings
    )
    offset, roundness = _ball_fit(volume, centre)
    assert offset < 0.5  # in place (mm)
    assert roundness < 1.1  # round, not skewed into an ellipsoid
    # ITK's series reader ignores the shear and the uneven steps: the ball moves and deforms
    naive_offset, naive_roundness = _ball_fit(Volume.from_sitk(_sitk_volume(tmp_path)), centre)
    assert naive_offset > 2 and naive_roundness > 1.15


def _ball_fit(volume: Volume, centre: np.ndarray) -> tuple[float, float]:
    """(distance of the bright blob's centroid from ``centre`` in mm, longest/shortest axis)."""
    k, j, i = np.nonzero(volume.array > 500)
    points = volume.index_to_lps(np.column_stack([i, j, k]))
    extent = np.sqrt(np.linalg.eigvalsh(np.cov(points.T)))
    return float(np.linalg.norm(points.mean(axis=0) - centre)), float(extent.max() / extent.min())


def test_source_opener_reads_zip_members_and_files(dicom_dir: Path, tmp_path: Path) -> None:
    from app.imaging.sources import SourceOpener, SourceRef

    source = dicom_dir / "ct-abdomen-tcia-pancreas-134" / "1-001.dcm"
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(source, "x/1.dcm")
        out.write(source, "x/2.dcm")
    result = scan([archive, source])
    assert len(result.series) == 1 and result.series[0].slice_count == 1
    assert sum(r.reason.startswith("duplicate") for r in result.rejected) == 2
    refs = [
        SourceRef(str(archive), "x/1.dcm"),
        SourceRef(str(archive), "x/2.dcm"),
        SourceRef(str(source)),
    ]
    with SourceOpener() as opener:
        for ref in refs:
            with opener.open(ref) as stream:
                assert stream.read() == source.read_bytes()

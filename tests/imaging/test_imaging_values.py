"""Pixel values: bit masks, MONOCHROME1, rescale, every lossless transfer syntax, multi-frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from app.imaging.load import load_series
from app.imaging.scan import scan


@pytest.fixture(scope="module")
def odd(dicom_dir: Path) -> Path:
    return dicom_dir / "odd"


def _raw_u16(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return np.frombuffer(ds.PixelData, dtype="<u2").reshape(ds.Rows, ds.Columns)


def test_unsigned_12bit_junk_high_bits_are_masked(odd: Path) -> None:
    path = odd / "dcm_qa_12bit" / "12bitUnsigned_0x0F0F.dcm"
    raw = _raw_u16(path)
    out = load_series(path).array[0]
    assert (raw > 0x0FFF).any()  # the file really has junk in the high nibble
    assert out.min() >= 0 and out.max() <= 4095
    assert (out[raw == 0xFFFF] == 4095).all()
    assert (out[raw == 0x0F0F] == 3855).all()
    assert np.array_equal(out, raw & 0x0FFF)


def test_signed_12bit_is_sign_extended_from_high_bit_11(odd: Path) -> None:
    path = odd / "dcm_qa_12bit" / "12bitSigned_0x0F0F.dcm"
    raw = _raw_u16(path)
    out = load_series(path).array[0]
    assert (out[raw == 0xFFFF] == -1).all()
    assert (out[raw == 0x0F0F] == -241).all()
    assert out.min() >= -2048 and out.max() <= 2047


def test_one_slice_in_nine_transfer_syntaxes_decodes_identically(odd: Path) -> None:
    reference = load_series(odd / "dcm_qa_ts" / "1.dcm").array
    assert reference.max() > 100
    for number in range(2, 10):
        assert np.array_equal(load_series(odd / "dcm_qa_ts" / f"{number}.dcm").array, reference)


@pytest.mark.parametrize("image", ["CT1", "CT2", "MR1"])
def test_nema_lossless_encodings_equal_the_uncompressed_reference(odd: Path, image: str) -> None:
    root = odd / "nema-wg04-compsamples" / "IMAGES"
    reference = load_series(root / "REF" / f"{image}_UNC")
    for codec in ("J2KR", "JLSL", "JPLL", "RLE"):
        volume = load_series(root / codec / f"{image}_{codec}")
        assert np.array_equal(volume.array, reference.array), codec
        assert volume.same_grid(reference)
    lossy = load_series(root / "J2KI" / f"{image}_J2KI").array.astype(np.int32)
    assert np.abs(lossy - reference.array).mean() < 50  # lossy, but the same image


def test_big_endian_implicit_and_compressed_small_mr_are_identical(odd: Path) -> None:
    root = odd / "pydicom-wheel-test_files"
    reference = load_series(root / "MR_small.dcm").array
    for name in (
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ):
        assert np.array_equal(load_series(root / name).array, reference), name


def test_monochrome1_is_inverted_before_rescale(odd: Path) -> None:
    path = odd / "pydicom-wheel-test_files" / "dicomdirtests" / "77654033" / "CR1" / "6154"
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = _raw_u16(path).astype(np.float64) % 4096
    expected = (4095 - raw) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    volume = load_series(path)
    assert volume.array.dtype == np.float32
    assert np.allclose(volume.array[0], expected, atol=1e-3)


def test_ct_is_int16_hounsfield_and_mr_with_fractional_slope_is_float32(dicom_dir: Path) -> None:
    folder = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    ct = load_series([folder / f"1-{n:03d}.dcm" for n in (60, 61, 62)])
    assert ct.array.dtype == np.int16
    assert ct.array.min() == -1000  # intercept -1000 applied to stored 0
    assert ct.array.max() > 1000  # cortical bone of the spine
    mr_path = dicom_dir / "mr-brain-t1-sagittal-philips-170"
    mr = load_series(mr_path)
    assert mr.array.dtype == np.float32
    first = sorted(mr_path.glob("*.dcm"))[0]
    ds = pydicom.dcmread(first)
    stored = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope)
    matches = [k for k in range(mr.shape[0]) if np.allclose(mr.array[k], stored, atol=1e-3)]
    assert len(matches) == 1


def test_enhanced_mr_uses_per_frame_positions(odd: Path) -> None:
    path = odd / "nema-wg16-enhanced-mr" / "IMAGES" / "BRTUM003"
    volume = load_series(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    positions = np.array(
        [
            [float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
            for f in ds.PerFrameFunctionalGroupsSequence
        ]
    )
    assert volume.shape[0] == len(positions) == 24
    corners = volume.index_to_lps(np.array([[0, 0, k] for k in range(volume.shape[0])]))
    # every frame's position is one slice of the volume, in order along the normal
    distances = np.linalg.norm(corners[:, None, :] - positions[None, :, :], axis=2).min(axis=1)
    assert distances.max() < 1e-3
    frames = pydicom.pixels.pixel_array(ds.filename)
    normal = volume.direction[:, 2]
    order = np.argsort(positions @ normal)
    assert np.array_equal(volume.array, frames[order].astype(volume.array.dtype))


def test_enhanced_mr_with_three_orientations_splits_into_stacks(odd: Path) -> None:
    result = scan(odd / "nema-wg16-enhanced-mr" / "IMAGES" / "BRMULTI")
    stacks = result.series
    assert len(stacks) >= 2
    directions = [load_series(s).direction[:, 2] for s in stacks]
    assert not np.allclose(directions[0], directions[1], atol=1e-3)


def test_enhanced_ct_rescale_comes_from_functional_groups(odd: Path) -> None:
    path = odd / "pydicom-data" / "eCT_Supplemental.dcm"
    ds = pydicom.dcmread(path)
    groups = ds.SharedFunctionalGroupsSequence[0]
    pvt = (
        groups.get("PixelValueTransformationSequence")
        or ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence
    )
    slope, intercept = float(pvt[0].RescaleSlope), float(pvt[0].RescaleIntercept)
    volume = load_series(path)
    assert volume.array.dtype == np.int16
    raw = ds.pixel_array.astype(np.float64) * slope + intercept
    assert volume.shape[0] == 2
    assert any(np.allclose(volume.array[0], frame) for frame in raw)


def _synthetic(wheel: Path, target: Path, **changes) -> Path:
    """CT_small with changed pixel module elements and the given stored values."""
    ds = pydicom.dcmread(wheel / "CT_small.dcm")
    stored = changes.pop("stored")
    little = changes.pop("little_endian", True)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.PixelData = stored.astype("<u2" if little else ">u2").tobytes()
    ds.file_meta.TransferSyntaxUID = (
        pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian
    )
    pydicom.dcmwrite(target, ds, implicit_vr=False, little_endian=little, force_encoding=True)
    return target


def test_signed_12bit_big_endian_with_junk_bits(odd: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = rng.integers(-2048, 2048, size=(128, 128))
    junk = rng.integers(0, 16, size=values.shape) << 12
    stored = (values & 0x0FFF) | junk
    path = _synthetic(
        odd / "pydicom-wheel-test_files",
        tmp_path / "be12.dcm",
        stored=stored,
        little_endian=False,
        BitsStored=12,
        HighBit=11,
        PixelRepresentation=1,
        RescaleSlope=1,
        RescaleIntercept=0,
    )
    volume = load_series(path)
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array[0], values)


def test_ct_with_a_fractional_slope_is_rounded_hounsfield(odd: Path, tmp_path: Path) -> None:
    stored = np.arange(128 * 128).reshape(128, 128) % 4096
    path = _synthetic(
        odd / "pydicom-wheel-test_files",
        tmp_path / "slope.dcm",
        stored=stored,
        BitsStored=12,
        HighBit=11,
        PixelRepresentation=0,
        RescaleSlope=0.5,
        RescaleIntercept=-1024,
    )
    volume = load_series(path)
    assert volume.array.dtype == np.int16
    assert np.array_equal(volume.array[0], np.rint(stored * 0.5 - 1024).astype(np.int16))


def test_12bit_jpeg_extended_decodes_through_the_fallback_plugin(odd: Path) -> None:
    root = odd / "nema-wg04-compsamples" / "IMAGES"
    lossy = load_series(root / "JPLY" / "MR1_JPLY").array.astype(np.float64).ravel()
    reference = load_series(root / "REF" / "MR1_UNC").array.astype(np.float64).ravel()
    assert np.corrcoef(lossy, reference)[0, 1] > 0.999
    assert np.abs(lossy - reference).mean() < 20  # lossy, 12-bit range 0..4000
    wheel = odd / "pydicom-wheel-test_files"
    strict = load_series(wheel / "JPGExtended.dcm").array.astype(np.int32)  # libjpeg decodes it
    fallback = load_series(wheel / "JPEG-lossy.dcm").array.astype(np.int32)  # libjpeg refuses
    assert np.abs(strict - fallback).max() <= 1  # the same image, IDCT rounding apart

"""Hostile files: absurd declared sizes, truncation, deep nesting, lying lengths; cancel."""

from __future__ import annotations

import itertools
import shutil
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.errors import Cancelled, DicomError
from app.imaging.load import load_series
from app.imaging.scan import scan
from app.progress import CancelToken

HUGE = 65535


@pytest.fixture(scope="module")
def wheel(dicom_dir: Path) -> Path:
    return dicom_dir / "odd" / "pydicom-wheel-test_files"


def _peak_bytes(fn) -> int:
    """Peak traced allocation (numpy and Python) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _declare_huge(source: Path, target: Path) -> Path:
    ds = pydicom.dcmread(source)
    ds.Rows = HUGE
    ds.Columns = HUGE
    ds.save_as(target)
    return target


def _refused(path: Path) -> str:
    result = scan(path)
    assert result.series == []
    with pytest.raises(DicomError):
        load_series(path)
    return result.rejected[0].reason


def test_huge_uncompressed_frame_is_refused_before_allocating(wheel: Path, tmp_path: Path) -> None:
    path = _declare_huge(wheel / "CT_small.dcm", tmp_path / "huge.dcm")
    peak = _peak_bytes(lambda: _refused(path))
    assert peak < 32 << 20
    assert "truncated" in scan(path).rejected[0].reason


def test_huge_compressed_frame_is_refused_before_decoding(wheel: Path, tmp_path: Path) -> None:
    path = _declare_huge(wheel / "MR_small_jp2klossless.dcm", tmp_path / "huge_j2k.dcm")
    peak = _peak_bytes(lambda: _refused(path))
    assert peak < 32 << 20
    reason = scan(path).rejected[0].reason
    assert "65535×65535" in reason and "declares" in reason


def test_file_grown_huge_after_the_scan_is_refused_at_load(wheel: Path, tmp_path: Path) -> None:
    path = Path(shutil.copy(wheel / "MR_small_jp2klossless.dcm", tmp_path / "a.dcm"))
    series = scan(path).series[0]
    _declare_huge(path, path)
    with pytest.raises(DicomError, match="changed since it was scanned"):
        load_series(series)


def test_truncated_pixel_data_is_rejected_with_sizes(wheel: Path) -> None:
    reason = _refused(wheel / "MR_truncated.dcm")
    assert reason.startswith("pixel data truncated")


def _nested_file(path: Path, depth: int, with_pixels: bool = True) -> Path:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.save_as(path, enforce_file_format=True)

    def tag(group: int, element: int) -> bytes:
        return struct.pack("<HH", group, element)

    undefined = struct.pack("<L", 0xFFFFFFFF)
    opening = tag(0x0040, 0xA730) + b"SQ\0\0" + undefined + tag(0xFFFE, 0xE000) + undefined
    closing = tag(0xFFFE, 0xE00D) + b"\0" * 4 + tag(0xFFFE, 0xE0DD) + b"\0" * 4
    pixels = tag(0x7FE0, 0x0010) + b"OW\0\0" + struct.pack("<L", 32) + b"\1\0" * 16
    with open(path, "ab") as out:
        out.write(opening * depth + closing * depth + (pixels if with_pixels else b""))
    return path


def test_deeply_nested_sequences_are_rejected_and_the_rest_still_loads(
    dicom_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    _nested_file(folder / "deep.dcm", depth=20000)
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    for n in (1, 2, 3):
        shutil.copy(source / f"1-00{n}.dcm", folder / f"ct{n}.dcm")
    result = scan(folder)
    deep = [r for r in result.rejected if r.file.endswith("deep.dcm")]
    assert len(deep) == 1
    assert "nested too deeply" in deep[0].reason
    assert len(result.series) == 1
    assert load_series(result.series[0]).shape == (3, 512, 512)


def test_moderately_nested_sequences_still_load(tmp_path: Path) -> None:
    volume = load_series(_nested_file(tmp_path / "nested.dcm", depth=20))
    assert volume.shape == (1, 4, 4)
    assert (volume.array == 1).all()


def test_an_element_claiming_gigabytes_is_skipped_not_read(wheel: Path, tmp_path: Path) -> None:
    data = (wheel / "CT_small.dcm").read_bytes()
    ds = pydicom.dcmread(wheel / "CT_small.dcm", stop_before_pixels=True)
    # a private OB element that claims 3.5 GB, placed before the pixel data
    liar = struct.pack("<HH", 0x0029, 0x0010) + b"OB\0\0" + struct.pack("<L", 0xD0000000)
    offset = data.rfind(struct.pack("<HH", 0x7FE0, 0x0010))
    assert offset > 0 and ds.Rows == 128
    path = tmp_path / "liar.dcm"
    path.write_bytes(data[:offset] + liar + data[offset:])
    peak = _peak_bytes(lambda: scan(path))
    assert peak < 32 << 20
    assert scan(path).series == []


def test_scan_and_load_honour_cancel(dicom_dir: Path) -> None:
    token = CancelToken()
    token.cancel()
    folder = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    with pytest.raises(Cancelled):
        scan(folder, cancel=token)
    series = scan(folder).series[0]
    with pytest.raises(Cancelled):
        load_series(series, cancel=token)


def test_progress_runs_from_zero_to_one(dicom_dir: Path) -> None:
    from app.progress import Progress

    seen: list[float] = []
    load_series(
        dicom_dir / "ct-head-ge-gantry-tilt-28", progress=Progress(lambda f, m: seen.append(f))
    )
    assert seen[0] <= 0.1 and seen[-1] == 1.0
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(seen))
    assert np.isfinite(seen).all()


def test_a_deflate_bomb_is_refused_before_it_is_inflated(
    wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zlib

    import psutil

    real = psutil.virtual_memory()

    class Small:
        available = 64 << 20  # so the limit is 16 MiB and the test stays quick
        total = real.total

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Small)
    good = pydicom.dcmread(wheel / "image_dfl.dcm")
    meta = (wheel / "image_dfl.dcm").read_bytes()
    (meta_length,) = struct.unpack("<L", meta[140:144])
    header = meta[: 144 + meta_length]
    assert good.file_meta.TransferSyntaxUID == pydicom.uid.DeflatedExplicitVRLittleEndian
    size = 100 << 20
    body = struct.pack("<HH", 0x0008, 0x0016) + b"UI" + struct.pack("<H", 26)
    body += b"1.2.840.10008.5.1.4.1.1.7\0"
    body += struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<L", size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [packer.compress(body)]
    zeros = bytes(1 << 20)
    chunks += [packer.compress(zeros) for _ in range(size >> 20)]
    chunks.append(packer.flush())
    path = tmp_path / "bomb.dcm"
    path.write_bytes(header + b"".join(chunks))
    assert path.stat().st_size < 1 << 20
    peak = _peak_bytes(lambda: scan(path))
    reason = scan(path).rejected[0].reason
    assert reason.startswith("deflated data expands beyond")
    assert peak < 40 << 20
    assert load_series(wheel / "image_dfl.dcm").shape == (1, 512, 512)  # a real one still loads


def test_a_vanished_file_gives_a_clear_error(dicom_dir: Path, tmp_path: Path) -> None:
    source = dicom_dir / "ct-abdomen-tcia-pancreas-134"
    for n in (1, 2, 3):
        shutil.copy(source / f"1-00{n}.dcm", tmp_path / f"{n}.dcm")
    series = scan(tmp_path).series[0]
    (tmp_path / "2.dcm").unlink()
    with pytest.raises(DicomError, match="drive still connected"):
        load_series(series)

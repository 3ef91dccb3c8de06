"""Round trips through 3D Slicer .seg.nrrd, NIfTI and DICOM SEG keep labels and geometry."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from app.errors import SegmentationError
from app.tools.segmentation import Grid, Segmentation, exchange, get_tool

from .conftest import CT_FOLDER, VERTEBRAL_BODY


@pytest.fixture
def two_segments(ct_volume, ct_bone) -> Segmentation:
    """Bone plus an overlapping vertebra (so two Slicer layers are needed)."""
    seed = [(VERTEBRAL_BODY[2], VERTEBRAL_BODY[1], VERTEBRAL_BODY[0])]
    tool = get_tool("region-growing")
    tool.apply(
        ct_bone,
        ct_volume,
        tool.default_params(segment="vertebra", seeds=seed, method="confidence-connected"),
    )
    ct_bone.update_segment("vertebra", color=(0.2, 0.4, 0.9))
    assert (ct_bone.mask("bone") & ct_bone.mask("vertebra")).any()
    return ct_bone


def assert_same(a: Segmentation, b: Segmentation, colors: bool = True) -> None:
    assert [s.name for s in a.segments] == [s.name for s in b.segments]
    assert a.grid.matches(b.grid)
    for s in a.segments:
        assert np.array_equal(a.mask(s.name), b.mask(s.name)), s.name
        if colors:
            assert np.allclose(s.color, b.segment(s.name).color, atol=0.01), s.name


def test_seg_nrrd_round_trip_with_overlapping_layers(two_segments):
    buffer = io.BytesIO()
    exchange.write_seg_nrrd(two_segments, buffer)
    header = buffer.getvalue().split(b"\n\n", 1)[0].decode()
    for line in (
        "dimension: 4",
        "kinds: list domain domain domain",
        "space: left-posterior-superior",
        "encoding: gzip",
        "Segment0_Name:=bone",
        "Segment1_Layer:=1",
        "Segmentation_MasterRepresentation:=Binary labelmap",
    ):
        assert line in header, line
    buffer.seek(0)
    assert_same(two_segments, exchange.read_seg_nrrd(buffer, two_segments.grid))


def test_seg_nrrd_single_layer_is_a_plain_label_map_other_readers_understand(ct_bone, tmp_path):
    path = tmp_path / "bone.seg.nrrd"
    exchange.export_seg_nrrd(ct_bone, path)
    image = sitk.ReadImage(str(path))  # an independent NRRD reader
    assert Grid.from_sitk(image).matches(ct_bone.grid)
    assert np.array_equal(sitk.GetArrayFromImage(image) == 1, ct_bone.mask("bone"))
    assert image.GetMetaData("Segment0_Name") == "bone"
    assert_same(ct_bone, exchange.import_seg_nrrd(path, ct_bone.grid))


def test_seg_nrrd_cropped_extent_is_placed_on_the_grid(ct_bone, tmp_path):
    # like Slicer's "crop to minimum extent": a smaller image whose origin is shifted
    box = ct_bone.bbox("bone")
    crop = ct_bone.mask("bone", box).astype(np.uint8)
    image = ct_bone.grid.to_sitk(crop, box)
    path = tmp_path / "cropped.nrrd"
    sitk.WriteImage(image, str(path), True)
    back = exchange.import_seg_nrrd(path, ct_bone.grid)
    assert [s.name for s in back.segments] == ["Label 1"]
    assert np.array_equal(back.mask("Label 1"), ct_bone.mask("bone"))


def test_nifti_round_trip(two_segments, tmp_path):
    path = tmp_path / "labels.nii.gz"
    table = exchange.export_nifti(two_segments, path, keys=["bone"])
    assert table == [(1, "bone")]
    back = exchange.import_nifti(path, two_segments.grid, names={1: "bone"})
    assert back.grid.matches(two_segments.grid)
    assert np.array_equal(back.mask("bone"), two_segments.mask("bone"))
    with pytest.raises(SegmentationError, match=r"\.nii"):
        exchange.export_nifti(two_segments, tmp_path / "labels.png")


@pytest.mark.slow
def test_dicom_seg_round_trip(two_segments, dicom_dir):
    datasets = [pydicom.dcmread(p) for p in sorted((dicom_dir / CT_FOLDER).glob("*.dcm"))]
    buffer = io.BytesIO()
    exchange.write_dicom_seg(two_segments, datasets[::-1], buffer)  # any order of the slices
    buffer.seek(0)
    dataset = pydicom.dcmread(buffer)
    assert dataset.Modality == "SEG" and len(dataset.SegmentSequence) == 2
    buffer.seek(0)
    assert_same(two_segments, exchange.read_dicom_seg(buffer, two_segments.grid))
    with pytest.raises(SegmentationError, match="every slice"):
        exchange.write_dicom_seg(two_segments, datasets[:-1], io.BytesIO())


def test_bad_files_are_refused(ct_bone):
    with pytest.raises(SegmentationError, match="not a NRRD"):
        exchange.read_seg_nrrd(io.BytesIO(b"hello"), ct_bone.grid)
    buffer = io.BytesIO()
    exchange.write_seg_nrrd(ct_bone, buffer)
    with pytest.raises(SegmentationError, match=r"damaged|truncated"):
        exchange.read_seg_nrrd(io.BytesIO(buffer.getvalue()[:-5000]), ct_bone.grid)
    with pytest.raises(SegmentationError, match="DICOM SEG"):
        exchange.read_dicom_seg(io.BytesIO(b"\0" * 200), ct_bone.grid)


def test_the_file_name_picks_the_format(small_volume, tmp_path):
    seg = Segmentation(small_volume)
    get_tool("threshold").apply(seg, small_volume, get_tool("threshold").default_params())
    for name, kind in (("a.seg.nrrd", "seg.nrrd"), ("b.nrrd", "seg.nrrd"), ("c.nii.gz", "nifti")):
        assert exchange.export_file(seg, tmp_path / name) == kind == exchange.format_of(name)
        back = exchange.import_file(tmp_path / name, small_volume)
        assert np.array_equal(back.mask(back.segments[0]), seg.mask("bone"))  # NIfTI: no names
    with pytest.raises(SegmentationError, match=r"\.seg\.nrrd"):
        exchange.format_of("labels.png")
    with pytest.raises(SegmentationError, match=r"\.nii"):
        exchange.format_of("LABELS.NII")  # the NIfTI writer needs the lower-case suffix
    with pytest.raises(SegmentationError, match="original series"):
        exchange.export_file(seg, tmp_path / "d.dcm")
    with pytest.raises(SegmentationError, match="does not exist"):
        exchange.import_file(tmp_path / "missing.nii", small_volume)


def test_a_dicom_seg_of_deidentified_sources_says_so(ct_volume, ct_bone, dicom_dir):
    from app.security.deid import DeidOptions, deidentify

    datasets = [
        deidentify(pydicom.dcmread(p), options=DeidOptions(), uid_key=b"k" * 32, pseudonym="C-1")
        for p in sorted((dicom_dir / CT_FOLDER).glob("*.dcm"))
    ]
    buffer = io.BytesIO()
    exchange.write_dicom_seg(ct_bone, datasets, buffer)
    buffer.seek(0)
    seg = pydicom.dcmread(buffer)
    assert str(seg.PatientName) == seg.PatientID == "C-1"
    assert seg.PatientIdentityRemoved == "YES"
    assert seg.DeidentificationMethodCodeSequence[0].CodeValue == "113100"

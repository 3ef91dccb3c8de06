"""Fixtures for the segmentation tests: the real TCIA CT (loaded once), its bone, phantoms."""

from __future__ import annotations

import numpy as np
import pytest

from app.imaging.load import load_series
from app.imaging.volume import Volume
from app.tools.segmentation import Segmentation, get_tool, storage

CT_FOLDER = "ct-abdomen-tcia-pancreas-134"

# Anatomical check positions in the TCIA CT, (k, j, i), found by inspecting the data:
VERTEBRAL_BODY = (30, 265, 262)  # lumbar vertebral body centre, ~250 HU cancellous bone
COUCH_ROWS = slice(400, None)  # rows j >= 400 are below the patient: couch and its rails only


@pytest.fixture(scope="session")
def ct_volume(dicom_dir) -> Volume:
    volume = load_series(dicom_dir / CT_FOLDER)
    volume.array.setflags(write=False)  # shared by every test: nobody may change it
    return volume


@pytest.fixture(scope="session")
def ct_bone_bytes(ct_volume) -> bytes:
    """A segmentation of the CT with one 'bone' segment from bone-in-one-click (saved form)."""
    seg = Segmentation(ct_volume)
    get_tool("bone").apply(seg, ct_volume)
    return storage.to_bytes(seg)


@pytest.fixture
def ct_bone(ct_bone_bytes) -> Segmentation:
    """A fresh copy per test (read back from the vault format)."""
    return storage.from_bytes(ct_bone_bytes)


def phantom(shape=(40, 50, 60), spacing=(0.8, 1.0, 2.0), origin=(-10.0, 20.0, 30.0)) -> Volume:
    """A small anisotropic CT-like volume: -1000 air, a 0 HU body box, a 700 HU ball."""
    array = np.full(shape, -1000, dtype=np.int16)
    array[5:-5, 5:-5, 5:-5] = 0
    k, j, i = np.indices(shape)
    centre = np.array(shape) / 2
    sk, sj, si = spacing[2], spacing[1], spacing[0]
    r = np.sqrt(
        ((k - centre[0]) * sk) ** 2 + ((j - centre[1]) * sj) ** 2 + ((i - centre[2]) * si) ** 2
    )
    array[r <= 12.0] = 700
    direction = np.array(
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
    )  # oblique-free but not identity
    return Volume(array=array, origin=origin, spacing=spacing, direction=direction, modality="CT")


@pytest.fixture
def small_volume() -> Volume:
    return phantom()


def ball_mask(shape, spacing_kji, centre_kji, radius_mm) -> np.ndarray:
    k, j, i = np.indices(shape)
    d2 = sum(((g - c) * s) ** 2 for g, c, s in zip((k, j, i), centre_kji, spacing_kji, strict=True))
    return d2 <= radius_mm**2

"""The printable piece of a segment: the largest component that fits, else a block cut from it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from app.tools.segmentation.fit import largest_fitting_component, printable_piece
from tests.peak import run_with_peak

SPACING = (1.0, 1.0, 2.0)  # (x, y, z) mm; masks are (z, y, x)
BUILD = (40.0, 40.0, 40.0)  # 30 mm free per axis once the 10 mm margin is kept


def two_parts() -> np.ndarray:
    """A 16×16×100 mm bar (too long for the build volume) and a 20×20×20 mm cube that fits."""
    mask = np.zeros((60, 40, 60), dtype=bool)
    mask[5:55, 5:21, 5:21] = True  # bar: 50 slices of 2 mm
    mask[20:30, 10:30, 35:55] = True  # cube: 10 slices of 2 mm, 20×20 voxels of 1 mm
    return mask


def test_the_largest_component_that_fits_is_chosen_whole():
    mask = two_parts()
    piece, was_cut = printable_piece(mask, SPACING, BUILD)
    assert not was_cut
    assert piece.shape == mask.shape
    assert piece.sum() == 10 * 20 * 20
    assert piece[20:30, 10:30, 35:55].all()


def test_a_part_too_large_is_cut_around_its_centre_to_the_build_volume():
    mask = np.zeros((60, 40, 60), dtype=bool)
    mask[5:55, 5:21, 5:21] = True  # 100 mm long, centre slice 30
    piece, was_cut = printable_piece(mask, SPACING, BUILD, cut_height_mm=20.0)
    assert was_cut
    slices = np.flatnonzero(piece.any(axis=(1, 2)))
    assert (slices[0], slices[-1]) == (25, 34)  # 20 mm: 10 slices of 2 mm about slice 30
    assert piece[25:35].sum() == 10 * 16 * 16
    assert not (piece & ~mask).any()


def test_no_fitting_component_and_an_empty_mask_give_none():
    bar = np.zeros((60, 40, 60), dtype=bool)
    bar[5:55, 5:21, 5:21] = True
    assert largest_fitting_component(bar, SPACING, BUILD) is None
    assert printable_piece(np.zeros((4, 4, 4), dtype=bool), SPACING, BUILD) == (None, False)


_RIBS = """
import json
import numpy as np
from app.tools.segmentation.fit import printable_piece
j, i = np.ogrid[:512, :512]
r = np.hypot(j - 256, i - 256)
mask = np.empty((1000, 512, 512), dtype=bool)
mask[:] = (r >= 180) & (r < 186)
piece, was_cut = printable_piece(mask, (0.7, 0.7, 0.4), (220.0, 220.0, 250.0), cut_height_mm=70.0)
slices = np.flatnonzero(piece.any(axis=(1, 2)))
print(json.dumps([was_cut, int(piece.sum()), int(slices[0]), int(slices[-1]),
                  bool((piece & ~mask).any())]))
"""


def test_a_piece_of_a_1000_slice_mask_stays_within_a_few_mask_sizes():
    """A 252 mm ring on 512×512×1,000 voxels (a 250 MiB mask): too wide for the printer, so a
    70 mm block around its centre is cut and an arc of it kept. Measured with ``wait4`` in a
    child process: 1.1 GiB; numpy labelling of the whole grid peaked at 3.7 GiB."""
    code, peak_mib, out = run_with_peak(
        [sys.executable, "-c", _RIBS], cwd=Path(__file__).resolve().parents[2]
    )
    assert code == 0
    was_cut, voxels, first, last, outside = json.loads(out)
    assert was_cut and not outside
    assert (first, last) == (413, 586)  # 87 slices of 0.4 mm below slice 500, 86 above
    assert 0 < voxels < 1000 * 512 * 512 // 100
    assert peak_mib < 1792, f"peak RSS {peak_mib:.0f} MiB"

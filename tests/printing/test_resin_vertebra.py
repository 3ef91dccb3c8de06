"""A hollowed vertebra from the shared TCIA CT, drained, sliced for resin: every cavity is open
to the outside, the archive's resin matches the mesh volume within 2 %, its layer count is its
height over the layer thickness, and no file of it names the source."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest

from app.printing.profiles import get_material, get_printer
from app.printing.slicer import prusaslicer
from app.printing.slicer.sla import SlaSettings, bare_png, slice_sla
from app.tools.mesh import edit
from app.tools.mesh.drain import MIN_CAVITY_ML, cavities, resin_check
from app.tools.mesh.operations import apply_edit

from .conftest import bone_mesh

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(prusaslicer.find_executable() is None, reason="prusa-slicer not installed"),
]
SERIES = "ct-abdomen-tcia-pancreas-134"


@pytest.fixture(scope="module")
def vertebra(dicom_dir: Path):
    """Lumbar vertebra block (real bone, 20k triangles, about 72 x 44 x 44 mm)."""
    return bone_mesh(dicom_dir / SERIES, (slice(180, 330), slice(300, 420), slice(60, 75)), 20_000)


def test_hollowed_drained_vertebra_slices_clean(vertebra, dicom_dir, data_dir, tmp_path):
    shell = edit.hollow(vertebra, 2.0)
    inner = cavities(shell)
    assert inner, "hollowing leaves cavities to drain"
    small = [c for c in inner if -c.volume < MIN_CAVITY_ML * 1000]
    made, _ = apply_edit(vertebra, "hollow", {"wall_mm": 2.0, "hole_mm": 3.0})
    assert made.is_watertight and cavities(made) == [], "every cavity drilled or filled"
    resin = get_material("resin")
    check = resin_check(made, min_wall_mm=resin.min_wall_mm, min_feature_mm=resin.min_feature_mm)
    assert check.closed_cavities == 0 and check.trapped_ml == 0.0
    assert check.resin_ml < 0.8 * abs(vertebra.volume) / 1000, "hollow: far less resin"
    assert check.thinnest_mm is not None and check.thin_walls is not None
    print(f"cavities {len(inner)} ({len(small)} filled), {check.lines()}")

    settings = SlaSettings(supports=False, pad=False)
    archive = slice_sla([(made.vertices, made.faces)], get_printer("prusa-sl1s"), resin, settings)
    assert archive.resin_ml == pytest.approx(check.resin_ml, rel=0.02)
    height = float(made.bounds[1][2] - made.bounds[0][2])
    assert archive.layer_height == 0.05
    assert abs(archive.layers - height / 0.05) <= 1

    header = pydicom.dcmread(next((dicom_dir / SERIES).glob("*.dcm")), stop_before_pixels=True)
    forbidden = {str(header.PatientName), str(header.PatientID), SERIES, "pancreas", "tcia"}
    forbidden |= {str(tmp_path), "/tmp/", "/dev/shm", "medprint-ps"} - {""}
    with zipfile.ZipFile(io.BytesIO(archive.data)) as sl1:
        for info in sl1.infolist():
            data = sl1.read(info)
            if info.filename.endswith(".png"):
                assert bare_png(data) == data, f"{info.filename} carries more than pixels"
                text = info.filename
            else:
                text = info.filename + data.decode()
            found = [w for w in forbidden if w and w.lower() in text.lower()]
            assert found == [], f"{info.filename} carries {found}"
            assert info.date_time == (1980, 1, 1, 0, 0, 0) and not info.comment

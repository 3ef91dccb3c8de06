"""Export: one clean file per part or one merged file, named by pseudonym and part, in mm."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from app.errors import MeshError
from app.tools.mesh.core import make_mesh, signed_volume
from app.tools.mesh.export import export_parts, import_mesh
from app.tools.mesh.meshio import check_clean


def part(size, x):
    b = trimesh.creation.box(size)
    return make_mesh(b.vertices + np.array([x, 0, 0]), b.faces)


@pytest.mark.parametrize("fmt", ["stl", "3mf", "obj", "ply"])
def test_export_parts_and_merged(tmp_path, fmt):
    parts = {"Skull": part((10, 10, 10), 0), "Mandible L": part((5, 5, 5), 30)}
    files = export_parts(parts, tmp_path, "C-7K3M-Q9", fmt)
    assert [f.name for f in files] == [f"C-7K3M-Q9_skull.{fmt}", f"C-7K3M-Q9_mandible-l.{fmt}"]
    assert all(check_clean(f) == [] for f in files)
    assert signed_volume(import_mesh(files[1])) == pytest.approx(125.0, rel=1e-5)
    [merged] = export_parts(parts, tmp_path, "C-7K3M-Q9", fmt, merged=True)
    assert merged.name == f"C-7K3M-Q9_all.{fmt}"
    back = import_mesh(merged)
    assert signed_volume(back) == pytest.approx(1125.0, rel=1e-5)
    assert np.allclose(back.bounds, [[-5, -5, -5], [32.5, 5, 5]], atol=1e-4)


def test_export_refuses_clashing_names_and_non_pseudonyms(tmp_path):
    with pytest.raises(MeshError):
        export_parts({"a b": part((1, 1, 1), 0), "A-B": part((1, 1, 1), 5)}, tmp_path, "C-7K3M-Q9")
    with pytest.raises(MeshError):
        export_parts({"bone": part((1, 1, 1), 0)}, tmp_path, "Doe Jane")

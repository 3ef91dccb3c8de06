"""The OBJ + MTL writer (no archive needed): every STL triangle comes back from the OBJ exactly
(welded corners, one group per part), the MTL's colours read back, a bad STL is one line."""

from __future__ import annotations

import numpy as np
import pytest

from app.imaging.pacs.model_obj import mtl_colours, obj_and_mtl, stl_triangles
from app.imaging.pacs.nodes import PacsError
from tests.workflow.mesh_versions import sphere_stl


def _obj_triangles(text: str) -> dict[str, np.ndarray]:
    """Per ``o`` group, its triangles' corners rebuilt from ``v`` and ``f`` lines."""
    vertices, groups, name = [], {}, ""
    for line in text.splitlines():
        kind, *values = line.split() or [""]
        if kind == "v":
            vertices.append([float(v) for v in values])
        elif kind == "o":
            name = values[0]
            groups[name] = []
        elif kind == "f":
            groups[name].append([int(v) - 1 for v in values])
    table = np.array(vertices, dtype=np.float32)
    return {n: table[np.array(faces)] for n, faces in groups.items()}


def _sorted(triangles: np.ndarray) -> np.ndarray:
    flat = triangles.reshape(len(triangles), 9)
    return flat[np.lexsort(flat.T[::-1])]


def test_obj_holds_every_triangle_and_the_mtl_its_colours():
    parts = {"bone": sphere_stl(10.0), "vessel": sphere_stl(4.0)}
    obj, mtl = obj_and_mtl(parts, {"bone": "#e6dcc8", "vessel": None})
    text = obj.decode("ascii")
    assert text.count("\nv ") < sum(len(stl_triangles(s)) * 3 for s in parts.values()) / 4
    rebuilt = _obj_triangles(text)
    assert list(rebuilt) == ["bone", "vessel"]
    for name, stl in parts.items():
        np.testing.assert_array_equal(_sorted(rebuilt[name]), _sorted(stl_triangles(stl)))
    assert mtl_colours(mtl) == {"bone": "#e6dcc8", "vessel": "#cccccc"}


def test_a_part_that_is_not_a_binary_stl_is_one_line():
    with pytest.raises(PacsError, match="not a binary STL"):
        obj_and_mtl({"bone": b"solid ascii\n"}, {})
    with pytest.raises(PacsError, match="is not #rrggbb"):
        obj_and_mtl({"bone": sphere_stl(1.0)}, {"bone": "#zz0000"})

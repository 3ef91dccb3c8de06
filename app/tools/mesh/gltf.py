"""A model anyone can open: the parts of a mesh version as binary glTF (GLB).

glTF wants metres and +Y up, right-handed, +Z towards the viewer. Patient LPS millimetres map
to it as glTF = 0.001 · M · LPS with M taking patient left to +X, superior to +Y and anterior to
+Z (a rotation, so triangles keep their winding). The file states the way back, glTF metres to
LPS millimetres, as a 4×4 matrix in ``asset.extras`` (and on each part's node). One node per
part, named as the part, with a material in the part's colour.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import trimesh

# LPS (x left, y posterior, z superior) -> glTF (x, y up, z towards the viewer).
LPS_TO_GLTF_AXES = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
MM_PER_M = 1000.0
DEFAULT_COLOUR = "#d8c8a8"


def gltf_to_lps_mm() -> np.ndarray:
    """4×4 matrix taking glTF positions (metres, +Y up) back to patient LPS millimetres."""
    out = np.eye(4)
    out[:3, :3] = MM_PER_M * LPS_TO_GLTF_AXES.T
    return out


def to_gltf_space(vertices_lps_mm: np.ndarray) -> np.ndarray:
    return (np.asarray(vertices_lps_mm, dtype=np.float64) @ LPS_TO_GLTF_AXES.T) / MM_PER_M


def _rgba(colour: str | None) -> list[float]:
    text = (colour or DEFAULT_COLOUR).lstrip("#")
    return [int(text[i : i + 2], 16) / 255 for i in (0, 2, 4)] + [1.0]


def _extras(pseudonym: str) -> dict:
    return {
        "medprint": {
            "case": pseudonym,
            "units": "metres; +Y up (superior), +Z anterior, +X patient left",
            "gltf_to_lps_mm": gltf_to_lps_mm().tolist(),
            "note": "patient LPS mm = gltf_to_lps_mm @ [x, y, z, 1] (row-major 4x4)",
        }
    }


def glb_bytes(
    parts: Mapping[str, tuple[np.ndarray, np.ndarray]],
    colours: Mapping[str, str | None],
    *,
    pseudonym: str,
) -> bytes:
    """The parts (name -> LPS-mm vertices, faces) as one GLB file."""
    scene = trimesh.Scene()
    for name, (vertices, faces) in parts.items():
        material = trimesh.visual.material.PBRMaterial(
            name=name, baseColorFactor=_rgba(colours.get(name)), metallicFactor=0.0
        )
        mesh = trimesh.Trimesh(to_gltf_space(vertices), faces, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(material=material)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    extras = _extras(pseudonym)

    def stamp(tree: dict) -> None:
        tree["asset"]["extras"] = extras
        for node in tree.get("nodes", []):
            node["extras"] = {"gltf_to_lps_mm": extras["medprint"]["gltf_to_lps_mm"]}

    out = io.BytesIO()
    out.write(
        trimesh.exchange.gltf.export_glb(scene, include_normals=True, tree_postprocessor=stamp)
    )
    return out.getvalue()

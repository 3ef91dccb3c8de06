"""The mesh on the scan (issue 16): drawing a bone mesh's contour on a slice view as it scrolls,
on the TCIA CT (512×512×134) with its whole bone surface (>= 250 HU, smoothed, every triangle).

Figures, per slice change of each view (the best of three passes over the slices that cut the
mesh, then the median over those slices: the machines these run on are shared, and a busy
neighbour otherwise decides the figure):

- contour: cutting the slice's triangles and painting the segments, against rebuilding the
  slice image itself (window lookup into an 8-bit image), which every scroll already pays;
- cut alone: our binned, vectorised cut against trimesh's ``mesh_plane`` on the same plane;
- repaint: the whole view's paint with the contour, against without it;
- sectioning: binning the mesh for the three views, once per version (in the worker),
  against building the mesh (marching cubes + smoothing).

Runs in a child process with Qt's offscreen platform, so Qt never loads into the runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks.common import REPO, SHARED_DATA, Row

CT = SHARED_DATA / "dicom" / "ct-abdomen-tcia-pancreas-134"


def run(quick: bool = False) -> list[Row]:
    if not CT.is_dir():
        print(f"bench_review: skipped, {CT} not found", file=sys.stderr)
        return []
    command = [sys.executable, "-m", "benchmarks.bench_review", "--child"]
    env = os.environ | {"QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run(
        [*command, *(["--quick"] if quick else [])],
        check=True, capture_output=True, text=True, cwd=REPO, env=env,
    ).stdout  # fmt: skip
    return [Row(**row) for row in json.loads(out.strip().splitlines()[-1])]


# --------------------------------------------------------------------------- child process


def _bone_mesh(volume, quick: bool):
    """The CT's bone surface as the Mesh panel's review preset makes it (no decimation)."""
    from app.tools.mesh.surface import extract_surface, smooth_surface

    bone = volume.array >= 250
    if quick:
        bone[:60] = bone[76:] = False
    start = time.perf_counter()
    mesh, _ = extract_surface(bone, volume)
    mesh, _ = smooth_surface(mesh, 0.5, measure=False)
    return mesh, time.perf_counter() - start


def _median_ms(times: list[list[float]]) -> float:
    """Median over slices of each slice's best pass, in ms."""
    import numpy as np

    return float(np.median(np.min(np.array(times), axis=0))) * 1000


def _per_slice(view, layer, mesh, slices) -> dict[str, float]:
    """Median ms per slice change: image rebuild, contour (cut + paint), cut alone, trimesh's
    cut, and the whole repaint with and without the contour."""
    names = ("image", "contour", "cut", "trimesh_cut", "repaint_with", "repaint_without")
    passes = [_one_pass(view, layer, mesh, slices) for _ in range(3)]
    return {name: _median_ms([p[n] for p in passes]) for n, name in enumerate(names)}


def _one_pass(view, layer, mesh, slices) -> list[list[float]]:
    import trimesh
    from PySide6 import QtGui

    state, geometry = view.state, view.geometry_
    image, contour, cut, anchor, with_c, without = [], [], [], [], [], []
    canvas = QtGui.QImage(view.size(), QtGui.QImage.Format.Format_ARGB32_Premultiplied)
    normal = geometry.slice_normal_lps()
    for number, s in enumerate(slices):
        view.slice_index = s
        start = time.perf_counter()
        view._rebuild_image()
        image.append(time.perf_counter() - start)
        view._cuts.clear()
        state.mesh_contours = [layer]
        painter = QtGui.QPainter(canvas)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        start = time.perf_counter()
        view._paint_contours(painter)
        contour.append(time.perf_counter() - start)
        painter.end()
        start = time.perf_counter()
        layer.sections[view.orientation].cut(s)
        cut.append(time.perf_counter() - start)
        origin = geometry.display_to_lps(0, 0, s)
        start = time.perf_counter()
        trimesh.intersections.mesh_plane(mesh, normal, origin)
        anchor.append(time.perf_counter() - start)
        both = (([layer], with_c), ([], without))  # in turn first: the first paint pays more
        for shown, times in both[:: 1 if number % 2 else -1]:
            state.mesh_contours = shown
            view._cuts.clear()
            view.slice_index = s
            start = time.perf_counter()
            view._rebuild_image()
            view._rebuild_overlay()
            view.repaint()
            times.append(time.perf_counter() - start)
    return [image, contour, cut, anchor, with_c, without]


def _child(quick: bool) -> None:
    import numpy as np
    from PySide6 import QtWidgets

    from app.imaging.load import load_series
    from app.viewers.contours import ContourLayer
    from app.viewers.slice_view import SliceView
    from app.viewers.state import ViewerState

    app = QtWidgets.QApplication([])
    volume = load_series(CT)
    mesh, build_s = _bone_mesh(volume, quick)
    start = time.perf_counter()
    layer = ContourLayer.build(
        "bone", "bone", (255, 210, 80), volume, vertices=mesh.vertices, faces=mesh.faces
    )
    section_s = time.perf_counter() - start
    state = ViewerState()
    state.set_volume(volume, "bone")
    rows = [
        {
            "name": f"review: section {len(mesh.faces) // 1000}k triangles, 3 views",
            "ours": section_s, "anchor_name": "building that mesh", "anchor": build_s,
            "goal": "once/version", "note": "in the worker",
        },
    ]  # fmt: skip
    for orientation in ("axial", "coronal", "sagittal"):
        view = SliceView(state, orientation)
        view.resize(700, 560)
        view.show()
        app.processEvents()
        section = layer.sections[orientation]
        cutting = [s for s in range(view.n_slices) if section.starts[s + 1] > section.starts[s]]
        step = max(1, len(cutting) // (6 if quick else 12))
        figures = _per_slice(view, layer, mesh, cutting[::step])
        segments = np.mean([len(section.cut(s).segments) for s in cutting[::step]])
        rows += [
            {
                "name": f"review: {orientation} contour per slice",
                "ours": figures["contour"], "anchor_name": "slice image rebuild",
                "anchor": figures["image"], "unit": "ms", "goal": "<= image",
                "note": f"cut + paint, {segments:.0f} segments",
            },
            {
                "name": f"review: {orientation} cut alone",
                "ours": figures["cut"], "anchor_name": "trimesh mesh_plane",
                "anchor": figures["trimesh_cut"], "unit": "ms", "goal": "< anchor",
            },
            {
                "name": f"review: {orientation} repaint with contour",
                "ours": figures["repaint_with"], "anchor_name": "repaint without",
                "anchor": figures["repaint_without"], "unit": "ms", "goal": "~1",
            },
        ]  # fmt: skip
        view.close()
    print(json.dumps(rows))


if __name__ == "__main__" and "--child" in sys.argv:
    _child("--quick" in sys.argv)

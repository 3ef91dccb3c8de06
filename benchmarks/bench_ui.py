"""GUI responsiveness on a 512×512×500 CT (the TCIA series resampled with SimpleITK).

Figures, each next to a bare pyvista render of the same data in the same run:

- slice scroll: median time from a mouse-wheel event to the repainted views (the scrolled
  view and the crosshair in the two others), against pyvista re-rendering the same 512×512
  slice as a textured plane (goal <= 30 ms);
- first render: from handing the opened case's volume to the view area until the three
  slice views and the 3D view have drawn, against a bare pyvista volume rendering of the
  same volume.

The measurement runs in a child process under a display (``xvfb-run`` when there is none),
so Qt never loads into the benchmark runner.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks.common import REPO, SHARED_DATA, Row

CT = SHARED_DATA / "dicom" / "ct-abdomen-tcia-pancreas-134"


def run(quick: bool = False) -> list[Row]:
    if not CT.is_dir():
        print(f"bench_ui: skipped, {CT} not found", file=sys.stderr)
        return []
    rows = _run_child(["--child"], quick, keyring=False)
    # Opening from a real (temporary) vault needs a Secret Service: a second child runs inside
    # a private keystore session, so the session does not colour the other figures.
    keyring = REPO / "scripts" / "with-keyring.sh"
    if (
        keyring.exists()
        and shutil.which("dbus-run-session")
        and shutil.which("gnome-keyring-daemon")
    ):
        rows += _run_child(["--child", "--vault"], quick, keyring=True)
    return [Row(**row) for row in rows]


def _run_child(flags: list[str], quick: bool, keyring: bool) -> list[dict]:
    command = [sys.executable, "-m", "benchmarks.bench_ui", *flags] + (["--quick"] if quick else [])
    if keyring:
        command = [str(REPO / "scripts" / "with-keyring.sh"), *command]
    if not os.environ.get("DISPLAY"):
        if shutil.which("xvfb-run") is None:
            print("bench_ui: skipped, no display and no xvfb-run", file=sys.stderr)
            return []
        command = ["xvfb-run", "-a", "-s", "-screen 0 1600x1200x24", *command]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


# --------------------------------------------------------------------------- child process


def _big_ct(quick: bool):
    """The TCIA CT resampled to 512×512×500 (or ×250 when quick), int16 HU."""
    import numpy as np
    import SimpleITK as sitk

    from app.imaging.load import load_series
    from app.imaging.volume import Volume

    source = load_series(CT)
    image = source.to_sitk()
    nk = 250 if quick else 500
    size = list(image.GetSize())
    spacing = list(image.GetSpacing())
    new_spacing = [spacing[0], spacing[1], spacing[2] * (size[2] - 1) / (nk - 1)]
    resampled = sitk.Resample(
        image,
        [size[0], size[1], nk],
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        new_spacing,
        image.GetDirection(),
        -1000,
        image.GetPixelID(),
    )
    volume = Volume.from_sitk(resampled, modality="CT")
    volume.array = volume.array.astype(np.int16, copy=False)
    return volume


def _settle(app) -> None:
    app.processEvents()
    app.processEvents()


def _slice_views_only(volume):
    """The three linked slice views in a window of the same size, without the 3D widget."""
    from PySide6 import QtWidgets

    from app.viewers.slice_view import SliceViewPanel
    from app.viewers.state import ViewerState

    window = QtWidgets.QWidget()
    grid = QtWidgets.QGridLayout(window)
    state = ViewerState(window)
    panels = {o: SliceViewPanel(state, o, window) for o in ("axial", "coronal", "sagittal")}
    grid.addWidget(panels["axial"], 0, 0)
    grid.addWidget(QtWidgets.QLabel("(no 3D view)"), 0, 1)
    grid.addWidget(panels["coronal"], 1, 0)
    grid.addWidget(panels["sagittal"], 1, 1)
    window.resize(1000, 820)
    window.show()
    state.set_volume(volume, "bone")
    window.slice_views = {o: p.view for o, p in panels.items()}
    return window


def _scroll_ms(app, area, steps: int) -> float:
    """A mouse-wheel event on the axial view, then the event loop until every view repainted."""
    import numpy as np
    from PySide6 import QtCore, QtGui

    view = area.slice_views["axial"]
    view.set_slice(view.n_slices // 2 - steps // 2)
    _settle(app)
    painted = []
    for orientation, v in area.slice_views.items():
        original = v.paintEvent

        def counting(event, original=original, orientation=orientation):
            original(event)
            painted.append(orientation)

        v.paintEvent = counting
    centre = QtCore.QPointF(view.width() / 2, view.height() / 2)
    times = []
    for _ in range(steps):
        painted.clear()
        wheel = QtGui.QWheelEvent(
            centre,
            view.mapToGlobal(centre),
            QtCore.QPoint(),
            QtCore.QPoint(0, 120),
            QtCore.Qt.MouseButton.NoButton,
            QtCore.Qt.KeyboardModifier.NoModifier,
            QtCore.Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        start = time.perf_counter()
        app.sendEvent(view, wheel)
        while len(set(painted)) < 3:  # the scrolled view and the crosshair in the two others
            app.processEvents()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000


def _bare_slice_ms(volume, steps: int) -> float:
    """pyvista alone, done well: the slice windowed with a numpy lookup table into a texture
    on a plane, then one render per step (pyvista's plain ``add_mesh`` of a 512×512 image
    takes over a second per frame here, so it would flatter us)."""
    import numpy as np
    import pyvista as pv

    nk, nj, ni = volume.shape
    k0 = nk // 2 - steps // 2
    lut = np.clip((np.arange(-32768, 32768, dtype=np.float32) + 600) * 255 / 2000, 0, 255)
    lut = lut.astype(np.uint8)
    image = pv.ImageData(dimensions=(ni, nj, 1))
    image.point_data["grey"] = lut[volume.array[k0].astype(np.int32).ravel() + 32768]
    texture = pv.Texture()
    texture.SetInputData(image)
    texture.SetInterpolate(True)
    width, height = ni * volume.spacing[0], nj * volume.spacing[1]
    plane = pv.Plane(center=(width / 2, height / 2, 0), i_size=width, j_size=height)
    plotter = pv.Plotter(off_screen=True, window_size=(480, 400))
    plotter.add_mesh(plane, texture=texture, lighting=False)
    plotter.view_xy()
    plotter.ren_win.Render()
    grey = image.point_data["grey"]
    times = []
    for k in range(k0 + 1, k0 + 1 + steps):
        start = time.perf_counter()
        grey[:] = lut[volume.array[k].astype(np.int32).ravel() + 32768]
        image.Modified()
        plotter.ren_win.Render()
        times.append(time.perf_counter() - start)
    plotter.close()
    return float(np.median(times)) * 1000


def _first_render_s(app, area, volume) -> float:
    """From handing over the volume until the slices and the 3D view have drawn."""
    start = time.perf_counter()
    area.show_volume(volume, "bone")
    for view in area.slice_views.values():
        view.repaint()
    area.slices_s = time.perf_counter() - start
    area.flush_3d()  # the deferred first 3D rendering, now
    area.view3d.wait_volume()  # prepared in the background, then rendered
    app.processEvents()
    return time.perf_counter() - start


def _open_from_vault_s(app, area, volume) -> tuple[float, float] | None:
    """(decrypt + load, then first render) of the volume stored as a case in a temporary vault;
    None without a keystore session."""
    if not os.environ.get("MEDPRINT_IN_KEYRING_SESSION"):
        return None
    import tempfile

    from app.case import Case
    from app.settings import resolve_paths
    from app.workflow import intake, users
    from app.workflow.actor import Actor

    with tempfile.TemporaryDirectory() as folder:
        os.environ["MEDPRINT_DATA_DIR"] = folder
        os.environ["MEDPRINT_KEYSTORE_SERVICE"] = f"medprint-bench-ui-{os.getpid()}"
        actor = Actor.current(resolve_paths())
        users.init_vault(actor)
        pseudonym = actor.vault.create_case({})
        Case(actor.vault, pseudonym).save_volume(volume)
        start = time.perf_counter()
        loaded = intake.load_case(actor, pseudonym)
        read = time.perf_counter() - start
        render = _first_render_s(app, area, loaded.volume)
    return read, render


def _bare_volume_s(volume) -> float:
    """pyvista alone: the full-resolution volume, default volume mapper, one frame."""
    import pyvista as pv

    start = time.perf_counter()
    nk, nj, ni = volume.shape
    image = pv.ImageData(dimensions=(ni, nj, nk), spacing=volume.spacing, origin=volume.origin)
    image.point_data["hu"] = volume.array.reshape(-1)
    plotter = pv.Plotter(off_screen=True, window_size=(500, 410))
    plotter.add_volume(image, scalars="hu", cmap="bone", opacity="sigmoid", clim=(100, 1500))
    plotter.render()
    plotter.screenshot(return_img=True)
    elapsed = time.perf_counter() - start
    plotter.close()
    return elapsed


def _vault_child(quick: bool) -> None:
    from app.ui.app import make_application

    app = make_application([])
    from app.viewers.layout import ViewArea

    volume = _big_ct(quick)
    area = ViewArea()
    area.resize(1000, 820)
    area.show()
    _settle(app)
    opened = _open_from_vault_s(app, area, volume)
    area.view3d.close()
    area.close()
    rows = []
    if opened is not None:
        read, render = opened
        bare_volume = _bare_volume_s(volume)
        shape = "×".join(str(v) for v in reversed(volume.shape))
        rows.append(
            {
                "name": f"ui: open case from the vault to first render, {shape}",
                "ours": read + render,
                "anchor_name": "bare pyvista volume render",
                "anchor": bare_volume,
                "unit": "s",
                "goal": "",
                "note": f"decrypt+load {read:.2f} s, slices+3D render {render:.2f} s",
            }
        )
    print(json.dumps(rows))


def _child(quick: bool) -> None:
    from app.ui.app import make_application

    app = make_application([])
    from app.viewers.layout import ViewArea

    volume = _big_ct(quick)
    steps = 15 if quick else 40
    area = ViewArea()
    area.resize(1000, 820)
    area.show()
    _settle(app)
    first = _first_render_s(app, area, volume)
    slices_s = area.slices_s
    scroll = _scroll_ms(app, area, steps)
    area.view3d.close()
    area.close()
    bare = _slice_views_only(volume)
    _settle(app)
    scroll_2d = _scroll_ms(app, bare, steps)
    bare.close()
    bare_slice = _bare_slice_ms(volume, steps)
    bare_volume = _bare_volume_s(volume)
    shape = "×".join(str(v) for v in reversed(volume.shape))
    rows = [
        {
            "name": f"ui: slice scroll step, {shape} CT (median)",
            "ours": scroll,
            "anchor_name": "bare pyvista textured-plane slice render",
            "anchor": bare_slice,
            "unit": "ms",
            "goal": "<= 30 ms",
            "note": f"{steps} steps, 3 linked views repainted",
        },
        {
            "name": "ui: slice scroll step, no 3D widget in the window",
            "ours": scroll_2d,
            "anchor_name": "bare pyvista textured-plane slice render",
            "anchor": bare_slice,
            "unit": "ms",
            "goal": "<= 30 ms",
            "note": "the QOpenGLWidget makes Qt compose the whole window with GL (llvmpipe)",
        },
        {
            "name": f"ui: first render after opening, {shape} CT",
            "ours": first,
            "anchor_name": "bare pyvista volume render",
            "anchor": bare_volume,
            "unit": "s",
            "goal": "",
            "note": f"3 slice views after {slices_s:.2f} s, then 3D (downsampled volume)",
        },
    ]
    print(json.dumps(rows))


if __name__ == "__main__":
    if "--child" in sys.argv and "--vault" in sys.argv:
        _vault_child("--quick" in sys.argv)
    elif "--child" in sys.argv:
        _child("--quick" in sys.argv)
    else:
        from benchmarks.__main__ import _print

        _print(run("--quick" in sys.argv))

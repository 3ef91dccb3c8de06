"""The window stays responsive (invariant 6): the longest event-loop stall, measured by a 10 ms
timer (``tests/ui/stall.py``), while a case opens, the bone tool runs, a mesh builds and a mesh
slices, on the real CT in a private vault. The goal is 100 ms; CI machines are shared and use a
software renderer, where the stalls left are mostly waiting (other processes, llvmpipe, the GIL
held by a worker): measured 0.1-0.25 s at load ~6 on 2 cores (Dec 4). The limit here is 1 s,
which a job moved back onto the GUI thread exceeds; ``benchmarks/bench_gui.py`` reports the
figures."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtWidgets

from tests.ui.conftest import grab_array
from tests.ui.stall import StallMeter

STALL_LIMIT_S = 1.0


@pytest.fixture
def window(styled_app, qtbot, data_dir, keystore_service):
    from app.settings import resolve_paths
    from app.ui.main_window import MainWindow

    win = MainWindow(resolve_paths())
    win.resize(1500, 920)
    win.show()
    qtbot.addWidget(win)
    qtbot.waitExposed(win)
    win.startup(open_sample=False)
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()
    qtbot.waitUntil(lambda: win.area.view3d._plotter is not None, timeout=60_000)
    qtbot.wait(300)  # the 3D view's first (OpenGL set-up) frame, before anything is measured
    yield win
    for box in win.findChildren(QtWidgets.QMessageBox):
        box.close()


def _case(window, volume) -> str:
    from app.case import Case

    vault = window.actor.vault
    pseudonym = vault.create_case({})
    Case(vault, pseudonym).save_volume(volume)
    window.refresh_cases()
    return pseudonym


def _ball(volume, radius_mm: float) -> np.ndarray:
    nk, nj, ni = volume.shape
    si, sj, sk = volume.spacing
    k, j, i = np.ogrid[:nk, :nj, :ni]
    ck, cj, ci = (nk - 1) / 2, (nj - 1) / 2, (ni - 1) / 2
    return ((i - ci) * si) ** 2 + ((j - cj) * sj) ** 2 + ((k - ck) * sk) ** 2 <= radius_mm**2


def test_stall_meter_sees_a_blocked_event_loop(styled_app, qtbot):
    import time

    with StallMeter() as meter:
        qtbot.wait(100)
        time.sleep(0.3)  # the GUI thread blocked
        qtbot.wait(50)
    assert 0.25 < meter.longest_s < 0.6, meter.report()
    assert "test_responsiveness" in meter.stalls[0].stack  # where it blocked
    assert meter.stalls[0].busy_s < 0.1  # asleep, not computing
    assert "waiting for a CPU" in meter.report()


def test_stall_meter_dumps_stacks_only_during_a_stall(styled_app, qtbot):
    import time

    with StallMeter(gil_dump_s=0.5) as smooth:
        qtbot.wait(1000)  # re-armed every 250 ms: never fires while the loop runs
    assert smooth.gil_dumps == ""
    with StallMeter(gil_dump_s=0.5) as blocked:
        qtbot.wait(50)
        time.sleep(0.8)
        qtbot.wait(50)
    assert "test_stall_meter_dumps_stacks_only_during_a_stall" in blocked.gil_dumps


def test_stall_meter_keeps_no_worker_data_alive(styled_app, qtbot):
    import gc
    import threading
    import time
    import weakref

    class Data:
        pass

    held, release = [], threading.Event()

    def worker() -> None:
        data = Data()  # a local of a frame the meter's watcher snapshots
        held.append(weakref.ref(data))
        release.wait(5.0)

    gc.disable()  # only reference counting may free it
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        with StallMeter(threshold_s=0.05) as meter:
            qtbot.wait(30)
            time.sleep(0.2)  # the watcher takes every thread's stack
            qtbot.wait(30)
        release.set()
        thread.join(5.0)
        assert "worker" in meter.stalls[0].stack
        assert held[0]() is None
    finally:
        gc.enable()


def test_stall_meter_notes_garbage_collections(styled_app):
    import gc

    with StallMeter(collection_s=0.0) as meter:
        gc.collect()
    assert any("generation 2 collected in MainThread" in c for c in meter.collections)
    assert "garbage collections: " in meter.report()
    noted = len(meter.collections)
    gc.collect()  # the meter has stopped listening
    assert len(meter.collections) == noted


def test_opening_a_case_never_blocks_and_shows_slices_first(window, qtbot, ct_volume, artifacts):
    pseudonym = _case(window, ct_volume)
    view3d = window.area.view3d
    signals = [view3d.volumeReady, window.caseOpened]
    with StallMeter() as meter, qtbot.waitSignals(signals, timeout=120_000):
        window.open_case(pseudonym)
    qtbot.wait(200)
    assert window.case is not None and window.case.pseudonym == pseudonym
    assert meter.longest_s < STALL_LIMIT_S, meter.report()
    axial = grab_array(window.area.slice_views["axial"])
    assert axial.std() > 20  # the CT is drawn
    image = view3d.image()
    assert image.std() > 10 and view3d.preset == "CT bone"  # the volume rendering is drawn
    shot = grab_array(window)
    assert shot.std() > 20
    window.save_screenshot(artifacts / "responsive-open.png", whole_window=True)


def test_bone_mesh_and_slice_keep_the_window_responsive(window, qtbot, ct_volume, artifacts):
    pseudonym = _case(window, ct_volume)
    signals = [window.area.view3d.volumeReady, window.caseOpened]
    with qtbot.waitSignals(signals, timeout=120_000):
        window.open_case(pseudonym)
    panel = window.segment_panel
    panel.select_tool("bone")
    with StallMeter() as bone, qtbot.waitSignal(panel.worker.finished, timeout=300_000):
        panel.apply_current()
    qtbot.wait(400)  # the overlay and the segment table refresh after the tool
    assert bone.longest_s < STALL_LIMIT_S, bone.report()
    assert panel.seg.voxel_count(panel.seg.segments[-1]) > 10_000
    seg = panel.seg
    part = seg.add_segment("ball")
    seg.modify(part, _ball(ct_volume, 15.0), "set")
    mesh_panel = window.mesh_panel
    qtbot.waitUntil(lambda: mesh_panel.segment.findText("ball") >= 0)
    mesh_panel.segment.setCurrentText("ball")
    mesh_panel.preset.setCurrentText("review")
    with StallMeter() as mesh, qtbot.waitSignal(mesh_panel.meshBuilt, timeout=300_000) as built:
        mesh_panel.build()
    qtbot.wait(300)
    assert mesh.longest_s < STALL_LIMIT_S, mesh.report()
    assert built.args[0].version == 1 and "mesh" in window.area.view3d.mesh_names()
    printer = window.print_panel
    printer.layer_height.setValue(0.3)
    with StallMeter() as slicing, qtbot.waitSignal(printer.sliced, timeout=300_000):
        printer.slice()
    qtbot.wait(300)
    assert slicing.longest_s < STALL_LIMIT_S, slicing.report()
    assert printer.result.analysis.layer_count > 50  # a 30 mm ball at 0.3 mm
    shot = grab_array(window)
    assert shot.std() > 20
    window.save_screenshot(artifacts / "responsive-sliced.png", whole_window=True)

"""The 3D view: volume rendering presets, meshes, a clipping plane, camera presets, screenshots.

The scene is in patient LPS millimetres. The volume is rendered from downsampled copies by
VTK's CPU ray caster, so it stays interactive with Mesa's software renderer: a fine copy (the
longest side about ``max_voxels_per_side`` voxels, at most 256) for still frames and a coarse one
while the user rotates. Both are prepared off the GUI thread (downsampling, VTK arrays and the
ray caster's gradient and shading tables) and handed over when ready, so opening a case never
waits for the 3D view. The image keeps its direction and origin through the actor's matrix.

VTK and pyvista are imported on first use: :meth:`View3D.prewarm` imports them in a
background thread once the window is up (pyvistaqt, which loads Qt bindings, on the GUI thread).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from app.imaging.volume import Volume
from app.viewers.imports import HEAVY_IMPORTS

if TYPE_CHECKING:
    from vtkmodules.vtkRenderingCore import vtkVolume

MAX_SIDE = 256  # the ray caster never gets more than 256 voxels a side
COARSE_SIDE = 96  # the copy rendered while the user rotates
# Frames a second a still frame aims at (the interactive rate is VTK's 15): one frame, volume
# and meshes, must stay within the GUI's 100 ms, so the ray caster gets about 80 ms of it
STILL_RATE = 12.0
_IMPORTED = threading.Event()
# Volume copies and mask surfaces are made here: long-lived threads, because starting a thread
# waits until it runs (up to a second on a loaded machine while another thread held the GIL).
_BACKGROUND = ThreadPoolExecutor(max_workers=2, thread_name_prefix="view3d")


def import_rendering() -> None:
    """Import the VTK modules and pyvista the view uses (once; thread-safe).

    pyvistaqt is not among them: it imports Qt bindings (qtpy), which must happen on the GUI
    thread (importing them in a worker while the event loop runs crashed the test suite), so
    :meth:`View3D._ensure_plotter` imports it there.
    """
    with HEAVY_IMPORTS:
        if _IMPORTED.is_set():
            return
        import pyvista  # noqa: F401, PLC0415
        import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401, PLC0415 (ray caster factory)
        from vtkmodules import vtkRenderingVolume  # noqa: F401, PLC0415

        _IMPORTED.set()


VOLUME_PRESETS = ("CT bone", "CT skin", "MR", "off")
# Camera presets: (direction from the focal point to the camera, view-up), in LPS.
CAMERA_PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0, -1, 0), (0, 0, 1)),
    "posterior": ((0, 1, 0), (0, 0, 1)),
    "left": ((1, 0, 0), (0, 0, 1)),
    "right": ((-1, 0, 0), (0, 0, 1)),
    "superior": ((0, 0, 1), (0, -1, 0)),
    "inferior": ((0, 0, -1), (0, -1, 0)),
}
CLIP_AXES = {"sagittal": (1, 0, 0), "coronal": (0, 1, 0), "axial": (0, 0, 1)}


def downsample_factors(volume: Volume, max_voxels_per_side: int = 160) -> tuple[int, int, int]:
    """Integer (fi, fj, fk) so the copy has about ``max_voxels_per_side`` voxels along its
    longest physical side (never more than :data:`MAX_SIDE` along any) and nearly isotropic
    voxels."""
    extent = np.array(volume.size_ijk) * np.array(volume.spacing)
    target = max(extent.max() / max_voxels_per_side, min(volume.spacing))
    factors = [max(1, round(target / s)) for s in volume.spacing]
    return tuple(max(f, -(-n // MAX_SIDE)) for f, n in zip(factors, volume.size_ijk, strict=True))


_CT_POINTS = {
    "CT bone": (
        ((-1000, (0, 0, 0)), (150, (0.62, 0.36, 0.18)), (400, (0.88, 0.74, 0.55)),
         (1200, (1.0, 0.97, 0.90)), (3000, (1, 1, 1))),
        ((-1000, 0), (140, 0), (300, 0.35), (700, 0.75), (3000, 0.85)),
    ),
    "CT skin": (
        ((-1000, (0, 0, 0)), (-500, (0.75, 0.5, 0.4)), (-100, (0.93, 0.73, 0.62)),
         (300, (0.98, 0.92, 0.85)), (3000, (1, 1, 1))),
        ((-1000, 0), (-600, 0), (-350, 0.25), (-100, 0.5), (200, 0.6), (3000, 0.9)),
    ),
}  # fmt: skip


def _transfer_functions(preset: str, values: np.ndarray) -> tuple[Any, Any]:
    """(colour, opacity) transfer functions of a preset; MR ramps on the percentiles."""
    from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction  # noqa: PLC0415
    from vtkmodules.vtkRenderingCore import vtkColorTransferFunction  # noqa: PLC0415

    color = vtkColorTransferFunction()
    opacity = vtkPiecewiseFunction()
    if preset in _CT_POINTS:
        colors, alphas = _CT_POINTS[preset]
        for v, rgb in colors:
            color.AddRGBPoint(v, *rgb)
        for v, a in alphas:
            opacity.AddPoint(v, a)
        return color, opacity
    # MR (and anything not calibrated): ramps on the intensity percentiles
    lo, mid, hi = np.percentile(values[:: max(1, values.size // 500_000)], [40, 80, 99.5])
    hi = max(hi, mid + 1)
    color.AddRGBPoint(float(lo), 0.1, 0.1, 0.1)
    color.AddRGBPoint(float(mid), 0.8, 0.75, 0.7)
    color.AddRGBPoint(float(hi), 1.0, 1.0, 1.0)
    opacity.AddPoint(float(lo), 0.0)
    opacity.AddPoint(float(mid), 0.15)
    opacity.AddPoint(float(hi), 0.6)
    return color, opacity


@dataclass
class RenderedVolume:
    """The two ray-cast actors of one volume and preset, ready to add to a renderer."""

    fine: vtkVolume
    coarse: vtkVolume
    values: np.ndarray  # the fine copy's samples (for the MR ramps of a later preset)


def volume_actor(
    image: Any, preset: str, placement: np.ndarray, samples_per_voxel: float = 2.0
) -> vtkVolume:
    """A CPU ray-cast volume actor of ``image`` with the preset's transfer functions, its
    gradient and shading tables computed here (so the first frame does not).

    Rays take ``samples_per_voxel`` samples per voxel of the image (VTK's default is one per
    millimetre whatever the voxel size: a downsampled copy then cost as much as the fine one).
    """
    from vtkmodules.util.numpy_support import vtk_to_numpy  # noqa: PLC0415
    from vtkmodules.vtkCommonMath import vtkMatrix4x4  # noqa: PLC0415
    from vtkmodules.vtkRenderingCore import vtkRenderer, vtkVolume, vtkVolumeProperty  # noqa: PLC0415
    from vtkmodules.vtkRenderingVolume import vtkFixedPointVolumeRayCastMapper  # noqa: PLC0415

    mapper = vtkFixedPointVolumeRayCastMapper()
    mapper.SetInputData(image)
    # The image sample distance (rays every 1.5-6 px) adapts to the frame time the view allows
    # (View3D: STILL_RATE when still, 15 frames a second while the user rotates).
    mapper.SetAutoAdjustSampleDistances(True)
    mapper.SetMinimumImageSampleDistance(1.5)
    mapper.SetMaximumImageSampleDistance(6.0)
    mapper.SetImageSampleDistance(3.0)  # the first frame, before any frame time is known
    mapper.SetBlendModeToComposite()
    mapper.SetSampleDistance(min(image.GetSpacing()) / samples_per_voxel)
    values = vtk_to_numpy(image.GetPointData().GetScalars())
    color, opacity = _transfer_functions(preset, values)
    prop = vtkVolumeProperty()
    prop.SetColor(color)
    prop.SetScalarOpacity(opacity)
    prop.SetInterpolationTypeToLinear()
    prop.ShadeOn()
    prop.SetAmbient(0.25)
    prop.SetDiffuse(0.8)
    prop.SetSpecular(0.2)
    actor = vtkVolume()
    actor.SetMapper(mapper)
    actor.SetProperty(prop)
    matrix = vtkMatrix4x4()
    matrix.DeepCopy(np.asarray(placement, dtype=float).ravel())
    actor.SetUserMatrix(matrix)
    scratch = vtkRenderer()  # no window: only the tables are computed, nothing is drawn
    scratch.AddVolume(actor)
    scratch.ResetCamera()
    _initialize_without_gil(mapper, scratch, actor)
    scratch.RemoveVolume(actor)
    return actor


_PER_VOLUME_INIT = (
    "_ZN32vtkFixedPointVolumeRayCastMapper23PerVolumeInitializationEP11vtkRendererP9vtkVolume"
)


def _address(obj: Any) -> int:
    """The C++ address of a wrapped VTK object (``__this__`` is ``_<hex>_p_<class>``)."""
    return int(obj.__this__[1:].split("_", 1)[0], 16)


def _initialize_without_gil(mapper: Any, renderer: Any, actor: Any) -> None:
    """``mapper.PerVolumeInitialization(renderer, actor)`` (the gradient and shading tables),
    called through ctypes so the GIL is released meanwhile: VTK's wrapper holds it for this
    method, which would stall the GUI thread for the whole computation."""
    import ctypes  # noqa: PLC0415

    import vtkmodules  # noqa: PLC0415

    try:
        library = ctypes.CDLL(str(Path(vtkmodules.__file__).parent / "libvtkRenderingVolume.so"))
        function = getattr(library, _PER_VOLUME_INIT)
    except (OSError, AttributeError):  # another VTK build: the wrapped call still works
        mapper.PerVolumeInitialization(renderer, actor)
        return
    function.restype = None
    function.argtypes = [ctypes.c_void_p] * 3
    function(_address(mapper), _address(renderer), _address(actor))


def _vtk_image(volume: Volume, max_voxels_per_side: int) -> tuple[Any, np.ndarray]:
    """A vtkImageData of the downsampled volume (its own copy of the samples) and the samples."""
    from vtkmodules.util.numpy_support import numpy_to_vtk  # noqa: PLC0415
    from vtkmodules.vtkCommonDataModel import vtkImageData  # noqa: PLC0415

    fi, fj, fk = downsample_factors(volume, max_voxels_per_side)
    sub = np.ascontiguousarray(volume.array[::fk, ::fj, ::fi])
    nk, nj, ni = sub.shape
    si, sj, sk = volume.spacing
    image = vtkImageData()
    image.SetDimensions(ni, nj, nk)
    image.SetSpacing(si * fi, sj * fj, sk * fk)
    scalars = numpy_to_vtk(sub.reshape(-1), deep=True)
    scalars.SetName("values")
    image.GetPointData().SetScalars(scalars)
    return image, sub


def placement_of(volume: Volume) -> np.ndarray:
    """4×4 matrix from the image's index-aligned frame at the origin to LPS."""
    placement = np.eye(4)
    placement[:3, :3] = volume.direction
    placement[:3, 3] = volume.origin
    return placement


def prepare_volume(volume: Volume, preset: str, max_voxels_per_side: int) -> RenderedVolume:
    """Both ray-cast actors of ``volume`` (fine and coarse), for any thread."""
    import_rendering()
    placement = placement_of(volume)
    fine_image, fine = _vtk_image(volume, min(max_voxels_per_side, MAX_SIDE))
    coarse_image, _ = _vtk_image(volume, min(COARSE_SIDE, max_voxels_per_side))
    return RenderedVolume(
        volume_actor(fine_image, preset, placement),
        volume_actor(coarse_image, preset, placement, samples_per_voxel=1.0),
        fine,
    )


def mask_surface(
    sub: np.ndarray,
    factors: tuple[int, int, int],
    spacing: tuple[float, float, float],
    placement: np.ndarray,
) -> Any:
    """A smoothed display surface (pyvista) of a downsampled mask in LPS, or None if empty."""
    import_rendering()
    import pyvista as pv  # noqa: PLC0415

    if not sub.any():
        return None
    nk, nj, ni = sub.shape
    image = pv.ImageData(
        dimensions=(ni, nj, nk), spacing=tuple(s * f for s, f in zip(spacing, factors, strict=True))
    )
    image.point_data["mask"] = sub.astype(np.uint8, copy=False).reshape(-1)
    surface = image.contour([0.5], scalars="mask").smooth_taubin(n_iter=20, pass_band=0.1)
    return display_surface(surface.transform(placement, inplace=False))


def display_surface(mesh: object, point_scalars: dict[str, np.ndarray] | None = None) -> Any:
    """A pyvista surface of ``mesh`` (pyvista, VTK or trimesh) with point normals, for
    :meth:`View3D.add_mesh`. Call it off the GUI thread: smooth shading needs the normals, and
    computed by ``add_mesh`` they stalled the window for seconds on a bone of a thin-slice CT."""
    import pyvista as pv  # noqa: PLC0415

    surface = pv.wrap(mesh)
    if not isinstance(surface, pv.PolyData):
        surface = surface.extract_surface()
    for name, values in (point_scalars or {}).items():
        surface.point_data[name] = values
    if surface.n_cells and surface.point_data.active_normals is None:
        surface = surface.compute_normals(cell_normals=False, split_vertices=False)
    return surface


class _Handover(QtCore.QObject):
    """Carries background results to the GUI thread (queued signals)."""

    ready = QtCore.Signal(int, object)
    surface = QtCore.Signal(int, object)


class View3D(QtWidgets.QWidget):
    """pyvistaqt-based 3D view of the current volume and any number of named meshes.

    ``volumeReady`` is emitted once a volume set with :meth:`set_volume` is rendered (its
    actors are prepared in a background thread).
    """

    meshesChanged = QtCore.Signal()
    presetChanged = QtCore.Signal(str)
    volumeReady = QtCore.Signal()

    def __init__(
        self, parent: QtWidgets.QWidget | None = None, max_voxels_per_side: int = 160
    ) -> None:
        super().__init__(parent)
        self.max_voxels_per_side = min(max_voxels_per_side, MAX_SIDE)
        self._plotter: Any = None
        self._layout = QtWidgets.QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QtWidgets.QLabel("3D view", self)
        self._placeholder.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet("background: #1a1c24; color: #808590;")
        self._layout.addWidget(self._placeholder)
        self.volume: Volume | None = None
        self.preset = "off"
        self._placement = np.eye(4)
        self._rendered: RenderedVolume | None = None
        self._generation = 0
        self._preparing = False
        self._handover = _Handover(self)
        queued = QtCore.Qt.ConnectionType.QueuedConnection
        self._handover.ready.connect(self._volume_prepared, queued)
        self._handover.surface.connect(self._surface_made, queued)
        self._meshes: dict[str, Any] = {}
        self._clip: Any = None
        self.setMinimumSize(160, 160)
        if _IMPORTED.is_set():
            self._ensure_plotter()

    # -- the VTK widget, made on first use ----------------------------------------------------
    @property
    def plotter(self) -> Any:
        """The pyvistaqt ``QtInteractor`` (created, and VTK imported, on first use)."""
        return self._ensure_plotter()

    def prewarm(self) -> None:
        """Import VTK and pyvista in a background thread (pyvistaqt on the GUI thread), then make the VTK widget.

        Call it once the window is shown: the window then appears without waiting for VTK.
        """
        if self._plotter is not None:
            return

        def work() -> None:
            import_rendering()
            self._handover.ready.emit(-1, None)

        threading.Thread(target=work, name="import-vtk", daemon=True).start()

    def _ensure_plotter(self) -> Any:
        if self._plotter is not None:
            return self._plotter
        import_rendering()
        with HEAVY_IMPORTS:
            from pyvistaqt import QtInteractor  # noqa: PLC0415

        # The QtInteractor is a QOpenGLWidget: with it in the window, Qt composes the whole
        # window with OpenGL on every repaint (on Mesa's llvmpipe that is most of a slice-scroll
        # step; see benchmarks/bench_ui.py). Hosting it in its own native window through a
        # window container avoided that but crashed VTK on re-render, so it stays embedded.
        # No multisampling: on a software renderer it doubled a mesh's frame (pyvista's theme
        # asks for 8, VTK gives 4). FXAA, tried instead, crashed here when enabled at set-up.
        plotter = QtInteractor(self, auto_update=False, multi_samples=0)
        plotter.set_background((0.10, 0.11, 0.14), top=(0.28, 0.30, 0.36))
        plotter.add_axes(xlabel="L", ylabel="P", zlabel="S", line_width=2)
        plotter.ren_win.AddObserver("StartEvent", self._pick_level_of_detail)
        # A still frame gets 1/STILL_RATE s: the ray caster widens its image sample distance
        # (from 1.5 px) when its last frame overran its share of that, as on a software
        # renderer or a busy machine; VTK's default still rate (0.0001) never limits it.
        plotter.iren.interactor.SetStillUpdateRate(STILL_RATE)
        plotter.ren_win.SetDesiredUpdateRate(STILL_RATE)
        self._layout.replaceWidget(self._placeholder, plotter.interactor)
        self._placeholder.hide()
        self._placeholder.deleteLater()
        self._plotter = plotter
        return plotter

    # -- volume -------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, preset: str | None = None) -> None:
        """Show a volume; ``preset`` defaults to CT bone for CT, MR otherwise.

        Returns at once: the downsampled copies and the ray caster's tables are prepared in a
        background thread and shown when ready (``volumeReady``).
        """
        self.volume = volume
        self._generation += 1
        self._remove_volume_actor()
        if volume is None:
            self._preparing = False
            self.render()
            return
        for name in list(self._meshes):
            self.remove_mesh(name)  # meshes belong to the previous volume
        self._placement = placement_of(volume)
        if preset is None:
            preset = "CT bone" if volume.modality == "CT" else "MR"
        self.set_preset(preset, render=False)
        self.camera_preset("anterior")  # the empty scene, framed for the volume
        self._preparing = True
        generation, side = self._generation, self.max_voxels_per_side
        prepared = "CT bone" if preset == "off" else preset

        def work() -> None:
            try:
                result: object = prepare_volume(volume, prepared, side)
            except Exception as exc:  # shown as a missing volume, never a crash
                result = exc
            self._handover.ready.emit(generation, result)

        _BACKGROUND.submit(work)

    @QtCore.Slot(int, object)
    def _volume_prepared(self, generation: int, result: object) -> None:
        if generation == -1:  # the background import finished
            if self.isVisible() and self._plotter is None:
                self._ensure_plotter()
                # The first frame sets up OpenGL (long on a software renderer): now, while the
                # window is idle, rather than when the first case opens.
                QtCore.QTimer.singleShot(0, self.render)
            return
        if generation != self._generation:
            return  # a newer volume was set meanwhile
        self._preparing = False
        if isinstance(result, RenderedVolume):
            self._rendered = result
            for actor in (result.fine, result.coarse):
                if self._clip is not None:
                    actor.GetMapper().AddClippingPlane(self._clip)
                self.plotter.renderer.AddVolume(actor)
            self._apply_preset()
        self.render()
        self.volumeReady.emit()

    @property
    def volume_pending(self) -> bool:
        """True while a volume's rendering is still being prepared."""
        return self._preparing

    def wait_volume(self, timeout_s: float = 60.0) -> bool:
        """Process events until the pending volume is shown (screenshots, tests)."""
        deadline = QtCore.QDeadlineTimer(int(timeout_s * 1000))
        while self._preparing and not deadline.hasExpired():
            QtCore.QCoreApplication.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 20)
            QtCore.QThread.msleep(2)
        return not self._preparing

    def set_preset(self, preset: str, render: bool = True) -> None:
        if preset not in VOLUME_PRESETS:
            msg = f"unknown volume rendering preset '{preset}'; use one of {', '.join(VOLUME_PRESETS)}"
            raise ValueError(msg)
        self.preset = preset
        self.presetChanged.emit(preset)
        self._apply_preset()
        if render:
            self.render()

    def _apply_preset(self) -> None:
        """The preset's transfer functions on both actors (the ray caster keeps its gradient
        tables: a preset change costs one frame)."""
        rendered = self._rendered
        if rendered is None:
            return
        shown = self.preset != "off"
        if shown:
            color, opacity = _transfer_functions(self.preset, rendered.values)
            for actor in (rendered.fine, rendered.coarse):
                actor.GetProperty().SetColor(color)
                actor.GetProperty().SetScalarOpacity(opacity)
        rendered.fine.SetVisibility(shown)
        rendered.coarse.SetVisibility(False)

    def _pick_level_of_detail(self, window: Any, _event: str) -> None:
        """Before each frame: the coarse copy while the user interacts, the fine one when still."""
        rendered = self._rendered
        if rendered is None or self.preset == "off":
            return
        moving = window.GetDesiredUpdateRate() > STILL_RATE
        rendered.fine.SetVisibility(not moving)
        rendered.coarse.SetVisibility(moving)

    @property
    def _volume_actor(self) -> Any:
        """The still-frame volume actor (None while none is shown)."""
        return self._rendered.fine if self._rendered is not None else None

    def _remove_volume_actor(self) -> None:
        if self._rendered is not None:
            for actor in (self._rendered.fine, self._rendered.coarse):
                self.plotter.renderer.RemoveVolume(actor)
            self._rendered = None

    # -- meshes -------------------------------------------------------------------------------
    def add_mesh(
        self,
        name: str,
        mesh: object,
        color: tuple[float, float, float] | str = (0.95, 0.90, 0.80),
        opacity: float = 1.0,
        scalars: str | None = None,
        *,
        clim: tuple[float, float] | None = None,
        cmap: str | None = None,
    ) -> None:
        """Show (or replace) a named surface in LPS mm: a pyvista/VTK mesh or a trimesh
        (coloured by its point array ``scalars`` over ``clim`` with ``cmap``, when given)."""
        import pyvista as pv  # noqa: PLC0415

        if name in self._meshes:
            self.remove_mesh(name)
        surface = pv.wrap(mesh)
        actor = self.plotter.add_mesh(
            surface,
            color=None if scalars else color,
            scalars=scalars,
            opacity=opacity,
            smooth_shading=True,
            name=f"mesh:{name}",
            reset_camera=False,
            render=False,
            clim=clim,
            cmap=cmap,
            show_scalar_bar=bool(scalars),
            scalar_bar_args={
                "title": scalars or "",
                "fmt": "%.2f",
                "n_labels": 3,
                "vertical": True,
                "position_x": 0.86,
                "position_y": 0.25,
                "height": 0.5,
                "width": 0.06,
                "title_font_size": 12,
                "label_font_size": 11,
            },
        )
        if self._clip is not None:
            actor.GetMapper().AddClippingPlane(self._clip)
        self._meshes[name] = actor
        self.render()
        self.meshesChanged.emit()

    def show_deviation(self, name: str, surface: object, scalars: str, limit_mm: float) -> None:
        """Show ``surface`` coloured by its signed distances ``scalars`` (mm) on a diverging
        map from -2×``limit_mm`` (blue, missing material) to +2×``limit_mm`` (red, excess),
        with a scalar bar, and point the camera at it."""
        span = 2.0 * float(limit_mm)
        self.add_mesh(name, surface, scalars=scalars, clim=(-span, span), cmap="coolwarm")
        self.frame_mesh(name)

    def show_mask_surface(
        self,
        name: str,
        mask: np.ndarray,
        color: tuple[float, float, float],
        opacity: float = 1.0,
    ) -> None:
        """Show a quick display surface of a voxel mask on the volume's grid (downsampled like
        the volume rendering; a preview, not the printable mesh). The surface is made in a
        background thread and appears when ready (``meshesChanged``); an empty mask removes it."""
        if self.volume is None or mask.shape != self.volume.shape:
            msg = "the mask is not on the shown volume's grid"
            raise ValueError(msg)
        factors = downsample_factors(self.volume, self.max_voxels_per_side)
        spacing, placement = self.volume.spacing, self._placement
        sub = np.ascontiguousarray(mask[:: factors[2], :: factors[1], :: factors[0]])
        generation = self._generation

        def work() -> None:
            try:
                surface = mask_surface(sub, factors, spacing, placement)
            except Exception as exc:  # shown as no surface, never a crash
                surface = exc
            self._handover.surface.emit(generation, (name, surface, color, opacity))

        _BACKGROUND.submit(work)

    @QtCore.Slot(int, object)
    def _surface_made(self, generation: int, made: tuple) -> None:
        name, surface, color, opacity = made
        if generation != self._generation:
            return
        if surface is None or isinstance(surface, Exception):
            self.remove_mesh(name)
            return
        self.add_mesh(name, surface, color=color, opacity=opacity)

    def set_mesh_style(
        self,
        name: str,
        color: tuple[float, float, float] | None = None,
        opacity: float | None = None,
        visible: bool | None = None,
    ) -> None:
        actor = self._meshes[name]
        if color is not None:
            actor.GetProperty().SetColor(*color)
        if opacity is not None:
            actor.GetProperty().SetOpacity(float(opacity))
        if visible is not None:
            actor.SetVisibility(bool(visible))
        self.render()

    def clip_plane(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(point, normal) in LPS mm of the current clipping plane, or None without one."""
        if self._clip is None:
            return None
        return np.array(self._clip.GetOrigin()), np.array(self._clip.GetNormal())

    def remove_mesh(self, name: str) -> None:
        actor = self._meshes.pop(name, None)
        if actor is not None:
            self.plotter.remove_actor(actor, render=False)
            self.render()
            self.meshesChanged.emit()

    def frame_mesh(self, name: str, margin: float = 1.4) -> None:
        """Point the camera at one mesh (keeping the viewing direction)."""
        bounds = np.array(self._meshes[name].GetBounds()).reshape(3, 2).T
        centre = bounds.mean(axis=0)
        radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1.0) * margin
        camera = self.plotter.camera
        direction = np.array(camera.position) - np.array(camera.focal_point)
        direction /= max(np.linalg.norm(direction), 1e-9)
        camera.focal_point = tuple(centre)
        distance = radius / np.tan(np.radians(camera.view_angle) / 2)
        camera.position = tuple(centre + direction * distance)
        self.plotter.renderer.ResetCameraClippingRange()
        self.render()

    def mesh_names(self) -> list[str]:
        return list(self._meshes)

    def mesh_style(self, name: str) -> tuple[tuple[float, float, float], float, bool]:
        """(colour, opacity, visible) of a named mesh."""
        actor = self._meshes[name]
        prop = actor.GetProperty()
        return tuple(prop.GetColor()), float(prop.GetOpacity()), bool(actor.GetVisibility())

    # -- clipping -----------------------------------------------------------------------------
    def set_clipping(self, axis: str | None, position_mm: float = 0.0, flip: bool = False) -> None:
        """Clip volume and meshes by the plane ``LPS[axis] = position_mm`` (None removes it).

        Keeps the side the axis points to (L, P or S), or the other side when ``flip``.
        """
        mappers = [a.GetMapper() for a in self._meshes.values()]
        if self._rendered is not None:
            mappers += [a.GetMapper() for a in (self._rendered.fine, self._rendered.coarse)]
        for mapper in mappers:
            mapper.RemoveAllClippingPlanes()
        if axis is None:
            self._clip = None
            self.render()
            return
        normal = np.array(CLIP_AXES[axis], dtype=float) * (-1 if flip else 1)
        origin = np.zeros(3)
        origin[list(CLIP_AXES).index(axis)] = position_mm
        from vtkmodules.vtkCommonDataModel import vtkPlane  # noqa: PLC0415

        plane = vtkPlane()
        plane.SetNormal(*normal)
        plane.SetOrigin(*origin)
        self._clip = plane
        for mapper in mappers:
            mapper.AddClippingPlane(plane)
        self.render()

    # -- camera and output --------------------------------------------------------------------
    def scene_bounds(self) -> np.ndarray:
        if self.volume is not None:
            return self.volume.bounds_lps()
        bounds = np.array(self.plotter.renderer.ComputeVisiblePropBounds()).reshape(3, 2).T
        return bounds

    def camera_preset(self, name: str) -> None:
        if name not in CAMERA_PRESETS:
            msg = f"unknown camera preset '{name}'; use one of {', '.join(CAMERA_PRESETS)}"
            raise ValueError(msg)
        towards, up = CAMERA_PRESETS[name]
        bounds = self.scene_bounds()
        centre = bounds.mean(axis=0)
        radius = max(float(np.linalg.norm(bounds[1] - bounds[0])) / 2, 1.0)
        camera = self.plotter.camera
        camera.focal_point = tuple(centre)
        camera.position = tuple(centre + np.array(towards, dtype=float) * radius * 3.5)
        camera.up = up
        self.plotter.renderer.ResetCamera(*np.ravel(bounds.T))
        camera.zoom(1.3)
        self.plotter.renderer.ResetCameraClippingRange()
        self.render()

    def render(self) -> None:
        """Schedule one repaint of the 3D view (several calls before it make one frame).

        The widget's paint renders the scene; rendering here as well (pyvista's
        ``plotter.render``) drew every change twice on the GUI thread, and a frame of a large
        mesh or of the volume on a software renderer is tens to hundreds of milliseconds.
        """
        self.plotter.interactor.update()

    def render_now(self) -> None:
        """Render the scene at once (before reading the frame back outside a paint)."""
        self.plotter.render()

    def image(self) -> np.ndarray:
        """The current rendering as an (h, w, 3) uint8 array (once a pending volume is shown)."""
        self.wait_volume()
        self.render_now()
        return np.asarray(self.plotter.screenshot(return_img=True))

    def screenshot(self, path: str | Path) -> Path:
        """Save the current rendering as PNG; returns the path."""
        path = Path(path)
        self.wait_volume()
        self.render_now()
        self.plotter.screenshot(str(path))
        return path

    def close(self) -> bool:
        if self._plotter is not None:
            self._plotter.close()
        return super().close()

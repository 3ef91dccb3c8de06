"""The 3D view: volume rendering presets, meshes, a clipping plane, camera presets, screenshots.

The scene is in patient LPS millimetres. The volume is rendered from a downsampled copy (the
longest side about ``max_voxels_per_side`` voxels) by VTK's CPU ray caster, so it stays
interactive with Mesa's software renderer; the image keeps its direction and origin through the actor's matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyvista as pv
import vtk
from PySide6 import QtCore, QtWidgets
from pyvistaqt import QtInteractor

from app.imaging.volume import Volume

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
    longest physical side and nearly isotropic voxels."""
    extent = np.array(volume.size_ijk) * np.array(volume.spacing)
    target = max(extent.max() / max_voxels_per_side, min(volume.spacing))
    return tuple(max(1, round(target / s)) for s in volume.spacing)


def downsampled_image(
    volume: Volume, max_voxels_per_side: int = 160
) -> tuple[pv.ImageData, np.ndarray]:
    """A pyvista image of the downsampled volume at the origin, and its 4×4 LPS placement."""
    fi, fj, fk = downsample_factors(volume, max_voxels_per_side)
    sub = np.ascontiguousarray(volume.array[::fk, ::fj, ::fi])
    nk, nj, ni = sub.shape
    si, sj, sk = volume.spacing
    image = pv.ImageData(dimensions=(ni, nj, nk), spacing=(si * fi, sj * fj, sk * fk))
    image.point_data["values"] = sub.reshape(-1)
    placement = np.eye(4)
    placement[:3, :3] = volume.direction
    placement[:3, 3] = volume.origin
    return image, placement


def _transfer_functions(
    preset: str, values: np.ndarray
) -> tuple[vtk.vtkColorTransferFunction, vtk.vtkPiecewiseFunction]:
    color = vtk.vtkColorTransferFunction()
    opacity = vtk.vtkPiecewiseFunction()
    if preset == "CT bone":
        for v, rgb in (
            (-1000, (0, 0, 0)),
            (150, (0.62, 0.36, 0.18)),
            (400, (0.88, 0.74, 0.55)),
            (1200, (1.0, 0.97, 0.90)),
            (3000, (1, 1, 1)),
        ):
            color.AddRGBPoint(v, *rgb)
        for v, a in ((-1000, 0), (140, 0), (300, 0.35), (700, 0.75), (3000, 0.85)):
            opacity.AddPoint(v, a)
    elif preset == "CT skin":
        for v, rgb in (
            (-1000, (0, 0, 0)),
            (-500, (0.75, 0.5, 0.4)),
            (-100, (0.93, 0.73, 0.62)),
            (300, (0.98, 0.92, 0.85)),
            (3000, (1, 1, 1)),
        ):
            color.AddRGBPoint(v, *rgb)
        for v, a in ((-1000, 0), (-600, 0), (-350, 0.25), (-100, 0.5), (200, 0.6), (3000, 0.9)):
            opacity.AddPoint(v, a)
    else:  # MR (and anything not calibrated): ramps on the intensity percentiles
        lo, mid, hi = np.percentile(values[:: max(1, values.size // 500_000)], [40, 80, 99.5])
        hi = max(hi, mid + 1)
        color.AddRGBPoint(float(lo), 0.1, 0.1, 0.1)
        color.AddRGBPoint(float(mid), 0.8, 0.75, 0.7)
        color.AddRGBPoint(float(hi), 1.0, 1.0, 1.0)
        opacity.AddPoint(float(lo), 0.0)
        opacity.AddPoint(float(mid), 0.15)
        opacity.AddPoint(float(hi), 0.6)
    return color, opacity


class View3D(QtWidgets.QWidget):
    """pyvistaqt-based 3D view of the current volume and any number of named meshes."""

    rendered = QtCore.Signal()
    meshesChanged = QtCore.Signal()
    presetChanged = QtCore.Signal(str)

    def __init__(
        self, parent: QtWidgets.QWidget | None = None, max_voxels_per_side: int = 160
    ) -> None:
        super().__init__(parent)
        self.max_voxels_per_side = max_voxels_per_side
        # The QtInteractor is a QOpenGLWidget: with it in the window, Qt composes the whole
        # window with OpenGL on every repaint (on Mesa's llvmpipe that is most of a slice-scroll
        # step; see benchmarks/bench_ui.py). Hosting it in its own native window through a
        # window container avoided that but crashed VTK on re-render, so it stays embedded.
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background((0.10, 0.11, 0.14), top=(0.28, 0.30, 0.36))
        self.plotter.add_axes(xlabel="L", ylabel="P", zlabel="S", line_width=2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plotter.interactor)
        self.volume: Volume | None = None
        self.preset = "off"
        self._image: pv.ImageData | None = None
        self._placement = np.eye(4)
        self._volume_actor: vtk.vtkVolume | None = None
        self._meshes: dict[str, vtk.vtkActor] = {}
        self._clip: vtk.vtkPlane | None = None
        self.setMinimumSize(160, 160)

    # -- volume -------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, preset: str | None = None) -> None:
        """Show a volume (downsampled); ``preset`` defaults to CT bone for CT, MR otherwise."""
        self.volume = volume
        self._remove_volume_actor()
        if volume is None:
            self._image = None
            self.render()
            return
        for name in list(self._meshes):
            self.remove_mesh(name)  # meshes belong to the previous volume
        self._image, self._placement = downsampled_image(volume, self.max_voxels_per_side)
        if preset is None:
            preset = "CT bone" if volume.modality == "CT" else "MR"
        self.set_preset(preset, render=False)
        self.camera_preset("anterior")  # one render for both

    def set_preset(self, preset: str, render: bool = True) -> None:
        if preset not in VOLUME_PRESETS:
            msg = f"unknown volume rendering preset '{preset}'; use one of {', '.join(VOLUME_PRESETS)}"
            raise ValueError(msg)
        self.preset = preset
        self.presetChanged.emit(preset)
        self._remove_volume_actor()
        if self._image is None or preset == "off":
            if render:
                self.render()
            return
        # The CPU ray caster (multi-threaded) beats the GPU one on Mesa's llvmpipe; its image
        # sample distance adapts while the user rotates and stays at 1.5 px for still frames.
        mapper = vtk.vtkFixedPointVolumeRayCastMapper()
        mapper.SetInputData(self._image)
        mapper.SetAutoAdjustSampleDistances(True)
        mapper.SetMinimumImageSampleDistance(1.5)
        mapper.SetMaximumImageSampleDistance(6.0)
        mapper.SetBlendModeToComposite()
        color, opacity = _transfer_functions(preset, self._image.point_data["values"])
        prop = vtk.vtkVolumeProperty()
        prop.SetColor(color)
        prop.SetScalarOpacity(opacity)
        prop.SetInterpolationTypeToLinear()
        prop.ShadeOn()
        prop.SetAmbient(0.25)
        prop.SetDiffuse(0.8)
        prop.SetSpecular(0.2)
        actor = vtk.vtkVolume()
        actor.SetMapper(mapper)
        actor.SetProperty(prop)
        actor.SetUserMatrix(pv.vtkmatrix_from_array(self._placement))
        if self._clip is not None:
            mapper.AddClippingPlane(self._clip)
        self.plotter.renderer.AddVolume(actor)
        self._volume_actor = actor
        if render:
            self.render()

    def _remove_volume_actor(self) -> None:
        if self._volume_actor is not None:
            self.plotter.renderer.RemoveVolume(self._volume_actor)
            self._volume_actor = None

    # -- meshes -------------------------------------------------------------------------------
    def add_mesh(
        self,
        name: str,
        mesh: object,
        color: tuple[float, float, float] | str = (0.95, 0.90, 0.80),
        opacity: float = 1.0,
        scalars: str | None = None,
    ) -> None:
        """Show (or replace) a named surface in LPS mm: a pyvista/VTK mesh or a trimesh."""
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

    def show_mask_surface(
        self,
        name: str,
        mask: np.ndarray,
        color: tuple[float, float, float],
        opacity: float = 1.0,
    ) -> int:
        """Show a quick display surface of a voxel mask on the volume's grid (downsampled like
        the volume rendering; a preview, not the printable mesh). Returns its triangle count;
        an empty mask removes the surface."""
        if self.volume is None or mask.shape != self.volume.shape:
            msg = "the mask is not on the shown volume's grid"
            raise ValueError(msg)
        fi, fj, fk = downsample_factors(self.volume, self.max_voxels_per_side)
        sub = np.ascontiguousarray(mask[::fk, ::fj, ::fi], dtype=np.uint8)
        if not sub.any():
            self.remove_mesh(name)
            return 0
        nk, nj, ni = sub.shape
        si, sj, sk = self.volume.spacing
        image = pv.ImageData(dimensions=(ni, nj, nk), spacing=(si * fi, sj * fj, sk * fk))
        image.point_data["mask"] = sub.reshape(-1)
        surface = image.contour([0.5], scalars="mask").smooth_taubin(n_iter=20, pass_band=0.1)
        surface = surface.transform(self._placement, inplace=False)
        self.add_mesh(name, surface, color=color, opacity=opacity)
        return int(surface.n_cells)

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
        if self._volume_actor is not None:
            mappers.append(self._volume_actor.GetMapper())
        for mapper in mappers:
            mapper.RemoveAllClippingPlanes()
        if axis is None:
            self._clip = None
            self.render()
            return
        normal = np.array(CLIP_AXES[axis], dtype=float) * (-1 if flip else 1)
        origin = np.zeros(3)
        origin[list(CLIP_AXES).index(axis)] = position_mm
        plane = vtk.vtkPlane()
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
        self.plotter.render()
        self.rendered.emit()

    def image(self) -> np.ndarray:
        """The current rendering as an (h, w, 3) uint8 array."""
        return np.asarray(self.plotter.screenshot(return_img=True))

    def screenshot(self, path: str | Path) -> Path:
        """Save the current rendering as PNG; returns the path."""
        path = Path(path)
        self.plotter.screenshot(str(path))
        return path

    def close(self) -> bool:
        self.plotter.close()
        return super().close()

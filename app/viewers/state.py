"""The state the linked views share: volume, crosshair point, window/level, overlay.

Views subscribe to the signals and redraw; nothing in here draws. The crosshair is a point in
patient LPS millimetres, so every view (2D or 3D) can place it on its own grid.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from app.imaging.volume import Volume
from app.viewers.contours import ContourLayer
from app.viewers.windowing import SEGMENT_COLORS, window_for


class ViewerState(QtCore.QObject):
    """Model of what the views show; emits one signal per kind of change."""

    volumeChanged = QtCore.Signal()
    cursorChanged = QtCore.Signal(object)  # np.ndarray LPS (3,)
    windowChanged = QtCore.Signal(float, float)  # width, level
    overlayChanged = QtCore.Signal()
    labelsEdited = QtCore.Signal()  # the label array's contents changed in place
    previewChanged = QtCore.Signal()
    meshContoursChanged = QtCore.Signal()  # the meshes drawn as contours on the slices
    markersChanged = QtCore.Signal()  # the points marked on the slices (review comments)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.cursor = np.zeros(3)
        self.window = (400.0, 40.0)
        self.window_preset = "soft tissue"
        self.labels: np.ndarray | None = None
        self.segment_colors: dict[int, tuple[int, int, int]] = {}
        self.segment_visible: dict[int, bool] = {}
        self.overlay_opacity = 0.5
        self.overlay_outline = False
        self.overlay_visible = True
        self.label_table: np.ndarray | None = None  # (N, 3) uint8 RGB per label value
        self.label_shown: np.ndarray | None = None  # (N,) bool per label value
        self.label_names: dict[int, str] = {}
        self.preview: tuple[float, float, tuple[int, int, int]] | None = None
        self.mesh_contours: list[ContourLayer] = []  # drawn in this order, the last on top
        self.markers: list[tuple[np.ndarray, str]] = []  # (LPS point, short label)

    # -- volume -------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, preset: str = "auto") -> None:
        """Show a new volume; resets the overlay and puts the crosshair at its centre."""
        self.volume = volume
        self.labels = None
        self.segment_colors = {}
        self.segment_visible = {}
        self.label_table = self.label_shown = None
        self.label_names = {}
        self.preview = None
        self.mesh_contours = []  # sectioned on the old grid
        if volume is not None:
            ni, nj, nk = volume.size_ijk
            self.cursor = volume.index_to_lps(np.array([(ni - 1) / 2, (nj - 1) / 2, (nk - 1) / 2]))
            self.window_preset = preset
            self.window = window_for(preset, volume.array)
        self.volumeChanged.emit()

    # -- crosshair ----------------------------------------------------------------------------
    def set_cursor(self, lps: np.ndarray) -> None:
        """Move the crosshair to the centre of the voxel containing an LPS point (clamped)."""
        lps = np.asarray(lps, dtype=float)
        if self.volume is not None:
            ijk = np.rint(self.volume.lps_to_index(lps))
            upper = np.array(self.volume.size_ijk) - 1
            ijk = np.clip(ijk, 0, upper)
            lps = self.volume.index_to_lps(ijk)
        self.cursor = lps
        self.cursorChanged.emit(lps.copy())

    # -- window -------------------------------------------------------------------------------
    def set_window(self, width: float, level: float, preset: str = "") -> None:
        self.window = (max(float(width), 1.0), float(level))
        self.window_preset = preset
        self.windowChanged.emit(*self.window)

    def apply_preset(self, preset: str) -> None:
        array = self.volume.array if self.volume is not None else None
        width, level = window_for(preset, array)
        self.set_window(width, level, preset)

    # -- overlay ------------------------------------------------------------------------------
    def set_labels(
        self,
        labels: np.ndarray | None,
        colors: dict[int, tuple[int, int, int]] | None = None,
    ) -> None:
        """Show a label map on the volume's grid (``labels[k, j, i]``, 0 = background)."""
        if labels is not None and self.volume is not None and labels.shape != self.volume.shape:
            msg = f"label map shape {labels.shape} differs from the volume's {self.volume.shape}"
            raise ValueError(msg)
        self.labels = labels
        if labels is None:
            self.label_table = self.label_shown = None
            self.label_names = {}
        if colors is not None:
            self.segment_colors = dict(colors)
        self.overlayChanged.emit()

    def set_label_table(
        self,
        labels: np.ndarray | None,
        table: np.ndarray,
        shown: np.ndarray | None = None,
        names: dict[int, str] | None = None,
    ) -> None:
        """Show ``labels`` coloured by an explicit table: value v is drawn ``table[v]`` (RGB)
        when ``shown[v]``. Used for bit-field segmentations, where a value is a set of segments."""
        table = np.asarray(table, dtype=np.uint8).reshape(-1, 3)
        self.label_table = table
        self.label_shown = (
            np.ones(len(table), dtype=bool) if shown is None else np.asarray(shown, dtype=bool)
        )
        self.label_names = dict(names or {})
        self.set_labels(labels)

    def overlay_table(self, max_value: int) -> np.ndarray:
        """(max_value + 1, 4) RGBA uint8 for label values 0..max_value with the current style."""
        opacity = 1.0 if self.overlay_outline else self.overlay_opacity
        alpha = round(float(np.clip(opacity, 0.0, 1.0)) * 255)
        out = np.zeros((max_value + 1, 4), dtype=np.uint8)
        if self.label_table is not None:
            n = min(len(self.label_table), max_value + 1)
            out[:n, :3] = self.label_table[:n]
            out[:n, 3] = np.where(self.label_shown[:n], alpha, 0)
        else:
            for value in range(1, max_value + 1):
                out[value, :3] = self.color_of(value)
                out[value, 3] = alpha if self.segment_visible.get(value, True) else 0
        out[0, 3] = 0
        return out

    def label_name(self, value: int) -> str:
        return self.label_names.get(value, f"segment {value}")

    def set_threshold_preview(
        self,
        lower: float | None,
        upper: float | None = None,
        rgb: tuple[int, int, int] = (80, 200, 255),
    ) -> None:
        """Tint voxels with ``lower <= value <= upper`` in the slice views (a live preview while
        a threshold is dragged); ``None`` removes it. Computed per displayed slice only."""
        if lower is None or upper is None:
            self.preview = None
        else:
            self.preview = (
                float(min(lower, upper)),
                float(max(lower, upper)),
                tuple(int(c) for c in rgb),
            )
        self.previewChanged.emit()

    def set_mesh_contours(self, layers: list[ContourLayer]) -> None:
        """Draw these meshes' cross-sections on the slice views (sectioned for the shown
        volume by :meth:`ContourLayer.build`); an empty list removes them."""
        self.mesh_contours = list(layers)
        self.meshContoursChanged.emit()

    def set_markers(self, markers: list[tuple[np.ndarray, str]]) -> None:
        """Mark these LPS points, each with a short label, on the slices through them."""
        self.markers = [(np.asarray(p, dtype=float), str(label)) for p, label in markers]
        self.markersChanged.emit()

    def set_segment_color(self, label: int, rgb: tuple[int, int, int]) -> None:
        self.segment_colors[label] = tuple(int(c) for c in rgb)
        self.overlayChanged.emit()

    def set_segment_visible(self, label: int, visible: bool) -> None:
        self.segment_visible[label] = bool(visible)
        self.overlayChanged.emit()

    def set_overlay_style(
        self,
        opacity: float | None = None,
        outline: bool | None = None,
        visible: bool | None = None,
    ) -> None:
        if opacity is not None:
            self.overlay_opacity = float(np.clip(opacity, 0.0, 1.0))
        if outline is not None:
            self.overlay_outline = bool(outline)
        if visible is not None:
            self.overlay_visible = bool(visible)
        self.overlayChanged.emit()

    def color_of(self, label: int) -> tuple[int, int, int]:
        return self.segment_colors.get(label, SEGMENT_COLORS[(label - 1) % len(SEGMENT_COLORS)])

"""The state the linked views share: volume, crosshair point, window/level, overlay.

Views subscribe to the signals and redraw; nothing in here draws. The crosshair is a point in
patient LPS millimetres, so every view (2D or 3D) can place it on its own grid.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from app.imaging.volume import Volume
from app.viewers.windowing import SEGMENT_COLORS, window_for


class ViewerState(QtCore.QObject):
    """Model of what the views show; emits one signal per kind of change."""

    volumeChanged = QtCore.Signal()
    cursorChanged = QtCore.Signal(object)  # np.ndarray LPS (3,)
    windowChanged = QtCore.Signal(float, float)  # width, level
    overlayChanged = QtCore.Signal()
    labelsEdited = QtCore.Signal()  # the label array's contents changed in place

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

    # -- volume -------------------------------------------------------------------------------
    def set_volume(self, volume: Volume | None, preset: str = "auto") -> None:
        """Show a new volume; resets the overlay and puts the crosshair at its centre."""
        self.volume = volume
        self.labels = None
        self.segment_colors = {}
        self.segment_visible = {}
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
        if colors is not None:
            self.segment_colors = dict(colors)
        self.overlayChanged.emit()

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

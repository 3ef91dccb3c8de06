"""The view area: three linked slice views and the 3D view, four-up or one at a time."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from app.imaging.volume import Volume
from app.viewers.geometry import ORIENTATIONS
from app.viewers.slice_view import SliceView, SliceViewPanel
from app.viewers.state import ViewerState
from app.viewers.view3d import View3D

LAYOUTS = ("four-up", "axial", "coronal", "sagittal", "3d")


class ViewArea(QtWidgets.QWidget):
    """Axial (top left), 3D (top right), coronal (bottom left), sagittal (bottom right)."""

    layoutChanged = QtCore.Signal(str)

    def __init__(
        self, state: ViewerState | None = None, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state or ViewerState(self)
        self.panels = {o: SliceViewPanel(self.state, o, self) for o in ORIENTATIONS}
        self.view3d = View3D(self)
        grid = QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(3)
        grid.addWidget(self.panels["axial"], 0, 0)
        grid.addWidget(self.view3d, 0, 1)
        grid.addWidget(self.panels["coronal"], 1, 0)
        grid.addWidget(self.panels["sagittal"], 1, 1)
        for index in (0, 1):  # four equal quarters, whatever the 3D view's placeholder asks
            grid.setColumnStretch(index, 1)
            grid.setRowStretch(index, 1)
        self.layout_name = "four-up"
        self.state.volumeChanged.connect(self._on_volume)
        self._preview = False  # the volume shown is a preview (no 3D rendering of it)
        for view in self.slice_views.values():
            view.maximizeRequested.connect(self.toggle_maximized)

    @property
    def slice_views(self) -> dict[str, SliceView]:
        return {o: p.view for o, p in self.panels.items()}

    def set_layout(self, name: str) -> None:
        if name not in LAYOUTS:
            msg = f"unknown layout '{name}'; use one of {', '.join(LAYOUTS)}"
            raise ValueError(msg)
        for orientation, panel in self.panels.items():
            panel.setVisible(name in ("four-up", orientation))
        self.view3d.setVisible(name in ("four-up", "3d"))
        self.layout_name = name
        self.layoutChanged.emit(name)

    def toggle_maximized(self, name: str) -> None:
        """Show ``name`` alone, or go back to four-up when it already is."""
        self.set_layout("four-up" if self.layout_name == name else name)

    def set_tool(self, tool: str) -> None:
        for view in self.slice_views.values():
            view.set_tool(tool)

    def set_units(self, units: str) -> None:
        for view in self.slice_views.values():
            view.units = units
            view.update()

    def clear_measurements(self) -> None:
        for view in self.slice_views.values():
            view.clear_measurements()

    def reset_views(self) -> None:
        for view in self.slice_views.values():
            view.reset_view()
        if self.state.volume is not None:
            self.view3d.camera_preset("anterior")

    def snapshot(self, widget: QtWidgets.QWidget | None = None) -> QtGui.QPixmap:
        """A picture of ``widget`` (this area by default, or the window holding it), with the
        3D view freshly rendered into it."""
        self.view3d.render_now()
        return (widget or self).grab()

    def show_volume(
        self, volume: Volume | None, window_preset: str = "auto", preview: bool = False
    ) -> None:
        """Show a volume in all four views (the 3D view downsamples it); a ``preview`` (a
        reduced image shown while the full one loads) in the slice views only."""
        self._preview = preview
        self.state.set_volume(volume, preset=window_preset)

    def _on_volume(self) -> None:
        # The slices paint first; the 3D view's first volume rendering (~2 s on a software
        # renderer) follows a moment later instead of holding the slices back.
        self._pending_3d = True
        QtCore.QTimer.singleShot(30, self.flush_3d)

    def flush_3d(self) -> None:
        """Give the 3D view the current volume now, if that is still pending."""
        if getattr(self, "_pending_3d", False):
            self._pending_3d = False
            volume = None if self._preview else self.state.volume
            if volume is not None or self.view3d.volume is not None:
                self.view3d.set_volume(volume)

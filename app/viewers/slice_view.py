"""A 2D slice view: window/level, scroll, zoom/pan, linked crosshair, overlay, ruler and angle.

Drawing works on the displayed slice only: the slice is a numpy view of the volume, one
lookup table turns it into 8-bit grey, and QPainter scales that image onto the widget. The
scaled image is cached as a pixmap, so moving the crosshair or the mouse repaints lines and
text only.

Mouse: left click/drag moves the crosshair (or draws with the ruler / angle tool), right drag
changes window (left-right) and level (up-down), middle drag or Shift+left drag pans, the
wheel scrolls slices, Ctrl+wheel zooms. Keys: Up/Down and PageUp/PageDown scroll, Home/End
jump, +/- zoom, R resets the view.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import shiboken6
from PySide6 import QtCore, QtGui, QtWidgets

from app.viewers.contours import ContourLayer, Cut
from app.viewers.geometry import SliceGeometry
from app.viewers.state import ViewerState
from app.viewers.windowing import WindowLut, overlay_rgba, premultiplied

# 3D Slicer's view colours: axial red, coronal green, sagittal yellow.
VIEW_COLORS = {
    "axial": QtGui.QColor(241, 90, 90),
    "coronal": QtGui.QColor(110, 200, 110),
    "sagittal": QtGui.QColor(237, 213, 84),
}
TOOLS = ("navigate", "ruler", "angle", "stroke")  # stroke: a drag handed to an editing tool
_TEXT = QtGui.QColor(230, 230, 230)
_MEASURE = QtGui.QColor(80, 220, 255)
_MARKER = QtGui.QColor(255, 240, 60)  # review comments' points
# Contours are 1 px lines drawn three times, one pixel apart (right, then down): as thick as
# a 2 px pen, without the stroker's cost (several ms per thousand segments here).
_CONTOUR_PASSES = ((0, 0), (1, 0), (-1, 1))
_CUTS_KEPT = 4096  # slice cuts kept per view (a few MB for a bone)
# Contours coloured by a value (distance in mm): blue (inside) through white to red (outside).
_VALUE_COLORS = [
    QtGui.QColor.fromHsvF(h, s, 1.0)
    for h, s in ((0.62, 0.9), (0.6, 0.6), (0.58, 0.3), (0.0, 0.0), (0.08, 0.3), (0.03, 0.6),
                 (0.0, 0.9))
]  # fmt: skip


@dataclass
class Measurement:
    """A ruler (2 points) or angle (3 points, vertex in the middle) on one slice, in LPS mm."""

    kind: str
    points: list[np.ndarray] = field(default_factory=list)
    slice_index: int = 0

    @property
    def complete(self) -> bool:
        return len(self.points) == (2 if self.kind == "ruler" else 3)

    def value(self) -> float:
        """Length in mm (ruler) or angle in degrees (angle)."""
        if self.kind == "ruler":
            return float(np.linalg.norm(self.points[1] - self.points[0]))
        a = self.points[0] - self.points[1]
        b = self.points[2] - self.points[1]
        denom = np.linalg.norm(a) * np.linalg.norm(b)
        if denom == 0:
            return 0.0
        return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / denom, -1.0, 1.0))))


def _contour_pen(color: QtGui.QColor, dash: bool) -> QtGui.QPen:
    pen = QtGui.QPen(color, 1.0)
    if dash:
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
    return pen


def _value_bins(layer: ContourLayer, cut: Cut) -> np.ndarray | None:
    """Each segment's colour in :data:`_VALUE_COLORS` (None: the layer's one colour)."""
    if layer.value_range is None or cut.values is None:
        return None
    low, high = layer.value_range
    scaled = (cut.values - low) / max(high - low, 1e-9) * (len(_VALUE_COLORS) - 1)
    return np.clip(np.rint(scaled), 0, len(_VALUE_COLORS) - 1).astype(int)


def _firsts(chains: list[np.ndarray]) -> np.ndarray:
    """Index of each chain's first segment in the cut (chains of K points have K - 1)."""
    lengths = np.array([len(c) - 1 for c in chains], dtype=int)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)


def _polygon(points: np.ndarray) -> QtGui.QPolygonF:
    """A polygon filled from numpy through its own memory: thousands of points without a
    Python object each (QPointF is two doubles)."""
    polygon = QtGui.QPolygonF()
    polygon.resize(len(points))
    memory = shiboken6.VoidPtr(polygon.data(), len(points) * 16, True)
    np.frombuffer(memory, dtype=np.float64).reshape(-1, 2)[:] = points
    return polygon


class SliceView(QtWidgets.QWidget):
    """One orientation of the shared volume; all views share a :class:`ViewerState`."""

    sliceChanged = QtCore.Signal(int)
    readoutChanged = QtCore.Signal(str)
    measurementAdded = QtCore.Signal(object)
    viewClicked = QtCore.Signal(object)  # LPS point of a left click, for editing tools
    strokeStarted = QtCore.Signal(object)  # LPS point; "stroke" tool only
    strokeMoved = QtCore.Signal(object)
    strokeEnded = QtCore.Signal()
    maximizeRequested = QtCore.Signal(str)  # double-click: this view alone, or back to four-up

    def __init__(
        self, state: ViewerState, orientation: str, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.orientation = orientation
        self.geometry_: SliceGeometry | None = None
        self.slice_index = 0
        self.zoom_factor = 1.0  # 1 = the slice fits the widget; see ``zoom``
        self.center_mm = QtCore.QPointF(0.0, 0.0)  # display-mm point at the widget centre
        self.tool = "navigate"
        self.units = "mm"
        self.smooth = True
        self.measurements: list[Measurement] = []
        self._pending: Measurement | None = None
        self._lut = WindowLut(*state.window)
        self._grey: np.ndarray | None = None
        self._image: QtGui.QImage | None = None
        self._overlay_buf: np.ndarray | None = None
        self._overlay: QtGui.QImage | None = None
        self._pixmap: QtGui.QPixmap | None = None
        self._pixmap_key: tuple | None = None
        self._drag: tuple[str, QtCore.QPointF, tuple] | None = None
        self._hover: QtCore.QPointF | None = None
        self._readout = ""
        self._cuts: dict[tuple[int, int], Cut] = {}  # (id(layer), slice) -> its cut there
        self.setMouseTracking(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(160, 160)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )
        state.volumeChanged.connect(self._on_volume)
        state.cursorChanged.connect(self._on_cursor)
        state.windowChanged.connect(self._on_window)
        state.overlayChanged.connect(self._on_overlay)
        state.labelsEdited.connect(self._on_overlay)
        state.previewChanged.connect(self._on_overlay)
        state.meshContoursChanged.connect(self._on_contours)
        state.markersChanged.connect(self.update)
        if state.volume is not None:
            self._on_volume()

    # -- public API ---------------------------------------------------------------------------
    @property
    def n_slices(self) -> int:
        return self.geometry_.n_slices if self.geometry_ else 0

    def set_slice(self, index: int) -> None:
        """Show slice ``index`` (clamped); moves the shared crosshair along this view's normal."""
        if self.geometry_ is None:
            return
        index = int(np.clip(index, 0, self.n_slices - 1))
        ijk = self.geometry_.lps_to_index(self.state.cursor)
        ijk[self.geometry_.n_axis] = index
        self.state.set_cursor(self.geometry_.index_to_lps(ijk))

    def scroll(self, steps: int) -> None:
        self.set_slice(self.slice_index + steps)

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            msg = f"unknown tool '{tool}'; use one of {', '.join(TOOLS)}"
            raise ValueError(msg)
        self.tool = tool
        self._pending = None
        cursor = (
            QtCore.Qt.CursorShape.ArrowCursor
            if tool == "navigate"
            else QtCore.Qt.CursorShape.CrossCursor
        )
        self.setCursor(cursor)
        self.update()

    def clear_measurements(self) -> None:
        self.measurements.clear()
        self._pending = None
        self.update()

    def reset_view(self) -> None:
        """Fit the slice into the widget, centred."""
        if self.geometry_ is None:
            return
        sx, sy = self.geometry_.pixel_mm
        self.zoom_factor = 1.0
        self.center_mm = QtCore.QPointF(
            (self.geometry_.width - 1) * sx / 2, (self.geometry_.height - 1) * sy / 2
        )
        self.update()

    @property
    def zoom(self) -> float:
        """Screen pixels per mm: the fit-to-widget scale times :attr:`zoom_factor`.

        Kept relative to the fit, so layout changes and window resizes keep the framing.
        """
        if self.geometry_ is None:
            return 1.0
        sx, sy = self.geometry_.pixel_mm
        width_mm, height_mm = self.geometry_.width * sx, self.geometry_.height * sy
        fit = 0.97 * min(max(self.width(), 1) / width_mm, max(self.height(), 1) / height_mm)
        return fit * self.zoom_factor

    def zoom_by(self, factor: float, anchor: QtCore.QPointF | None = None) -> None:
        """Zoom around ``anchor`` (widget pixels; the centre when None)."""
        anchor = (
            anchor if anchor is not None else QtCore.QPointF(self.width() / 2, self.height() / 2)
        )
        before = self.screen_to_mm(anchor)
        self.zoom_factor = float(np.clip(self.zoom_factor * factor, 0.05, 100.0))
        after = self.screen_to_mm(anchor)
        self.center_mm += before - after
        self.update()

    def readout(self) -> str:
        """The text shown for the point under the mouse (value and LPS position)."""
        return self._readout

    def displayed_range(self) -> tuple[float, float]:
        """Image values mapped to black and white with the current window."""
        width, level = self.state.window
        return level - width / 2, level + width / 2

    def slice_label(self) -> str:
        if self.geometry_ is None:
            return ""
        letter, mm = self.geometry_.slice_position_mm(self.slice_index)
        return f"{letter}: {mm:.1f} mm"

    # -- coordinates --------------------------------------------------------------------------
    def screen_to_mm(self, point: QtCore.QPointF) -> QtCore.QPointF:
        centre = QtCore.QPointF(self.width() / 2, self.height() / 2)
        return (point - centre) / self.zoom + self.center_mm

    def mm_to_screen(self, point: QtCore.QPointF) -> QtCore.QPointF:
        centre = QtCore.QPointF(self.width() / 2, self.height() / 2)
        return (point - self.center_mm) * self.zoom + centre

    def screen_to_lps(self, point: QtCore.QPointF) -> np.ndarray | None:
        if self.geometry_ is None:
            return None
        sx, sy = self.geometry_.pixel_mm
        mm = self.screen_to_mm(point)
        return self.geometry_.display_to_lps(mm.x() / sx, mm.y() / sy, self.slice_index)

    def lps_to_screen(self, lps: np.ndarray) -> QtCore.QPointF:
        assert self.geometry_ is not None
        col, row, _ = self.geometry_.lps_to_display(lps)
        sx, sy = self.geometry_.pixel_mm
        return self.mm_to_screen(QtCore.QPointF(col * sx, row * sy))

    def crosshair_screen(self) -> QtCore.QPointF | None:
        """Where the shared crosshair is drawn in this view (widget pixels)."""
        return None if self.geometry_ is None else self.lps_to_screen(self.state.cursor)

    # -- state slots --------------------------------------------------------------------------
    def _on_volume(self) -> None:
        volume = self.state.volume
        self.measurements.clear()
        self._pending = None
        if volume is None:
            self.geometry_ = None
            self._image = self._overlay = None
            self._cuts.clear()
            self._invalidate()
            self.update()
            return
        self.geometry_ = SliceGeometry.for_volume(volume, self.orientation)
        self._cuts.clear()
        self.slice_index = self.geometry_.slice_index_of(self.state.cursor)
        self._lut = WindowLut(*self.state.window)
        self._rebuild_image()
        self._rebuild_overlay()
        self.reset_view()
        self.sliceChanged.emit(self.slice_index)

    def _on_cursor(self, lps: np.ndarray) -> None:
        if self.geometry_ is None:
            return
        index = self.geometry_.slice_index_of(lps)
        if index != self.slice_index:
            self.slice_index = index
            self._rebuild_image()
            self._rebuild_overlay()
            self._update_readout()
            self.sliceChanged.emit(index)
        self.update()

    def _on_window(self, width: float, level: float) -> None:
        self._lut = WindowLut(width, level)
        self._rebuild_image()
        self.update()

    def _on_overlay(self) -> None:
        self._rebuild_overlay()
        self.update()

    def _on_contours(self) -> None:
        self._cuts.clear()
        self.update()

    # -- image building -----------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._pixmap = None
        self._pixmap_key = None

    def _rebuild_image(self) -> None:
        if self.geometry_ is None or self.state.volume is None:
            return
        plane = self.geometry_.slice_of(self.state.volume.array, self.slice_index)
        grey = self._lut.apply(plane)
        if not grey.flags.c_contiguous:
            grey = np.ascontiguousarray(grey)
        self._grey = grey
        rows, cols = grey.shape
        self._image = QtGui.QImage(
            grey.data, cols, rows, cols, QtGui.QImage.Format.Format_Grayscale8
        )
        self._invalidate()

    def _rebuild_overlay(self) -> None:
        """The segmentation (and threshold preview) layer of the displayed slice."""
        self._overlay = None
        rgba = self._labels_rgba()
        preview = self._preview_rgba()
        if preview is not None:
            rgba = preview if rgba is None else np.where(preview[..., 3:4] > 0, preview, rgba)
        if rgba is None:
            self._invalidate()
            return
        rgba = np.ascontiguousarray(rgba)  # premultiplied: the colours were, before the lookup
        self._overlay_buf = rgba
        rows, cols = rgba.shape[:2]
        self._overlay = QtGui.QImage(
            rgba.data, cols, rows, cols * 4, QtGui.QImage.Format.Format_RGBA8888_Premultiplied
        )
        self._invalidate()

    def _labels_rgba(self) -> np.ndarray | None:
        labels = self.state.labels
        if self.geometry_ is None or labels is None or not self.state.overlay_visible:
            return None
        plane = self.geometry_.slice_of(labels, self.slice_index)
        if not plane.any():
            return None
        table = premultiplied(self.state.overlay_table(int(plane.max())))
        return overlay_rgba(plane, table, outline=self.state.overlay_outline)

    def _preview_rgba(self) -> np.ndarray | None:
        preview = self.state.preview
        if self.geometry_ is None or preview is None or self.state.volume is None:
            return None
        lower, upper, rgb = preview
        plane = self.geometry_.slice_of(self.state.volume.array, self.slice_index)
        inside = (plane >= lower) & (plane <= upper)
        out = np.zeros((*plane.shape, 4), dtype=np.uint8)
        out[inside] = premultiplied(np.array([*rgb, 150]))
        return out

    def _scaled_pixmap(self) -> tuple[QtGui.QPixmap, QtCore.QPointF] | None:
        """The slice (and overlay) scaled to the screen, cached until image or view changes."""
        if self._image is None or self.geometry_ is None:
            return None
        sx, sy = self.geometry_.pixel_mm
        top_left = self.mm_to_screen(QtCore.QPointF(-0.5 * sx, -0.5 * sy))
        width = self.geometry_.width * sx * self.zoom
        height = self.geometry_.height * sy * self.zoom
        key = (
            round(top_left.x(), 2),
            round(top_left.y(), 2),
            round(width, 2),
            round(height, 2),
            self.size().toTuple(),
        )
        if self._pixmap is None or self._pixmap_key != key:
            pixmap = QtGui.QPixmap(self.size())
            pixmap.fill(QtCore.Qt.GlobalColor.black)
            painter = QtGui.QPainter(pixmap)
            painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, self.smooth)
            target = QtCore.QRectF(top_left.x(), top_left.y(), width, height)
            painter.drawImage(target, self._image)
            if self._overlay is not None:
                painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, False)
                painter.drawImage(target, self._overlay)
            painter.end()
            self._pixmap, self._pixmap_key = pixmap, key
        return self._pixmap, QtCore.QPointF(0, 0)

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        cached = self._scaled_pixmap()
        if cached is None:
            painter.fillRect(self.rect(), QtCore.Qt.GlobalColor.black)
            painter.setPen(_TEXT)
            painter.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "No volume loaded")
            painter.end()
            return
        painter.drawPixmap(0, 0, cached[0])
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        self._paint_contours(painter)
        self._paint_markers(painter)
        self._paint_crosshair(painter)
        self._paint_measurements(painter)
        self._paint_text(painter)
        painter.setPen(QtGui.QPen(VIEW_COLORS[self.orientation], 2 if self.hasFocus() else 1))
        painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.end()

    def _paint_crosshair(self, painter: QtGui.QPainter) -> None:
        point = self.crosshair_screen()
        if point is None:
            return
        others = [o for o in VIEW_COLORS if o != self.orientation]
        # The vertical line is the plane of the view whose normal is screen-right, and so on.
        vertical, horizontal = self._crosshair_colors(others)
        gap = 8
        painter.setPen(QtGui.QPen(vertical, 1))
        painter.drawLine(QtCore.QPointF(point.x(), 0), QtCore.QPointF(point.x(), point.y() - gap))
        painter.drawLine(
            QtCore.QPointF(point.x(), point.y() + gap), QtCore.QPointF(point.x(), self.height())
        )
        painter.setPen(QtGui.QPen(horizontal, 1))
        painter.drawLine(QtCore.QPointF(0, point.y()), QtCore.QPointF(point.x() - gap, point.y()))
        painter.drawLine(
            QtCore.QPointF(point.x() + gap, point.y()), QtCore.QPointF(self.width(), point.y())
        )

    def contour_cut(self, layer: ContourLayer) -> Cut:
        """``layer``'s cross-section on the shown slice (display mm), kept until the layers
        change, so scrolling back over slices seen before costs no cutting."""
        key = (id(layer), self.slice_index)
        cut = self._cuts.get(key)
        if cut is None:
            if len(self._cuts) >= _CUTS_KEPT:
                self._cuts.clear()
            cut = layer.sections[self.orientation].cut(self.slice_index)
            self._cuts[key] = cut
        return cut

    def contour_screen_segments(self, layer: ContourLayer) -> np.ndarray:
        """(M, 2, 2) widget pixels of ``layer``'s segments on the shown slice."""
        return self._to_screen(self.contour_cut(layer).segments)

    def _to_screen(self, mm: np.ndarray) -> np.ndarray:
        """Display mm (..., 2) to widget pixels, as :meth:`mm_to_screen` for many points."""
        centre = np.array([self.width() / 2, self.height() / 2])
        return (mm - np.array([self.center_mm.x(), self.center_mm.y()])) * self.zoom + centre

    def _paint_contours(self, painter: QtGui.QPainter) -> None:
        layers = [layer for layer in self.state.mesh_contours if self.orientation in layer.sections]
        for layer in layers:
            cut = self.contour_cut(layer)
            if not len(cut.segments):
                continue
            bins = _value_bins(layer, cut)
            colours = [QtGui.QColor(*layer.colour)] if bins is None else _VALUE_COLORS
            pens = [_contour_pen(c, layer.style == "dash") for c in colours]
            on_screen = Cut(self._to_screen(cut.segments), cut.starts, cut.values)
            chains = on_screen.polylines(bins)
            firsts = np.zeros(len(chains), dtype=int) if bins is None else bins[_firsts(chains)]
            polygons = [_polygon(chain) for chain in chains]
            painter.save()
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
            for dx, dy in _CONTOUR_PASSES:
                painter.translate(dx, dy)
                for polygon, colour in zip(polygons, firsts, strict=True):
                    painter.setPen(pens[colour])
                    painter.drawPolyline(polygon)
            painter.restore()
        if layers:
            self._paint_legend(painter, layers)

    def _paint_markers(self, painter: QtGui.QPainter) -> None:
        """A ring and its label at each marked point within half a slice of this one."""
        assert self.geometry_ is not None
        pen = QtGui.QPen(_MARKER, 2.0)
        for point, label in self.state.markers:
            if abs(self.geometry_.lps_to_display(point)[2] - self.slice_index) > 0.5:
                continue
            at = self.lps_to_screen(point)
            painter.setPen(pen)
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawEllipse(at, 7.0, 7.0)
            self._text_with_shadow(painter, at + QtCore.QPointF(9, -9), label, _MARKER)

    def _paint_legend(self, painter: QtGui.QPainter, layers: list[ContourLayer]) -> None:
        """One line per contour layer, bottom right: a line in its colour and style, its label."""
        metrics = QtGui.QFontMetricsF(painter.font())
        line = metrics.height()
        y = self.height() - 8 - line * (len(layers) - 1)
        for layer in layers:
            text = layer.label
            if layer.value_range is not None:
                text += f"  ({layer.value_range[0]:+.1f} to {layer.value_range[1]:+.1f} mm)"
            x = self.width() - metrics.horizontalAdvance(text) - 40
            color = QtGui.QColor(*layer.colour)
            pen = QtGui.QPen(color, 2.0)
            if layer.style == "dash":
                pen.setStyle(QtCore.Qt.PenStyle.DashLine)
            painter.setPen(pen)
            painter.drawLine(QtCore.QPointF(x, y - line / 3), QtCore.QPointF(x + 26, y - line / 3))
            self._text_with_shadow(painter, QtCore.QPointF(x + 32, y), text, color)
            y += line

    def _crosshair_colors(self, others: list[str]) -> tuple[QtGui.QColor, QtGui.QColor]:
        pairs = {
            "axial": ("sagittal", "coronal"),
            "coronal": ("sagittal", "axial"),
            "sagittal": ("coronal", "axial"),
        }
        vertical, horizontal = pairs[self.orientation]
        return VIEW_COLORS[vertical], VIEW_COLORS[horizontal]

    def _paint_measurements(self, painter: QtGui.QPainter) -> None:
        items = [m for m in self.measurements if m.slice_index == self.slice_index]
        if self._pending is not None:
            items.append(self._pending)
        pen = QtGui.QPen(_MEASURE, 1.5)
        for m in items:
            points = [self.lps_to_screen(p) for p in m.points]
            painter.setPen(pen)
            painter.setBrush(_MEASURE)
            for a, b in itertools.pairwise(points):
                painter.drawLine(a, b)
            for p in points:
                painter.drawEllipse(p, 2.5, 2.5)
            if m.complete:
                text = self._format_length(m.value()) if m.kind == "ruler" else f"{m.value():.1f}°"
                anchor = points[1] if m.kind == "angle" else (points[0] + points[1]) / 2
                self._text_with_shadow(painter, anchor + QtCore.QPointF(6, -6), text, _MEASURE)

    def _format_length(self, mm: float) -> str:
        if self.units == "cm":
            return f"{mm / 10:.2f} cm"
        if self.units == "in":
            return f"{mm / 25.4:.3f} in"
        return f"{mm:.1f} mm"

    def _paint_text(self, painter: QtGui.QPainter) -> None:
        assert self.geometry_ is not None
        font = painter.font()
        font.setPointSizeF(9)
        painter.setFont(font)
        metrics = QtGui.QFontMetricsF(font)
        line = metrics.height()
        title = f"{self.orientation.capitalize()}  {self.slice_label()}"
        self._text_with_shadow(
            painter, QtCore.QPointF(6, 4 + line * 0.8), title, VIEW_COLORS[self.orientation]
        )
        counter = f"slice {self.slice_index + 1}/{self.n_slices}"
        self._text_with_shadow(painter, QtCore.QPointF(6, 4 + line * 1.8), counter, _TEXT)
        width, level = self.state.window
        wl = f"W {width:.0f}  L {level:.0f}"
        self._text_with_shadow(
            painter,
            QtCore.QPointF(self.width() - metrics.horizontalAdvance(wl) - 6, 4 + line * 0.8),
            wl,
            _TEXT,
        )
        if self._readout:
            self._text_with_shadow(
                painter, QtCore.QPointF(6, self.height() - 6), self._readout, _TEXT
            )
        letters = self.geometry_.edge_letters()
        bold = QtGui.QFont(font)
        bold.setBold(True)
        bold.setPointSizeF(11)
        painter.setFont(bold)
        bm = QtGui.QFontMetricsF(bold)
        w, h = self.width(), self.height()
        spots = {
            "left": QtCore.QPointF(6, h / 2 + bm.ascent() / 2),
            "right": QtCore.QPointF(
                w - bm.horizontalAdvance(letters["right"]) - 6, h / 2 + bm.ascent() / 2
            ),
            "top": QtCore.QPointF(
                w / 2 - bm.horizontalAdvance(letters["top"]) / 2, 4 + bm.ascent()
            ),
            "bottom": QtCore.QPointF(w / 2 - bm.horizontalAdvance(letters["bottom"]) / 2, h - 6),
        }
        for edge, spot in spots.items():
            self._text_with_shadow(painter, spot, letters[edge], QtGui.QColor(255, 210, 90))

    @staticmethod
    def _text_with_shadow(
        painter: QtGui.QPainter, at: QtCore.QPointF, text: str, color: QtGui.QColor
    ) -> None:
        painter.setPen(QtGui.QColor(0, 0, 0, 200))
        painter.drawText(at + QtCore.QPointF(1, 1), text)
        painter.setPen(color)
        painter.drawText(at, text)

    # -- readout ------------------------------------------------------------------------------
    def _update_readout(self) -> None:
        if self._hover is None or self.geometry_ is None or self.state.volume is None:
            return
        lps = self.screen_to_lps(self._hover)
        ijk = np.rint(self.state.volume.lps_to_index(lps)).astype(int)
        size = np.array(self.state.volume.size_ijk)
        if np.any(ijk < 0) or np.any(ijk >= size):
            self._readout = ""
        else:
            i, j, k = ijk
            value = self.state.volume.array[k, j, i]
            unit = " HU" if self.state.volume.modality == "CT" else ""
            number = (
                f"{value:.0f}" if np.issubdtype(type(value), np.integer) else f"{float(value):.4g}"
            )
            label = ""
            if self.state.labels is not None and self.state.labels[k, j, i]:
                label = f"  {self.state.label_name(int(self.state.labels[k, j, i]))}"
            x, y, z = lps
            self._readout = f"{number}{unit}  at ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS{label}"
        self.readoutChanged.emit(self._readout)

    # -- events -------------------------------------------------------------------------------
    def resizeEvent(self, event: QtGui.QResizeEvent) -> None:
        super().resizeEvent(event)
        self._invalidate()

    def wheelEvent(self, event: QtGui.QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps == 0:
            return
        if event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(1.15**steps, event.position())
        else:
            self.scroll(int(math.copysign(max(1, abs(round(steps))), steps)))
        event.accept()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        key = QtCore.Qt.Key
        moves = {key.Key_Up: 1, key.Key_Down: -1, key.Key_PageUp: 10, key.Key_PageDown: -10}
        if event.key() in moves:
            self.scroll(moves[event.key()])
        elif event.key() == key.Key_Home:
            self.set_slice(0)
        elif event.key() == key.Key_End:
            self.set_slice(self.n_slices - 1)
        elif event.key() in (key.Key_Plus, key.Key_Equal):
            self.zoom_by(1.2)
        elif event.key() == key.Key_Minus:
            self.zoom_by(1 / 1.2)
        elif event.key() == key.Key_R:
            self.reset_view()
        elif event.key() == key.Key_Escape and self._pending is not None:
            self._pending = None
            self.update()
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        if self.geometry_ is None:
            return
        self.setFocus()
        pos = event.position()
        button = event.button()
        buttons = QtCore.Qt.MouseButton
        shift = bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        if button == buttons.MiddleButton or (button == buttons.LeftButton and shift):
            self._drag = ("pan", pos, (QtCore.QPointF(self.center_mm),))
        elif button == buttons.RightButton:
            self._drag = ("window", pos, self.state.window)
        elif button == buttons.LeftButton:
            lps = self.screen_to_lps(pos)
            if self.tool == "navigate":
                self._drag = ("cursor", pos, ())
                self.state.set_cursor(lps)
                self.viewClicked.emit(lps)
            elif self.tool == "stroke":
                self._drag = ("stroke", pos, ())
                self.strokeStarted.emit(lps)
            else:
                self._tool_press(lps)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        pos = event.position()
        self._hover = pos
        self._update_readout()
        if self._pending is not None and self.geometry_ is not None:
            lps = self.screen_to_lps(pos)
            if self._drag is not None and self._drag[0] == "measure":
                self._pending.points[-1] = lps
            elif len(self._pending.points) >= 1 and not self._pending.complete:
                self._preview_point(lps)
        if self._drag is None:
            self.update()
            return
        kind, start, saved = self._drag
        delta = pos - start
        if kind == "pan":
            self.center_mm = saved[0] - delta / self.zoom
            self.update()
        elif kind == "window":
            width, level = saved
            rate = max(width, 50.0) / 250.0
            self.state.set_window(width + delta.x() * rate, level - delta.y() * rate)
        elif kind == "cursor":
            self.state.set_cursor(self.screen_to_lps(pos))
        elif kind == "stroke":
            self.strokeMoved.emit(self.screen_to_lps(pos))
        else:
            self.update()

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:
        if self._drag is not None and self._drag[0] == "measure" and self._pending is not None:
            self._finish_ruler()
        if self._drag is not None and self._drag[0] == "stroke":
            self._drag = None
            self.strokeEnded.emit()
        self._drag = None

    def mouseDoubleClickEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton and self.tool == "navigate":
            self.maximizeRequested.emit(self.orientation)

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        self._hover = None
        self.update()

    # -- tools --------------------------------------------------------------------------------
    def _tool_press(self, lps: np.ndarray) -> None:
        if self.tool == "ruler":
            self._pending = Measurement("ruler", [lps, lps.copy()], self.slice_index)
            self._drag = ("measure", QtCore.QPointF(), ())
        elif self.tool == "angle":
            if self._pending is None or self._pending.slice_index != self.slice_index:
                self._pending = Measurement("angle", [lps, lps.copy()], self.slice_index)
            else:
                self._pending.points[-1] = lps
                if len(self._pending.points) == 3:
                    self._commit(self._pending)
                else:
                    self._pending.points.append(lps.copy())
        self.update()

    def _preview_point(self, lps: np.ndarray) -> None:
        assert self._pending is not None
        self._pending.points[-1] = lps
        self.update()

    def _finish_ruler(self) -> None:
        assert self._pending is not None
        if self._pending.value() > 0:
            self._commit(self._pending)
        else:
            self._pending = None
        self.update()

    def _commit(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        self._pending = None
        self.measurementAdded.emit(measurement)
        self.update()


class SliceViewPanel(QtWidgets.QFrame):
    """A slice view with a slider under it (the slider is one more way to scroll)."""

    def __init__(
        self, state: ViewerState, orientation: str, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.view = SliceView(state, orientation, self)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal, self)
        self.slider.setObjectName(f"{orientation}Slider")
        self.slider.setToolTip(f"{orientation.capitalize()} slice")
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.slider)
        self.view.sliceChanged.connect(self._sync_slider)
        self.slider.valueChanged.connect(self._slider_moved)
        state.volumeChanged.connect(self._sync_range)
        self._sync_range()

    def _sync_range(self) -> None:
        n = self.view.n_slices
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(n - 1, 0))
        self.slider.setValue(self.view.slice_index)
        self.slider.setEnabled(n > 1)
        self.slider.blockSignals(False)

    def _sync_slider(self, index: int) -> None:
        if self.slider.maximum() != max(self.view.n_slices - 1, 0):
            self._sync_range()
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)

    def _slider_moved(self, value: int) -> None:
        if value != self.view.slice_index:
            self.view.set_slice(value)

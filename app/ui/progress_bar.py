"""A progress bar that repaints with the window's next frame, never on the spot.

``QProgressBar.setValue`` repaints synchronously when the bar visibly moves. With the 3D view (a
QOpenGLWidget) in the window, every repaint composes the whole window through OpenGL, which on
a software renderer under load took seconds per progress step of a mesh build. Here a new value
only schedules a paint (``update()``), which Qt merges with the other repaints of that frame.
"""

from __future__ import annotations

from PySide6 import QtWidgets


class ProgressBar(QtWidgets.QProgressBar):
    """``QProgressBar`` whose ``setValue`` schedules the repaint instead of doing it now."""

    def setValue(self, value: int) -> None:
        if value == self.value():
            return
        self.setUpdatesEnabled(False)  # repaint() is a no-op while updates are off
        super().setValue(value)
        self.setUpdatesEnabled(True)  # schedules update(): painted with the next frame

"""Printing from the GUI: choose a stored G-code, a printer and its connection; watch the job.

:class:`PrintSection` is what the Print panel hosts under its slicing controls: the case's stored
G-codes (each with the mesh version it was sliced from), the printer profile, the connection
(USB ports with printer-like devices first, or the profile's OctoPrint/Moonraker URL) and a
Print button. What is listed and printed follows :func:`app.workflow.printing.target`: stored
G-code (:func:`~app.workflow.printing.start`), a stored resin slicing on a PrusaLink resin printer
(:func:`~app.workflow.printing.start_resin`) or a mesh version on a Formlabs printer through
PreForm (:func:`~app.workflow.printing.start_mesh`, with its device and material code). Each
prints only what comes from an approved mesh version of the case; a refusal is shown as its one
line and nothing is sent.

:class:`JobView` watches a :class:`~app.printing.job.PrintJob`: state, nozzle/bed temperatures
with a small live plot (:class:`TemperaturePlot`, drawn with QPainter), progress, elapsed and
remaining time, layer and line, and Pause / Resume / Cancel / Emergency stop, each through
:mod:`app.workflow.printing` (permission and audit). It polls ``job.status()`` from a timer, so
the job's own threads never touch widgets. A job keeps running when the panel is hidden or
closed (:data:`ACTIVE_JOBS` holds it; a new section re-attaches to it). After a lost link with a
resume point it offers "Resume from line N"; nothing is resumed without the user asking.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from types import ModuleType
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app.case import Case
from app.errors import MedPrintError
from app.printing.job import PrintJob
from app.printing.marlin import PrinterState, Temperature
from app.ui.deferred import mesh_stack
from app.ui.progress_bar import ProgressBar
from app.ui.worker import Worker
from app.workflow.actor import Actor


def _printing() -> ModuleType:
    """The printing workflow, on first use: its printer backends (HTTP, serial) are not needed
    to show the window."""
    from app.workflow import printing  # noqa: PLC0415

    return printing


ACTIVE_JOBS: list[PrintJob] = []  # running jobs outlive the widgets that show them
REFRESH_MS = 250
SERVERS = {
    "octoprint": "OctoPrint",
    "moonraker": "Moonraker",
    "prusalink": "PrusaLink",
    "formlabs": "PreForm",
}
SOURCES = {"gcode": "G-code", "sl1": "Resin slicing", "mesh": "Mesh version"}
PLOT_WINDOW_S = 600.0  # the plot shows the last ten minutes
HEATER_NAMES = {"T0": "Nozzle", "T1": "Nozzle 2", "T2": "Nozzle 3", "B": "Bed", "C": "Chamber"}
HEATER_COLORS = {
    "T0": QtGui.QColor(255, 140, 40),
    "T1": QtGui.QColor(255, 210, 60),
    "B": QtGui.QColor(80, 150, 255),
    "C": QtGui.QColor(90, 200, 120),
}


# ---------------------------------------------------------------------------------------------
# helpers (Qt-free)


def format_duration(seconds: float | None) -> str:
    """``1:02:03`` / ``4:05`` for a duration; ``–`` when unknown."""
    if seconds is None:
        return "–"
    total = round(max(0.0, seconds))
    hours, minutes, secs = total // 3600, total // 60 % 60, total % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def heater_label(name: str) -> str:
    return HEATER_NAMES.get(name, name)


def format_temperature(name: str, temp: Temperature) -> str:
    """``Nozzle 209.8 / 210 °C`` (no target shown when the heater is off or not reported)."""
    target = f" / {temp.target:.0f}" if temp.target else ""
    return f"{heater_label(name)} {temp.actual:.1f}{target} °C"


def gcode_label(number: int, provenance: dict) -> str:
    """``g3 · mesh v2 · generic-marlin-220 · builtin · 2024-05-01 10:02`` for the list."""
    version = provenance.get("mesh_version")
    parts = [f"g{number}", f"mesh v{version}" if version else "not from a mesh of this case"]
    parts += [str(provenance[k]) for k in ("printer", "engine") if provenance.get(k)]
    when = str(provenance.get("time_utc", ""))[:16].replace("T", " ")
    return " · ".join(parts + ([when] if when else []))


def sla_label(number: int, provenance: dict) -> str:
    """``s2 · mesh v1 · 412 layers · 3.2 ml · 1:05:00`` for the list."""
    version = provenance.get("mesh_version")
    parts = [f"s{number}", f"mesh v{version}" if version else "not from a mesh of this case"]
    if provenance.get("layers"):
        parts.append(f"{provenance['layers']} layers")
    if provenance.get("resin_ml") is not None:
        parts.append(f"{float(provenance['resin_ml']):.1f} ml")
    if provenance.get("print_time_s") is not None:
        parts.append(format_duration(float(provenance["print_time_s"])))
    return " · ".join(parts)


def _call(fn: Callable[[], Any], **_: object) -> Any:
    """Worker function: one workflow call, bound with its arguments (blocks for seconds)."""
    return fn()


def _ask(parent: QtWidgets.QWidget, title: str, text: str) -> bool:
    buttons = QtWidgets.QMessageBox.StandardButton
    answer = QtWidgets.QMessageBox.question(
        parent, title, text, buttons.Yes | buttons.No, buttons.No
    )
    return answer == buttons.Yes


# ---------------------------------------------------------------------------------------------
# the live temperature plot


class TemperaturePlot(QtWidgets.QWidget):
    """Measured (solid) and target (dashed) temperature per heater over the last minutes."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(130)
        self.samples: list[tuple[float, dict[str, Temperature]]] = []

    def set_history(self, samples: list[tuple[float, dict[str, Temperature]]]) -> None:
        self.samples = samples
        self.update()

    def series(self) -> dict[str, list[tuple[float, float, float | None]]]:
        """Per heater: (seconds, actual, target), over the plot's time window."""
        if not self.samples:
            return {}
        start = self.samples[-1][0] - PLOT_WINDOW_S
        out: dict[str, list[tuple[float, float, float | None]]] = {}
        for seconds, temps in self.samples:
            if seconds < start:
                continue
            for name, temp in temps.items():
                out.setdefault(name, []).append((seconds, temp.actual, temp.target))
        return out

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.fillRect(self.rect(), QtGui.QColor(24, 25, 29))
        series = self.series()
        left, right, top, bottom = 36, 8, 8, 18
        area = QtCore.QRectF(
            left, top, max(1, self.width() - left - right), max(1, self.height() - top - bottom)
        )
        peak = max(
            [v[1] for s in series.values() for v in s]
            + [v[2] or 0.0 for s in series.values() for v in s]
            + [60.0]
        )
        y_max = 50.0 * (int(peak // 50.0) + 1)
        times = [v[0] for s in series.values() for v in s]
        t0, t1 = (min(times), max(times)) if times else (0.0, 60.0)
        t1 = max(t1, t0 + 30.0)

        def point(t: float, value: float) -> QtCore.QPointF:
            x = area.left() + (t - t0) / (t1 - t0) * area.width()
            y = area.bottom() - value / y_max * area.height()
            return QtCore.QPointF(x, y)

        self._grid(painter, area, y_max, t1 - t0)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
        for name, values in sorted(series.items()):
            color = HEATER_COLORS.get(name, QtGui.QColor(200, 200, 200))
            painter.setPen(QtGui.QPen(color, 1.8))
            painter.drawPolyline(QtGui.QPolygonF([point(t, a) for t, a, _ in values]))
            targets = [(t, g) for t, _, g in values if g]
            if targets:
                pen = QtGui.QPen(color, 1.0, QtCore.Qt.PenStyle.DashLine)
                painter.setPen(pen)
                painter.drawPolyline(QtGui.QPolygonF([point(t, g) for t, g in targets]))
        self._legend(painter, area, sorted(series))
        painter.end()

    def _grid(
        self, painter: QtGui.QPainter, area: QtCore.QRectF, y_max: float, span: float
    ) -> None:
        painter.setPen(QtGui.QPen(QtGui.QColor(60, 62, 70), 1))
        painter.drawRect(area)
        step = 50.0 if y_max <= 300 else 100.0
        value = 0.0
        while value <= y_max + 1e-6:
            y = area.bottom() - value / y_max * area.height()
            painter.setPen(QtGui.QPen(QtGui.QColor(50, 52, 60), 1))
            painter.drawLine(QtCore.QPointF(area.left(), y), QtCore.QPointF(area.right(), y))
            painter.setPen(QtGui.QColor(150, 152, 160))
            painter.drawText(
                QtCore.QRectF(0, y - 8, area.left() - 4, 16),
                int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter),
                f"{value:.0f}",
            )
            value += step
        painter.drawText(
            QtCore.QRectF(area.left(), area.bottom() + 2, area.width(), 16),
            int(QtCore.Qt.AlignmentFlag.AlignRight),
            f"last {format_duration(span)} (°C)",
        )

    def _legend(self, painter: QtGui.QPainter, area: QtCore.QRectF, names: list[str]) -> None:
        x = area.left() + 6
        for name in names:
            color = HEATER_COLORS.get(name, QtGui.QColor(200, 200, 200))
            painter.setPen(QtGui.QPen(color, 2))
            painter.drawLine(
                QtCore.QPointF(x, area.top() + 9), QtCore.QPointF(x + 14, area.top() + 9)
            )
            painter.setPen(QtGui.QColor(220, 220, 225))
            label = heater_label(name)
            painter.drawText(QtCore.QPointF(x + 18, area.top() + 13), label)
            x += 26 + QtGui.QFontMetrics(painter.font()).horizontalAdvance(label)


# ---------------------------------------------------------------------------------------------
# the job view


class JobView(QtWidgets.QWidget):
    """State, temperatures, progress, times and controls of one :class:`PrintJob`."""

    stateChanged = QtCore.Signal(str)  # the job's state value, when it changes

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("printJobView")
        self.job: PrintJob | None = None
        self.actor: Actor | None = None  # who presses the buttons (the window's actor)
        self.confirm: Callable[[str, str], bool] = lambda title, text: _ask(self, title, text)
        # the USB port to reconnect to when resuming (the printer may come back on another one)
        self.port_provider: Callable[[], str | None] = lambda: None
        self.worker = Worker(self)
        self.worker.error.connect(self.show_error)
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self._error = ""
        self._error_state: PrinterState | None = None
        self._shown_state = ""
        self._t0 = time.monotonic()
        self._samples: list[tuple[float, dict[str, Temperature]]] = []
        self._build()
        self.refresh()

    def _build(self) -> None:
        self.state = QtWidgets.QLabel("No print job yet.", self)
        font = self.state.font()
        font.setBold(True)
        self.state.setFont(font)
        self.message = QtWidgets.QLabel(self)
        self.message.setObjectName("hint")
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setMinimumHeight(QtGui.QFontMetrics(self.message.font()).lineSpacing() + 6)
        self.temperatures = QtWidgets.QLabel("–", self)
        self.plot = TemperaturePlot(self)
        self.progress = ProgressBar(self)
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p %")
        self.times = QtWidgets.QLabel(self)
        self.layer = QtWidgets.QLabel(self)
        self.pause_button = QtWidgets.QPushButton("Pause", self)
        self.cool_down = QtWidgets.QCheckBox("nozzle off while paused", self)
        self.cool_down.setToolTip(
            "for a long pause: the nozzle cools (the bed stays warm); resuming heats it first"
        )
        self.resume_button = QtWidgets.QPushButton("Resume", self)
        self.cancel_button = QtWidgets.QPushButton("Cancel print", self)
        self.stop_button = QtWidgets.QPushButton("Emergency stop", self)
        self.stop_button.setObjectName("danger")
        self.stop_button.setStyleSheet("QPushButton:enabled { color: #ff6b6b; font-weight: bold; }")
        self.recover_button = QtWidgets.QPushButton(self)
        self.recover_button.setVisible(False)
        self._lay_out()

    def _lay_out(self) -> None:
        head = QtWidgets.QHBoxLayout()
        head.addWidget(self.state)
        head.addStretch(1)
        head.addWidget(self.temperatures)
        figures = QtWidgets.QHBoxLayout()
        figures.addWidget(self.times, 1)
        figures.addWidget(self.layer)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.pause_button, self.resume_button, self.cancel_button):
            buttons.addWidget(button)
            if button is self.pause_button:
                buttons.addWidget(self.cool_down)
        buttons.addStretch(1)
        buttons.addWidget(self.stop_button)
        self.details = QtWidgets.QWidget(self)  # shown once there is a job
        inner = QtWidgets.QVBoxLayout(self.details)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(self.plot, 1)
        inner.addWidget(self.progress)
        inner.addLayout(figures)
        inner.addLayout(buttons)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addWidget(self.details, 1)
        layout.addWidget(self.message)
        layout.addWidget(self.recover_button)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.cancel_button.clicked.connect(self.cancel)
        self.stop_button.clicked.connect(self.emergency_stop)
        self.recover_button.clicked.connect(self.recover)

    # -- job ---------------------------------------------------------------------------------

    def attach(self, job: PrintJob) -> None:
        """Show ``job`` from now on (the view never closes or stops it)."""
        self.job = job
        self._error = ""
        history = job.temperature_history()
        self._t0 = time.monotonic() - (history[-1][0] if history else 0.0)
        self._samples = history
        self.timer.start()
        self.refresh()

    def show_error(self, message: str) -> None:
        """One readable line, in the message row."""
        self._error = " ".join(str(message).split())
        self._error_state = self.job.state if self.job is not None else None
        self.refresh()

    def refresh(self) -> None:
        job = self.job
        if job is None:
            self._show_idle()
            return
        self.details.setVisible(True)
        status = job.status()
        state = status.state
        if self._error and state != self._error_state:
            self._error = ""  # a control's refusal is stale once the job has moved on
        self.state.setText(state.value.capitalize())
        if state.value != self._shown_state:
            self._shown_state = state.value
            self.stateChanged.emit(state.value)
        self.state.setProperty("jobState", state.value)
        text = self._error or " ".join(status.message.split())
        failed = state in (PrinterState.ERROR, PrinterState.DISCONNECTED) or bool(self._error)
        self.message.setStyleSheet("color: #ff6b6b;" if failed else "")
        self.message.setText(self._elide(text))
        self.message.setToolTip(text)
        temps = sorted(status.temperatures.items(), key=lambda kv: (kv[0] == "B", kv[0]))
        self.temperatures.setText("   ".join(format_temperature(n, t) for n, t in temps) or "–")
        self._sample(status.temperatures)
        self.progress.setValue(round(status.progress * 1000))
        remaining = format_duration(status.remaining)
        self.times.setText(f"elapsed {format_duration(status.elapsed)}   remaining {remaining}")
        parts = []
        if status.layer and status.layers:
            parts.append(f"layer {status.layer} / {status.layers}")
        if status.line is not None and status.lines:
            parts.append(f"line {status.line} / {status.lines}")
        self.layer.setText("   ".join(parts))
        self._sync_buttons(state)
        if state.done and job.resume_point is None and not self.worker.busy:
            self.timer.stop()

    def _sample(self, temperatures: dict[str, Temperature]) -> None:
        """Keep the plot's own wall-clock history (it goes on during a pause)."""
        if temperatures:
            now = time.monotonic() - self._t0
            last = self._samples[-1] if self._samples else None
            if last is None or last[1] != temperatures or now - last[0] >= 2.0:
                self._samples.append((now, dict(temperatures)))
                keep = now - PLOT_WINDOW_S * 1.2
                while self._samples and self._samples[0][0] < keep:
                    self._samples.pop(0)
        self.plot.set_history(list(self._samples))

    def _show_idle(self) -> None:
        self.state.setText("No print job yet.")
        self.details.setVisible(False)
        self.temperatures.setText("")
        self.message.setText(self._elide(self._error))
        self.message.setStyleSheet("color: #ff6b6b;" if self._error else "")
        for button in (self.pause_button, self.resume_button, self.cancel_button, self.stop_button):
            button.setEnabled(False)
        self.recover_button.setVisible(False)

    def _elide(self, text: str) -> str:
        width = max(200, self.message.width() - 4)
        metrics = QtGui.QFontMetrics(self.message.font())
        return metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, width)

    def _sync_buttons(self, state: PrinterState) -> None:
        job = self.job
        busy = self.worker.busy
        self.pause_button.setEnabled(state == PrinterState.PRINTING)
        self.cool_down.setEnabled(state == PrinterState.PRINTING and job is not None and job.usb)
        self.resume_button.setEnabled(state == PrinterState.PAUSED)
        cancellable = state.active or state == PrinterState.DISCONNECTED
        self.cancel_button.setEnabled(cancellable and state != PrinterState.CANCELLING)
        self.stop_button.setEnabled(state.active or state == PrinterState.CONNECTING)
        point = job.resume_point if job is not None else None
        offer = (
            point is not None
            and job.usb
            and state in (PrinterState.DISCONNECTED, PrinterState.ERROR)
            and not busy
        )
        self.recover_button.setVisible(bool(offer))
        if offer:
            self.recover_button.setText(f"Resume from line {point.index + 2}…")
            self.recover_button.setToolTip(point.reason)

    # -- controls ----------------------------------------------------------------------------

    def _control(self, action: Callable[[Actor, PrintJob], None]) -> None:
        """One workflow call on the job as the actor; a refusal is the message row."""
        self._error = ""
        try:
            if self.actor is None or self.job is None:
                msg = "no user for this print view; reopen the Print panel"
                raise MedPrintError(msg)
            action(self.actor, self.job)
        except MedPrintError as exc:
            self._error = " ".join(str(exc).split())
            self._error_state = self.job.state if self.job is not None else None
        self.refresh()

    def pause(self) -> None:
        if self.job is not None:
            cool = self.cool_down.isChecked() and self.job.usb
            self._control(partial(_printing().pause, cool_down=cool))

    def resume(self) -> None:
        if self.job is not None:
            self._control(_printing().resume)

    def cancel(self) -> None:
        if self.job is None:
            return
        text = (
            "Cancel this print? The heaters and fan are switched off, the head is lifted and "
            "parked and the motors are released. The print cannot be continued afterwards."
        )
        if self.confirm("Cancel the print", text):
            self._control(_printing().cancel)

    def emergency_stop(self) -> None:
        if self.job is None:
            return
        text = (
            "Emergency stop (M112) halts the printer at once: heaters and motors stop, the "
            "print is lost and the printer must be reset before it is used again. Stop now?"
        )
        if self.confirm("Emergency stop", text):
            self._control(_printing().emergency_stop)

    def recover(self) -> None:
        """Resume after a lost link or a printer reset, from the last acknowledged line."""
        job = self.job
        if job is None or job.resume_point is None:
            return
        line = job.resume_point.index + 2
        text = (
            f"Resume the print from line {line}? Check that the part is still attached and the "
            "nozzle is clear. X and Y are homed again, Z is kept, the temperatures are restored "
            "and the print continues."
        )
        if not self.confirm("Resume the print", text):
            return
        if self.actor is None:
            self.show_error("no user for this print view; reopen the Print panel")
            return
        self._error = ""
        call = partial(_printing().recover, self.actor, job, port=self.port_provider())
        self.worker.start(_call, call, name="resuming the print")
        self.timer.start()
        self.refresh()


# ---------------------------------------------------------------------------------------------
# printer, connection, source and the Print button


class PrintSection(QtWidgets.QGroupBox):
    """The Print panel's printing part: a stored G-code, printer and connection, the job.

    ``panel`` (optional) is the Print panel: its ``printers``, ``printer`` combo and ``sliced``
    signal (a new stored G-code) are followed. Without a panel, call :meth:`set_printers`,
    :meth:`set_actor` and :meth:`set_case`.
    """

    def __init__(self, panel: Any = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Print", parent or panel)
        self.setObjectName("printSection")
        self.panel = panel
        self.printers: dict[str, Any] = {}
        self.actor: Actor | None = None
        self.case: Case | None = None
        self.link_options: Any = None  # USB LinkOptions timings (the baud is the profile's)
        self.poll_interval = 1.0
        self.worker = Worker(self)
        self._build()
        if panel is not None:
            panel.sliced.connect(self._sliced)
            panel.printer.currentIndexChanged.connect(self._follow_panel)
        running = next((j for j in ACTIVE_JOBS if j.state.active), None)
        if running is not None:  # the panel was closed while this job ran: show it again
            self.view.attach(running)

    def _build(self) -> None:
        self.gcode = QtWidgets.QComboBox(self)
        self.gcode.setToolTip(
            "what is printed: a stored G-code or resin slicing, or a mesh version"
        )
        self.target = "gcode"  # what the chosen printer takes (app.workflow.printing.target)
        self.device = QtWidgets.QLineEdit(self)
        self.device.setPlaceholderText("the only printer PreForm sees")
        self.device.setToolTip("the printer's name in PreForm (Formlabs)")
        self.material_code = QtWidgets.QLineEdit(self)
        self.material_code.setPlaceholderText("the profile's resin")
        self.material_code.setToolTip("PreForm's material code, e.g. FLGPBK05 (Formlabs)")
        self.profile = QtWidgets.QComboBox(self)
        self.edit_profile = QtWidgets.QPushButton("Edit…", self)
        self.edit_profile.setToolTip("copy or edit the printer profile, its connection and API key")
        self.connection = QtWidgets.QComboBox(self)
        self.connection.setEditable(True)
        self.connection.setToolTip("a USB serial port (printer-like first), or the profile's URL")
        self.connection.lineEdit().setPlaceholderText("USB port or http(s) URL")
        self.refresh_ports = QtWidgets.QPushButton("Ports", self)
        self.refresh_ports.setToolTip("look for serial ports again")
        self.print_button = QtWidgets.QPushButton("Print", self)
        self.refusal = QtWidgets.QLabel(self)
        self.refusal.setWordWrap(True)
        self.refusal.setStyleSheet("color: #ff6b6b;")
        self.refusal.setVisible(False)
        self.view = JobView(self)
        self.view.port_provider = self._usb_port
        self.view.stateChanged.connect(self._job_state)
        self._lay_out()

    def _lay_out(self) -> None:
        printer_row = QtWidgets.QHBoxLayout()
        printer_row.addWidget(self.profile, 1)
        printer_row.addWidget(self.edit_profile)
        connection_row = QtWidgets.QHBoxLayout()
        connection_row.addWidget(self.connection, 1)
        connection_row.addWidget(self.refresh_ports)
        form = QtWidgets.QFormLayout()
        self.form = form
        form.addRow("G-code", self.gcode)
        form.addRow("Printer", printer_row)
        form.addRow("Connection", connection_row)
        form.addRow("Device", self.device)
        form.addRow("Material code", self.material_code)
        self._show_formlabs(visible=False)
        go = QtWidgets.QHBoxLayout()
        go.addStretch(1)
        go.addWidget(self.print_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(form)
        layout.addLayout(go)
        layout.addWidget(self.refusal)
        layout.addWidget(self.view, 1)
        self.profile.currentIndexChanged.connect(self._profile_changed)
        self.edit_profile.clicked.connect(self._edit_profile)
        self.refresh_ports.clicked.connect(self._fill_connections)
        self.print_button.clicked.connect(self.print_)

    # -- inputs ------------------------------------------------------------------------------

    def set_printers(self, printers: dict[str, Any], selected: str | None = None) -> None:
        """Fill the printer list (``id -> PrinterProfile``) and select ``selected``."""
        self.printers = dict(printers)
        current = selected or self.profile.currentData()
        self.profile.blockSignals(True)
        self.profile.clear()
        for key, profile in sorted(self.printers.items()):
            self.profile.addItem(profile.name, key)
        self.profile.setCurrentIndex(max(0, self.profile.findData(current)))
        self.profile.blockSignals(False)
        self._profile_changed()

    def set_actor(self, actor: Actor | None) -> None:
        """Who prints and presses the job's buttons (the window's actor)."""
        self.actor = actor
        self.view.actor = actor

    def set_case(self, case: Case | None, select: int | None = None) -> None:
        """The open case; what the printer takes fills the list (newest first, or ``select``):
        stored G-codes, stored resin slicings (SL1) or mesh versions (Formlabs)."""
        self.case = case
        self.gcode.clear()
        self._refuse("")
        # app.workflow.slice reads meshes (trimesh, VTK): imported on first use (app.ui.deferred)
        mesh_stack().call(partial(self._fill_sources, case, select))

    def _fill_sources(self, case: Case | None, select: int | None) -> None:
        if case is not self.case:
            return  # another case was opened meanwhile
        self.gcode.clear()
        try:
            self.target = self._target()
            items = self._sources(case) if case and self.actor else []
        except MedPrintError as exc:
            items = []
            self._refuse(str(exc))
        self._show_formlabs(visible=self.target == "mesh")
        for label, number in items:
            self.gcode.addItem(label, number)
        if select is not None:
            self.gcode.setCurrentIndex(max(0, self.gcode.findData(select)))
        if case is not None and self.gcode.count() == 0:
            self.gcode.addItem(f"no {SOURCES[self.target]} yet: slice a mesh version above", None)

    def _target(self) -> str:
        profile = self.profile_selected()
        if profile is None or self.actor is None or self.case is None:
            return "gcode"  # nothing listed: no need to load the printing workflow
        return _printing().target(self.actor, profile.id)

    def _sources(self, case: Case) -> list[tuple[str, int]]:
        """``(label, number)`` of what the chosen printer takes, newest first."""
        if self.target == "mesh":
            from app.workflow import mesh as meshing  # noqa: PLC0415

            found = reversed(meshing.versions(self.actor, case))
            return [(f"mesh v{v.number} · {v.operation}", v.number) for v in found]
        if self.target == "sl1":
            from app.workflow import resin  # noqa: PLC0415

            return [(sla_label(n, p), n) for n, p in resin.stored_slicings(self.actor, case)]
        from app.workflow import slice as slicing  # noqa: PLC0415

        return [(gcode_label(n, p), n) for n, p in slicing.stored_gcodes(self.actor, case)]

    def _show_formlabs(self, *, visible: bool) -> None:
        self.form.setRowVisible(self.device, visible)
        self.form.setRowVisible(self.material_code, visible)
        label = self.form.labelForField(self.gcode)
        if label is not None:
            label.setText(SOURCES[self.target])

    def selected_gcode(self) -> int | None:
        """The number of the stored G-code chosen in the list."""
        return self.gcode.currentData()

    def profile_selected(self) -> Any:
        return self.printers.get(self.profile.currentData())

    def _fill_connections(self) -> None:
        from app.printing.serial_link import list_ports  # noqa: PLC0415

        profile = self.profile_selected()
        typed = self.connection.currentText()
        self.connection.clear()
        conn = getattr(profile, "connection", None)
        label = SERVERS.get(getattr(conn, "kind", ""))
        if conn is not None and label and conn.url:
            self.connection.addItem(f"{label}: {conn.url}", (conn.kind, conn.url))
        self.connection.addItem("USB: most printer-like port", ("usb", "auto"))
        if conn is not None and conn.kind == "usb" and conn.port not in ("", "auto"):
            self.connection.addItem(f"USB: {conn.port} (profile)", ("usb", conn.port))
        try:
            ports = list_ports()
        except Exception:  # a broken port enumeration must not break the panel
            ports = []
        for port in ports:
            mark = " — printer?" if port.likely_printer else ""
            description = f" ({port.description})" if port.description else ""
            self.connection.addItem(f"USB: {port.device}{description}{mark}", ("usb", port.device))
        if (
            typed
            and self.connection.findText(typed) < 0
            and not typed.startswith(("USB:", *SERVERS.values()))
        ):
            self.connection.setEditText(typed)

    def connection_choice(self) -> tuple[str, str]:
        """``(kind, port or URL)`` from the list or from what the user typed."""
        text = self.connection.currentText().strip()
        index = self.connection.findText(text)
        if index >= 0 and self.connection.itemData(index):
            return tuple(self.connection.itemData(index))
        if text.lower().startswith(("http://", "https://")):
            conn = getattr(self.profile_selected(), "connection", None)
            kind = conn.kind if conn is not None and conn.kind != "usb" else "octoprint"
            return kind, text
        return "usb", text or "auto"

    def _usb_port(self) -> str | None:
        kind, where = self.connection_choice()
        return where if kind == "usb" and where != "auto" else None

    # -- panel following ---------------------------------------------------------------------

    def _profile_changed(self) -> None:
        """Another printer: its connections, and what it takes listed."""
        self._fill_connections()
        if self.case is not None:  # the list stays until it is refilled (same choice kept)
            mesh_stack().call(partial(self._fill_sources, self.case, self.selected_gcode()))

    def _follow_panel(self) -> None:
        panel = self.panel
        self.set_printers(panel.printers, panel.printer.currentData())

    def _sliced(self, sliced: Any) -> None:
        """A new stored G-code or resin slicing: list it and select it."""
        stored = sliced.stored if hasattr(sliced, "stored") else sliced.gcode
        self.set_case(self.case, select=stored.number)
        if self.panel is not None and not self.printers:
            self._follow_panel()

    def _edit_profile(self) -> None:
        from app.printing.profiles import load_printers  # noqa: PLC0415
        from app.ui.profile_dialog import ProfileDialog  # noqa: PLC0415

        profile = self.profile_selected()
        if profile is None:
            return
        dialog = ProfileDialog(profile, actor=self.actor, parent=self)
        if dialog.exec() and dialog.saved is not None:
            try:
                printers = load_printers()
            except MedPrintError as exc:
                self._refuse(str(exc))
                return
            self.set_printers(printers, dialog.saved.id)

    # -- printing ----------------------------------------------------------------------------

    def _refuse(self, message: str) -> None:
        self.refusal.setText(" ".join(message.split()))
        self.refusal.setVisible(bool(message))

    def print_(self) -> bool:
        """Start printing the selected G-code, resin slicing (SL1) or mesh version (Formlabs) in
        the worker; False when it cannot start.

        The workflow decides (and audits) whether it may be printed: a refusal comes back as
        the worker's error and is shown under the button.
        """
        self._refuse("")
        current = self.view.job
        if self.worker.busy or (current is not None and current.state.active):
            self._refuse("a print is already running on this workstation; wait for it or cancel it")
            return False
        number, profile = self.selected_gcode(), self.profile_selected()
        if self.case is None or self.actor is None:
            self._refuse("open a case first: printing needs G-code sliced from its approved mesh")
            return False
        if number is None:
            self._refuse("nothing to print: choose an approved mesh version or slice one first")
            return False
        if profile is None:
            self._refuse("no printer profile: add one with 'medprint printers'")
            return False
        call = self._start_call(number, profile.id)
        self.print_button.setEnabled(False)
        self._refuse(f"connecting to {profile.name}…")
        self.refusal.setStyleSheet("")
        self.worker.start(
            _call,
            call,
            name="connecting to the printer",
            on_done=self._started,
            on_error=lambda message: self._start_failed(self._tag(number), message),
        )
        return True

    def _start_call(self, number: int, printer: str) -> Callable[[], PrintJob]:
        """The workflow call that prints ``number`` of what the printer takes."""
        kind, where = self.connection_choice()
        common = {"printer": printer, "poll_interval": self.poll_interval}
        url = where if kind != "usb" else None
        if self.target == "mesh":
            extra = {
                "device": self.device.text().strip() or None,
                "material_code": self.material_code.text().strip() or None,
            }
            return partial(
                _printing().start_mesh, self.actor, self.case, version=number, url=url,
                **extra, **common,
            )  # fmt: skip
        if self.target == "sl1":
            return partial(
                _printing().start_resin, self.actor, self.case, sla_version=number, url=url,
                **common,
            )  # fmt: skip
        target = {"port": where} if kind == "usb" else {"url": where, "kind": kind}
        return partial(
            _printing().start, self.actor, self.case, gcode_version=number,
            link_options=self.link_options, **target, **common,
        )  # fmt: skip

    def _tag(self, number: int) -> str:
        return {"mesh": f"mesh v{number}", "sl1": f"s{number}"}.get(self.target, f"g{number}")

    def _started(self, job: PrintJob) -> None:
        self._refuse("")
        ACTIVE_JOBS[:] = [j for j in ACTIVE_JOBS if not j.state.done] + [job]
        self.view.attach(job)

    def _start_failed(self, tag: str, message: str) -> None:
        self.refusal.setStyleSheet("color: #ff6b6b;")
        self._refuse(f"Not printed ({tag}): {message}")
        self.print_button.setEnabled(True)

    def _job_state(self, value: str) -> None:
        """One print at a time: Print is off while a job runs (or waits to be resumed)."""
        state = PrinterState(value)
        self.print_button.setEnabled(not (state.active or state == PrinterState.CONNECTING))

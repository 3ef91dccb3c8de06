"""GUI entry point: ``run_gui()`` creates the application, the main window and runs the loop."""

from __future__ import annotations

import os
import sys

from PySide6 import QtCore, QtGui, QtWidgets

from app import __version__
from app.errors import MedPrintError
from app.log import log_qt_message
from app.resources import resources_root
from app.settings import DATA_DIR_ENV
from app.ui.deferred import when_exposed


def style_sheet() -> str:
    path = resources_root() / "style" / "medprint.qss"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def dark_palette() -> QtGui.QPalette:
    palette = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    colors = {
        role.Window: (45, 47, 52),
        role.WindowText: (222, 224, 228),
        role.Base: (30, 31, 35),
        role.AlternateBase: (40, 42, 47),
        role.ToolTipBase: (55, 57, 63),
        role.ToolTipText: (230, 230, 230),
        role.Text: (222, 224, 228),
        role.Button: (55, 57, 63),
        role.ButtonText: (222, 224, 228),
        role.BrightText: (255, 90, 90),
        role.Highlight: (58, 120, 200),
        role.HighlightedText: (255, 255, 255),
        role.Link: (110, 170, 240),
        role.PlaceholderText: (130, 133, 140),
    }
    for r, rgb in colors.items():
        palette.setColor(r, QtGui.QColor(*rgb))
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for r in (role.Text, role.ButtonText, role.WindowText):
        palette.setColor(disabled, r, QtGui.QColor(120, 122, 128))
    return palette


def _qt_message(mode: QtCore.QtMsgType, context: QtCore.QMessageLogContext, _text: str) -> None:
    """Qt's own messages go to the log by kind and category; their text (which can hold a
    file path) is never written, to the log or to stderr."""
    log_qt_message(mode.name.removeprefix("Qt").removesuffix("Msg").lower(), context.category)


def make_application(argv: list[str] | None = None) -> QtWidgets.QApplication:
    """The QApplication with MedPrint's name, style and palette (reuses a running one)."""
    QtCore.qInstallMessageHandler(_qt_message)
    app = QtWidgets.QApplication.instance()
    if app is None:
        app = QtWidgets.QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("MedPrint")
    app.setOrganizationName("MedPrint")
    app.setApplicationVersion(__version__)
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(style_sheet())
    return app


def install_error_hook(window: QtWidgets.QMainWindow) -> None:
    """Exceptions escaping a slot: logged (by the hook already installed) and shown as one
    line in the window, never as a traceback dialog; the application keeps running."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:
        previous(exc_type, exc, tb)
        if issubclass(exc_type, MedPrintError):
            text = str(exc)
        else:
            text = (
                f"unexpected error ({exc_type.__name__}); nothing was saved by it. "
                "The details are in the log; please report them"
            )
        report = getattr(window, "report_error", None)
        if report is not None:
            report("Error", text)

    sys.excepthook = hook


def run_gui() -> int:
    """Start the workstation window and run the event loop until it closes."""
    from app.ui.settings_dialog import stored_data_dir  # noqa: PLC0415

    app = make_application()
    if not os.environ.get(DATA_DIR_ENV):
        chosen = stored_data_dir()
        if chosen:
            os.environ[DATA_DIR_ENV] = chosen
    from app.ui.main_window import MainWindow  # noqa: PLC0415 (after the data folder is settled)

    window = MainWindow()
    install_error_hook(window)
    window.show()
    if os.environ.get(SHOWN_MARK_ENV):
        when_exposed(window, mark_shown)
    # The vault opens (keystore, first-start set-up) once the window is on screen.
    when_exposed(window, lambda: QtCore.QTimer.singleShot(0, window.startup))
    return app.exec()


SHOWN_MARK_ENV = "MEDPRINT_SHOWN_MARK"  # benchmarks/bench_gui.py times start-up with it


def mark_shown() -> None:
    """Print one line on stderr: the window is on screen (its first frame is painted); with
    ``MEDPRINT_SHOWN_MARK=modules`` a second: the modules imported by then (for tests)."""
    print("medprint: window shown", file=sys.stderr, flush=True)
    if os.environ.get(SHOWN_MARK_ENV) == "modules":
        print("medprint: modules " + " ".join(sorted(sys.modules)), file=sys.stderr, flush=True)

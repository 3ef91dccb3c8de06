"""The settings dialog: data folder, default presets, units.

Typed settings live in the data folder (``app.settings.Settings``). The data folder itself is
chosen before that file can be found, so the GUI keeps its path in Qt's own settings and uses
it at the next start (``MEDPRINT_DATA_DIR`` and ``--data-dir`` still win).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6 import QtCore, QtWidgets

from app.settings import Paths, Settings
from app.viewers.windowing import PRESET_NAMES


def threshold_presets() -> tuple[str, ...]:
    """The CT threshold presets of the segmentation tools (InVesalius' table)."""
    from app.tools.segmentation.threshold import CT_PRESETS  # noqa: PLC0415 (on first use)

    return tuple(CT_PRESETS)


UNITS = ("mm", "cm", "in")
DATA_DIR_KEY = "data_dir"


def qt_settings() -> QtCore.QSettings:
    return QtCore.QSettings("MedPrint", "MedPrint")


def stored_data_dir() -> str | None:
    value = qt_settings().value(DATA_DIR_KEY)
    return str(value) if value else None


def printer_names(paths: Paths | None = None) -> list[str]:
    """Ids of the shipped and user printer profiles, or [] when they cannot be read."""
    try:
        from app.printing.profiles import load_printers  # noqa: PLC0415 (only for this dialog)

        return sorted(load_printers(paths))
    except Exception:  # a broken profile file must not break the settings dialog
        return []


class SettingsDialog(QtWidgets.QDialog):
    """Edits a copy of :class:`Settings`; :meth:`result_settings` gives the edited values."""

    def __init__(
        self, settings: Settings, paths: Paths, parent: QtWidgets.QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.data_dir = QtWidgets.QLineEdit(str(paths.root), self)
        browse = QtWidgets.QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        folder = QtWidgets.QHBoxLayout()
        folder.addWidget(self.data_dir, 1)
        folder.addWidget(browse)
        note = QtWidgets.QLabel("A new data folder is used from the next start.", self)
        note.setObjectName("hint")

        self.window_preset = QtWidgets.QComboBox(self)
        self.window_preset.addItems(PRESET_NAMES)
        self.window_preset.setCurrentText(settings.default_window_preset)
        self.threshold_preset = QtWidgets.QComboBox(self)
        self.threshold_preset.addItems(threshold_presets())
        self.threshold_preset.setCurrentText(settings.default_threshold_preset)
        self.printer = QtWidgets.QComboBox(self)
        self.printer.setEditable(True)
        names = printer_names(paths)
        self.printer.addItems(names or [settings.default_printer])
        self.printer.setCurrentText(settings.default_printer)
        self.units = QtWidgets.QComboBox(self)
        self.units.addItems(UNITS)
        self.units.setCurrentText(settings.units)

        form = QtWidgets.QFormLayout()
        form.addRow("Data folder", folder)
        form.addRow("", note)
        form.addRow("Default window", self.window_preset)
        form.addRow("Default threshold", self.threshold_preset)
        form.addRow("Default printer", self.printer)
        form.addRow("Length units", self.units)
        buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Ok
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def _browse(self) -> None:
        chosen = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Data folder", self.data_dir.text()
        )
        if chosen:
            self.data_dir.setText(chosen)

    def result_settings(self) -> Settings:
        return replace(
            self.settings,
            default_window_preset=self.window_preset.currentText(),
            default_threshold_preset=self.threshold_preset.currentText(),
            default_printer=self.printer.currentText().strip() or self.settings.default_printer,
            units=self.units.currentText(),
        )

    def chosen_data_dir(self) -> str:
        return self.data_dir.text().strip()

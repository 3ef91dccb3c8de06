"""Copy or edit a printer profile: name, machine limits, connection, and the printer's API key.

The profile is validated by :func:`app.printing.profiles.edit_profile` (a bad value gives its
one-line message in the dialog, nothing is saved) and written to the user's printer folder with
:func:`~app.printing.profiles.save_printer`. The OctoPrint/Moonraker/PrusaLink API key never goes
into the profile file: it is stored in the OS keystore under
:func:`~app.printing.profiles.api_key_name`.
A PrusaLink user and password (digest login) are stored on Save through
:func:`app.workflow.printers.store_login`, as ``medprint printer login`` does (keystore, audited).
"Test connection" reaches the printer once with the values in the dialog
(:func:`app.printing.connection.check_connection`, run in the worker).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from PySide6 import QtWidgets

from app.errors import MedPrintError, PrintingError
from app.printing.connection import ConnectionSettings, check_connection
from app.printing.profiles import (
    PrinterProfile,
    api_key_name,
    edit_profile,
    save_printer,
)
from app.ui.worker import Worker
from app.workflow.actor import Actor

BAUD_RATES = ("115200", "250000", "230400", "57600", "500000", "1000000")
KINDS = (
    ("usb", "USB (Marlin)"),
    ("octoprint", "OctoPrint"),
    ("moonraker", "Moonraker"),
    ("prusalink", "PrusaLink (API key, or user and password)"),
    ("formlabs", "Formlabs (PreFormServer URL)"),
)
KEYLESS = ("usb", "formlabs")  # no API key: a serial port, or PreFormServer on this computer


def _test(settings: ConnectionSettings, **_: object) -> str:
    return check_connection(settings)


class ProfileDialog(QtWidgets.QDialog):
    """Edit ``profile`` (saved as a user profile; a new id makes a copy)."""

    def __init__(
        self,
        profile: PrinterProfile,
        *,
        paths: Any = None,
        actor: Actor | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Printer profile — {profile.name}")
        self.profile = profile
        self.paths = paths
        self.actor = actor  # who stores a PrusaLink login (audited by the workflow)
        self.saved: PrinterProfile | None = None
        self.worker = Worker(self)
        self.worker.done.connect(lambda text: self._say(f"✔ {text}", ok=True))
        self.worker.error.connect(lambda text: self._say(f"✘ {text}", ok=False))
        self._build()
        self._load(profile)

    def _build(self) -> None:
        self.id = QtWidgets.QLineEdit(self)
        self.id.setToolTip("a new id saves a copy; the same id replaces your copy of this profile")
        self.name = QtWidgets.QLineEdit(self)
        self.volume = [self._spin(10, 2000, " mm") for _ in range(3)]
        self.nozzle = self._spin(0.1, 2.0, " mm", decimals=2, step=0.05)
        self.max_nozzle = self._spin(150, 500, " °C")
        self.max_bed = self._spin(0, 200, " °C")
        self.kind = QtWidgets.QComboBox(self)
        for key, label in KINDS:
            self.kind.addItem(label, key)
        self.port = QtWidgets.QLineEdit(self)
        self.port.setPlaceholderText("auto")
        self.baud = QtWidgets.QComboBox(self)
        self.baud.setEditable(True)
        self.baud.addItems(BAUD_RATES)
        self.url = QtWidgets.QLineEdit(self)
        self.url.setPlaceholderText("http://octopi.local")
        self.api_key = QtWidgets.QLineEdit(self)
        self.api_key.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.user = QtWidgets.QLineEdit(self)
        self.user.setPlaceholderText("maker")
        self.password = QtWidgets.QLineEdit(self)
        self.password.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("shown on the printer (kept in the OS keystore)")
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        self.test_button = QtWidgets.QPushButton("Test connection", self)
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Save
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        self._lay_out()

    def _spin(
        self, low: float, high: float, suffix: str, *, decimals: int = 0, step: float = 1.0
    ) -> QtWidgets.QDoubleSpinBox:
        spin = QtWidgets.QDoubleSpinBox(self)
        spin.setRange(low, high)
        spin.setDecimals(decimals)
        spin.setSingleStep(step)
        spin.setSuffix(suffix)
        return spin

    def _lay_out(self) -> None:
        volume = QtWidgets.QHBoxLayout()
        for spin in self.volume:
            volume.addWidget(spin)
        form = QtWidgets.QFormLayout()
        form.addRow("Id", self.id)
        form.addRow("Name", self.name)
        form.addRow("Build volume (x, y, z)", volume)
        form.addRow("Nozzle diameter", self.nozzle)
        form.addRow("Max nozzle temperature", self.max_nozzle)
        form.addRow("Max bed temperature", self.max_bed)
        form.addRow("Connection", self.kind)
        form.addRow("USB port", self.port)
        form.addRow("Baud rate", self.baud)
        form.addRow("URL", self.url)
        form.addRow("API key", self.api_key)
        form.addRow("PrusaLink user", self.user)
        form.addRow("PrusaLink password", self.password)
        test_row = QtWidgets.QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.message, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(test_row)
        layout.addWidget(self.buttons)
        self.kind.currentIndexChanged.connect(self._sync_kind)
        self.test_button.clicked.connect(self.test_connection)
        self.buttons.accepted.connect(self.save)
        self.buttons.rejected.connect(self.reject)

    def _load(self, profile: PrinterProfile) -> None:
        self.id.setText(profile.id if profile.origin == "user" else f"{profile.id}-copy")
        self.name.setText(profile.name if profile.origin == "user" else f"{profile.name} (copy)")
        for spin, value in zip(self.volume, profile.build_volume, strict=True):
            spin.setValue(value)
        self.nozzle.setValue(profile.nozzle_diameter)
        self.max_nozzle.setValue(profile.max_nozzle_temperature)
        self.max_bed.setValue(profile.max_bed_temperature)
        conn = profile.connection
        self.kind.setCurrentIndex(max(0, self.kind.findData(conn.kind)))
        self.port.setText("" if conn.port == "auto" else conn.port)
        self.baud.setCurrentText(str(conn.baud_rate))
        self.url.setText(conn.url)
        self._sync_kind()

    def _sync_kind(self) -> None:
        usb = self.kind.currentData() == "usb"
        keyless = self.kind.currentData() in KEYLESS
        self.port.setEnabled(usb)
        self.baud.setEnabled(usb)
        self.url.setEnabled(not usb)
        self.api_key.setEnabled(not keyless)
        self.user.setEnabled(self.kind.currentData() == "prusalink")
        self.password.setEnabled(self.kind.currentData() == "prusalink")
        stored = self._stored_key_hint() if not keyless else ""
        self.api_key.setPlaceholderText(stored or ("not needed" if keyless else ""))

    def _stored_key_hint(self) -> str:
        try:
            from app.security.keystore import Keystore  # noqa: PLC0415

            known = Keystore().get(api_key_name(self.id.text().strip() or self.profile.id))
        except MedPrintError:
            return "the OS keystore is not available"
        if known is None:
            return "paste the API key (kept in the OS keystore)"
        return "stored in the OS keystore; type a new key to replace it"

    def _say(self, text: str, *, ok: bool) -> None:
        self.message.setText(" ".join(text.split()))
        self.message.setStyleSheet("" if ok else "color: #ff6b6b;")

    # -- values ------------------------------------------------------------------------------

    def edited(self) -> PrinterProfile:
        """The profile as the dialog shows it, validated; raises :class:`PrintingError`."""
        baud_text = self.baud.currentText().strip()
        if not baud_text.isdigit():
            msg = f"baud rate '{baud_text}' must be a whole number such as 115200; fix it"
            raise PrintingError(msg)
        connection = {
            "kind": self.kind.currentData(),
            "port": self.port.text().strip() or "auto",
            "baud_rate": int(baud_text),
            "url": self.url.text().strip(),
        }
        return edit_profile(
            self.profile,
            id=self.id.text().strip(),
            name=self.name.text().strip(),
            build_volume=[spin.value() for spin in self.volume],
            nozzle_diameter=self.nozzle.value(),
            max_nozzle_temperature=self.max_nozzle.value(),
            max_bed_temperature=self.max_bed.value(),
            connection=connection,
        )

    def settings(self) -> ConnectionSettings:
        """Connection settings from the dialog (the typed login or API key, else the stored)."""
        profile = self.edited()
        key = self.api_key.text().strip() or None
        settings = ConnectionSettings.from_profile(profile, api_key=key)
        login = self._login()
        if login is None:
            return settings
        return replace(settings, user=login[0], api_key=login[1])

    def _login(self) -> tuple[str, str] | None:
        """The typed PrusaLink user and password (None unless both are typed)."""
        user, password = self.user.text().strip(), self.password.text()
        if self.kind.currentData() != "prusalink" or not (user and password):
            return None
        return user, password

    def test_connection(self) -> None:
        try:
            settings = self.settings()
        except MedPrintError as exc:
            self._say(f"✘ {exc}", ok=False)
            return
        self._say("Testing the connection…", ok=True)
        self.worker.start(_test, settings, name="testing the printer connection")

    def save(self) -> PrinterProfile | None:
        """Validate, store the API key in the keystore, write the profile; None if refused."""
        try:
            profile = self.edited()
            key = self.api_key.text().strip()
            if key and profile.connection.kind not in KEYLESS:
                from app.security.keystore import Keystore  # noqa: PLC0415

                Keystore().set(api_key_name(profile), key.encode("utf-8"))
            save_printer(profile, self.paths)
            self._store_login(profile)
        except MedPrintError as exc:
            self._say(f"✘ {exc}", ok=False)
            return None
        self.saved = profile
        self.accept()
        return profile

    def _store_login(self, profile: PrinterProfile) -> None:
        """The typed PrusaLink login into the keystore, as 'medprint printer login' does."""
        login = self._login()
        if login is None:
            return
        if self.actor is None:
            msg = "no user to store the login for; open the dialog from the Print panel"
            raise PrintingError(msg)
        from app.workflow import printers  # noqa: PLC0415

        printers.store_login(self.actor, profile.id, *login)

    def done(self, result: int) -> None:
        self.worker.cancel()
        super().done(result)

"""How the GUI tells the user something went wrong: one readable line, never a traceback."""

from __future__ import annotations

from PySide6 import QtWidgets


def show_error(parent: QtWidgets.QWidget | None, title: str, message: str) -> QtWidgets.QMessageBox:
    """A window-modal (non-blocking) warning box with the message; returns the box."""
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    text = message[:1].upper() + message[1:] if message else "Something went wrong."
    box.setText(text if text.endswith((".", "!", "?")) else text + ".")
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
    box.setObjectName("errorBox")
    box.open()
    return box


def show_info(parent: QtWidgets.QWidget | None, title: str, message: str) -> QtWidgets.QMessageBox:
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Information)
    box.setWindowTitle(title)
    box.setText(message)
    box.setTextInteractionFlags(box.textInteractionFlags())
    box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
    box.open()
    return box

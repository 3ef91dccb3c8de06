"""The profile dialog keeps a PrusaLink or Formlabs profile's connection kind (a shipped SL1S or
Form 4B profile must not reopen as USB), tests PrusaLink with its API key, and asks no key for
PreForm."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # for tests.printing.peers

from app.printing.profiles import get_printer
from app.ui.profile_dialog import ProfileDialog

pytest_plugins = ["tests.printing.peers.fixtures"]


def test_prusalink_and_formlabs_profiles_keep_their_kind(
    qtbot, styled_app, data_dir, keystore_service, prusalink
):
    prusalink.api_key = "pl-key"
    dialog = ProfileDialog(get_printer("prusa-sl1s"))
    qtbot.addWidget(dialog)
    assert dialog.kind.currentData() == "prusalink" and dialog.api_key.isEnabled()
    dialog.url.setText(prusalink.url)
    dialog.api_key.setText("pl-key")
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.message.text().startswith("✔"), timeout=10000)
    assert "PrusaLink 2.1.2, printer MK4" in dialog.message.text()

    form = ProfileDialog(get_printer("formlabs-form4b"))
    qtbot.addWidget(form)
    assert form.kind.currentData() == "formlabs" and not form.api_key.isEnabled()

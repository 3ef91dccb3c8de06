"""PHI exits: exception text never reaches the log or the journal (stderr); a package carries
nothing but the mesh, G-code, QA and report files made from the case."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest

from app import log
from app.errors import PackageError
from app.security.package.build import PACKAGE_KINDS, build_package
from app.security.package.format import PackageMeta
from app.security.signing import SigningKey
from app.settings import resolve_paths
from tests.security.package_content import bound

REPO = Path(__file__).resolve().parents[2]
MARKER = "MKRSECRET"
LEAK = f"{MARKER} DOE^JANE /media/usb/DOE_JANE_19650412/IM0001.dcm"


def _run(code: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "MEDPRINT_DATA_DIR": str(data_dir), **env},
        timeout=120,
        check=False,
    )


def _log_text(data_dir: Path) -> str:
    return (data_dir / "logs" / "medprint.log").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the log, the journal

_CLI_CRASH = f"""
import sys
import app.commands.cases as cases

def crash(args):
    raise RuntimeError({LEAK!r})

cases._cases = crash
from app.cli import main
sys.exit(main(["cases"]))
"""


def test_a_crash_in_the_cli_logs_its_type_and_frames_only(data_dir):
    run = _run(_CLI_CRASH, data_dir)
    assert run.returncode == 1
    assert "RuntimeError" in run.stderr and "test_phi_exits" not in run.stderr
    assert MARKER not in run.stderr and "DOE" not in run.stderr
    text = _log_text(data_dir)
    assert "uncaught RuntimeError at" in text
    assert MARKER not in text and "DOE" not in text


_THREAD_CRASH = f"""
import threading
from app.log import setup_logging
from app.settings import resolve_paths

setup_logging(resolve_paths().ensure())

def work():
    raise ValueError({LEAK!r})

thread = threading.Thread(target=work)
thread.start()
thread.join()
"""


def test_a_crash_in_a_thread_logs_its_type_only(data_dir):
    run = _run(_THREAD_CRASH, data_dir)
    assert "ValueError" in run.stderr and MARKER not in run.stderr
    assert "uncaught ValueError at" in _log_text(data_dir) and MARKER not in _log_text(data_dir)


_QT_MESSAGE = f"""
from PySide6 import QtCore
from app.log import setup_logging
from app.settings import resolve_paths
from app.ui.app import make_application

setup_logging(resolve_paths().ensure())
make_application()
QtCore.qWarning({LEAK!r})
"""


def test_qt_messages_keep_their_kind_not_their_text(data_dir):
    run = _run(_QT_MESSAGE, data_dir, QT_QPA_PLATFORM="offscreen")
    assert run.returncode == 0, run.stderr[-300:]
    assert MARKER not in run.stderr
    text = _log_text(data_dir)
    assert "Qt warning" in text and MARKER not in text


@pytest.fixture
def logging_set_up(data_dir):
    """:func:`log.setup_logging` in this process, undone afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    # An earlier in-process CLI test may have left warnings captured under pytest's own
    # per-test recorder: start from uncaptured so setup_logging routes them to the log.
    logging.captureWarnings(False)
    log.setup_logging(resolve_paths().ensure())
    yield data_dir
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    sys.excepthook, threading.excepthook = saved[2], saved[3]
    logging.captureWarnings(False)


def test_logged_exceptions_and_third_party_text_are_scrubbed(logging_set_up):
    ours = logging.getLogger("app.ui.main_window")
    ours.warning("settings ignored: %s", PackageError(LEAK))
    ours.error(ValueError(LEAK))
    try:
        int(LEAK)
    except ValueError:
        ours.exception("reading the header of %s failed", "C-7K3M-Q9")
    logging.getLogger("urllib3.connectionpool").warning("GET %s failed", LEAK)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(LEAK, UserWarning, stacklevel=1)
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = _log_text(logging_set_up)
    assert MARKER not in text and "DOE" not in text
    assert "settings ignored: PackageError" in text
    assert "C-7K3M-Q9 failed [ValueError at ?]" in text  # no frame of app/ in this test
    assert "urllib3.connectionpool: message withheld" in text
    assert "UserWarning (text withheld)" in text


# --------------------------------------------------------------------------- package content


def test_a_package_refuses_any_file_that_is_not_mesh_gcode_or_qa(
    data_dir, keystore_service, tmp_path
):
    drive = tmp_path / "drive"
    drive.mkdir()
    files, approval = bound({"model.stl": b"solid m\n" * 100})
    meta = PackageMeta(case="C-7K3M-Q9")
    signer = SigningKey.generate()
    for name in ("dicom/IM0001.dcm", "mesh/IM0001.dcm", "notes.txt", "qa/notes.json"):
        with pytest.raises(PackageError, match="cannot be a package file"):
            build_package(
                drive, files=files | {name: b"DICM"}, meta=meta, approval=approval, signer=signer
            )
    assert list(drive.iterdir()) == []
    assert all(PACKAGE_KINDS.match(name) for name in files)  # what the builders give it


def test_the_package_command_takes_no_loose_files(capsys):
    from app.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["package", "C-7K3M-Q9", "--out", "drive"]).case == "C-7K3M-Q9"
    with pytest.raises(SystemExit):
        parser.parse_args(["package", "C-7K3M-Q9", "--out", "drive", "--file", "dicom/1.dcm"])
    assert "unrecognized arguments: --file" in capsys.readouterr().err


# --------------------------------------------------------------------------- names given by users


def test_a_name_with_the_patients_identity_or_odd_characters_may_not_leave():
    from app.workflow.names import Identity, problem

    identity = Identity(
        frozenset({"doe", "jane"}),
        frozenset({"mrn0042137"}),
        frozenset({"19650412", "12041965", "04121965"}),
    )
    for bad in ("Doe skull", "janeskull", "skull-MRN-0042137", "jaw 12.04.1965", "jaw 1965-04-12"):
        assert problem(bad, identity) == "holds part of the patient's name, ID or birth date", bad
    for odd in ("skull/../x", "../up", ".hidden", "Bone (L1)", "Müller", "x" * 65, ""):
        assert problem(odd, identity) == "uses characters or a length outside the safe set", odd
    for good in ("skull", "Bone L1", "doesnt-matter-jaw", "C-7K3M-Q9_skull.stl", "mandible_v2"):
        assert problem(good, identity) is None, good

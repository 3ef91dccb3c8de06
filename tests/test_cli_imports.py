"""A command imports only its own module (and so only its own libraries): the multi-user and
scripted runs start every command as a fresh process."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

from app import cli

HEAVY = ("trimesh", "vtkmodules", "pydicom", "SimpleITK", "matplotlib", "scipy", "PySide6")


def _modules_after(args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom app.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_every_command_word_finds_the_module_that_registers_it() -> None:
    for module in cli.COMMANDS:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(f"app.commands.{module}").register(sub)
        for action in sub._choices_actions:
            assert cli.COMMAND_MODULES.get(action.dest, action.dest) == module, action.dest


def test_a_command_imports_its_own_module_only() -> None:
    loaded = _modules_after(["settings", "--help"])
    commands = {f"app.commands.{name}" for name in cli.COMMANDS}
    assert loaded & commands == {"app.commands.settings"}  # helpers (output) are not commands
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_the_command_word_skips_medprint_options() -> None:
    assert cli.command_word(["--data-dir", "/x", "cases", "--json"]) == "cases"
    assert cli.command_word(["--help"]) is None

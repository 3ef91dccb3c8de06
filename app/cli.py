"""``medprint`` / ``python -m app``: the GUI by default, headless sub-commands otherwise.

Each command group lives in ``app/commands/<name>.py`` with ``register(subparsers)``; the
handlers call the same core functions as the GUI. A :class:`MedPrintError` becomes one line on
stderr and exit status 2; nothing is printed as a traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys

from app import __version__
from app.errors import MedPrintError
from app.log import setup_logging
from app.settings import DATA_DIR_ENV, resolve_paths

# Command modules in app/commands, in the order `medprint --help` lists them.
COMMANDS = [
    "vault",
    "cases",
    "imaging",
    "importing",
    "deid",
    "audit",
    "segment",
    "mesh",
    "edit",
    "users",
    "keys",
    "review",
    "package",
    "print",
    "printer",
    "slice",
    "trace",
    "demo",
    "settings",
    "pacs",
    "order",
    "registry",
]


# Commands registered by a module of another name (the rest live in app/commands/<command>.py).
COMMAND_MODULES = {
    "scan": "imaging",
    "convert": "imaging",
    "import": "importing",
    "whoami": "users",
    "verify": "package",
    "printers": "slice",
    "record": "trace",
    "verify-print": "trace",
    "lab-qa": "trace",
    "printer-serial": "print",
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: with only the module of the command it names, so a command
    imports only its own libraries; with none for the GUI (no command); with every module for
    ``--help`` and for a word that names no command (argparse lists them)."""
    parser = argparse.ArgumentParser(
        prog="medprint",
        description="MedPrint: medical 3D printing workstation. Without a command, opens the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"medprint {__version__}")
    parser.add_argument(
        "--data-dir",
        help=f"folder for the vault, audit log, settings and logs (also ${DATA_DIR_ENV})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    words = sys.argv[1:] if argv is None else argv
    word = command_word(words)
    module = COMMAND_MODULES.get(word or "", word)
    if module in COMMANDS:
        names = [module]
    elif word is None and not {"-h", "--help"} & set(words):
        names = []  # the GUI: it imports what it needs itself, much of it after it is shown
    else:
        names = COMMANDS
    for name in names:
        importlib.import_module(f"app.commands.{name}").register(sub)
    return parser


def command_word(argv: list[str]) -> str | None:
    """The command named in ``argv``, past medprint's own options."""
    words = iter(argv)
    for word in words:
        if word == "--data-dir":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def run() -> int:
    """The ``medprint`` process: :func:`main`, then exit. What the command leaves alive (the
    modules, their caches) goes with the process, so it is moved out of the cyclic collector's
    reach first: the interpreter's collections at exit would walk every object of the loaded
    libraries again (0.1-0.15 s after a mesh build). Tests call :func:`main` instead."""
    code = main()
    gc.freeze()
    return code


def main(argv: list[str] | None = None) -> int:
    if (sys.argv[1:] if argv is None else argv) == ["--version"]:
        print(f"medprint {__version__}")  # without importing every command's libraries
        return 0
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.data_dir:
        import os  # noqa: PLC0415

        os.environ[DATA_DIR_ENV] = args.data_dir
    setup_logging(resolve_paths().ensure())
    if args.command is None:
        return _start_gui()
    try:
        return int(args.func(args) or 0)
    except MedPrintError as exc:
        print(f"medprint: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medprint: interrupted; nothing was changed", file=sys.stderr)
        return 130


def _start_gui() -> int:
    # The GUI is the one place the entry point reaches into app.ui (see the import contract).
    from app.ui.app import run_gui  # noqa: PLC0415

    return run_gui()

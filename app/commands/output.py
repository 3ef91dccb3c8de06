"""What a command prints: a line for people, or with ``--json`` the same facts as JSON."""

from __future__ import annotations

import argparse
import json


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def show(args: argparse.Namespace, facts: dict, text: str) -> None:
    """Print ``facts`` as JSON when ``--json`` was given, else ``text``."""
    if getattr(args, "json", False):
        print(json.dumps(facts, indent=2, sort_keys=True, default=str))
    else:
        print(text)

"""``medprint settings show [--json]`` and ``medprint settings set NAME VALUE``."""

from __future__ import annotations

import argparse
import json

from app.commands.output import add_json, show
from app.workflow import settings
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("settings", help="show the settings or change one")
    actions = parser.add_subparsers(dest="settings_action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="print every setting")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    change = actions.add_parser(
        "set",
        help="change one setting (administrators), e.g. 'settings set syslog udp://HOST:514'",
    )
    change.add_argument("name", choices=settings.settable(), metavar="NAME")
    change.add_argument("value", help="the new value ('' for the default; true/false)")
    add_json(change)
    change.set_defaults(func=_set)


def _show(args: argparse.Namespace) -> int:
    values = settings.show(Actor.current())
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
    else:
        for name, value in sorted(values.items()):
            print(f"{name:26} {json.dumps(value)}")
    return 0


def _set(args: argparse.Namespace) -> int:
    value = settings.set_value(Actor.current(), args.name, args.value)
    show(args, {args.name: value}, f"{args.name} = {json.dumps(value)}")
    return 0

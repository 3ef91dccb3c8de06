"""``medprint printer key|login|forget|test PROFILE``: the secrets of networked printers.

``key`` stores an API key (OctoPrint, Moonraker, PrusaLink) and ``login`` a PrusaLink digest
login (``--user maker``), both read from stdin (or asked without echo at a terminal) into the
OS keystore; never from the command line, never into a profile file. ``test`` reaches the
printer once and says what answered.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from app.commands.output import add_json, show
from app.workflow import printers
from app.workflow.actor import Actor

KINDS = ("octoprint", "moonraker", "prusalink", "formlabs")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("printer", help="store a networked printer's key or login; test it")
    actions = parser.add_subparsers(dest="printer_action", metavar="ACTION", required=True)
    key = actions.add_parser("key", help="store the API key of PROFILE (read from stdin)")
    key.add_argument("profile", help="printer profile id or name")
    add_json(key)
    key.set_defaults(func=_key)
    login = actions.add_parser(
        "login", help="store the PrusaLink login of PROFILE (password read from stdin)"
    )
    login.add_argument("profile", help="printer profile id or name")
    login.add_argument("--user", default="maker", help="PrusaLink user (default: maker)")
    add_json(login)
    login.set_defaults(func=_login)
    forget = actions.add_parser("forget", help="remove the stored key and login of PROFILE")
    forget.add_argument("profile", help="printer profile id or name")
    add_json(forget)
    forget.set_defaults(func=_forget)
    test = actions.add_parser("test", help="reach the printer of PROFILE once")
    test.add_argument("profile", help="printer profile id or name")
    test.add_argument("--url", help="the printer's URL (overrides the profile)")
    test.add_argument("--kind", choices=KINDS, help="the server behind --url")
    add_json(test)
    test.set_defaults(func=_test)


def _secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


def _key(args: argparse.Namespace) -> int:
    printers.store_api_key(Actor.current(), args.profile, _secret("API key: "))
    facts = {"profile": args.profile, "stored": "api-key"}
    show(args, facts, f"stored the API key of {args.profile} in the OS keystore")
    return 0


def _login(args: argparse.Namespace) -> int:
    printers.store_login(Actor.current(), args.profile, args.user, _secret("Password: "))
    facts = {"profile": args.profile, "stored": "login", "user": args.user}
    show(args, facts, f"stored the login of {args.profile} ({args.user}) in the OS keystore")
    return 0


def _forget(args: argparse.Namespace) -> int:
    printers.forget(Actor.current(), args.profile)
    facts = {"profile": args.profile, "removed": ["api-key", "login"]}
    show(args, facts, f"removed the stored key and login of {args.profile}")
    return 0


def _test(args: argparse.Namespace) -> int:
    answer = printers.check(Actor.current(), args.profile, url=args.url, kind=args.kind)
    show(args, {"profile": args.profile, "answer": answer}, answer)
    return 0

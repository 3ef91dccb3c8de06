"""``medprint users``: roles of the OS accounts (administrators manage them);
``medprint whoami``: the acting account and its roles."""

from __future__ import annotations

import argparse
import json

from app.workflow import users
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="roles of the OS accounts (administrators manage them)")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every user and their roles")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    add = actions.add_parser("add", help="give a user a role")
    add.add_argument("user", help="OS login name")
    add.add_argument("role", choices=users.ROLES)
    add.set_defaults(func=_add)
    remove = actions.add_parser("remove", help="take a role (or every role) from a user")
    remove.add_argument("user")
    remove.add_argument("role", nargs="?", choices=users.ROLES)
    remove.set_defaults(func=_remove)
    actions.add_parser(
        "bootstrap",
        help="a vault made before roles existed: its creator (from the audit log) becomes "
        "the administrator",
    ).set_defaults(func=_bootstrap)
    whoami = sub.add_parser("whoami", help="your OS account and your roles in this vault")
    whoami.add_argument("--json", action="store_true")
    whoami.set_defaults(func=_whoami)


def _list(args: argparse.Namespace) -> int:
    roles = users.list_users(Actor.current())
    if args.json:
        print(json.dumps(roles, indent=2))
        return 0
    for user, held in roles.items():
        print(f"{user:24} {', '.join(held)}")
    if not roles:
        print("no roles assigned")
    return 0


def _add(args: argparse.Namespace) -> int:
    users.add_role(Actor.current(), args.user, args.role)
    print(f"{args.user} is now a {args.role}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    removed = users.remove_role(Actor.current(), args.user, args.role)
    print(f"removed {', '.join(removed)} from {args.user}")
    return 0


def _bootstrap(args: argparse.Namespace) -> int:
    founder = users.bootstrap(Actor.current())
    print(f"{founder} created this vault and is now its administrator")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    me = users.whoami(Actor.current())
    if args.json:
        print(json.dumps(me, indent=2))
        return 0
    if not me["vault"]:
        print(f"{me['user']}  (no vault yet: 'medprint vault init')")
    else:
        print(f"{me['user']}  {', '.join(me['roles']) or 'no role'}")
    return 0

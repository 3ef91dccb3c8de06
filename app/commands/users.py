"""``medprint users``: enrol and remove people, give and take roles (administrators);
``medprint whoami``: the acting account, its key fingerprint and roles (its first run makes the
account's personal keys and, in a vault it is not enrolled in, leaves an enrolment request)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from app.commands.output import add_json, show
from app.workflow import users
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="people of the vault and their roles")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every person, their roles and key fingerprint")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_list)
    enrol = actions.add_parser(
        "enrol", help="let an account that ran 'medprint whoami' into the vault with roles"
    )
    enrol.add_argument("user", help="OS login name")
    enrol.add_argument("roles", nargs="+", choices=users.ROLES, metavar="ROLE")
    enrol.add_argument("--fingerprint", help="the key fingerprint their 'whoami' showed")
    add_json(enrol)
    enrol.set_defaults(func=_enrol)
    add = actions.add_parser("add", help="give an enrolled person another role")
    add.add_argument("user", help="OS login name")
    add.add_argument("role", choices=users.ROLES)
    add_json(add)
    add.set_defaults(func=_add)
    remove = actions.add_parser(
        "remove",
        help="take one role from a person, or remove them for good (every key is rotated)",
    )
    remove.add_argument("user")
    remove.add_argument("role", nargs="?", choices=users.ROLES)
    remove.add_argument("--json", action="store_true")
    remove.set_defaults(func=_remove)
    whoami = sub.add_parser("whoami", help="your OS account, key fingerprint and roles")
    whoami.add_argument("--json", action="store_true")
    whoami.set_defaults(func=_whoami)


def _list(args: argparse.Namespace) -> int:
    people = users.list_users(Actor.current())
    if args.json:
        print(json.dumps(people, indent=2))
        return 0
    for user, facts in people.items():
        held = ", ".join(facts["roles"]) or "no role"
        print(f"{user:24} {held:40} {facts['fingerprint']}")
    return 0


def _enrol(args: argparse.Namespace) -> int:
    done = users.enrol(Actor.current(), args.user, args.roles, fingerprint=args.fingerprint)
    text = f"{done.user} enrolled as {', '.join(done.roles)}; key {done.fingerprint}"
    show(args, asdict(done), text)
    return 0


def _add(args: argparse.Namespace) -> int:
    users.add_role(Actor.current(), args.user, args.role)
    show(args, {"user": args.user, "added": args.role}, f"{args.user} is now a {args.role}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    actor = Actor.current()
    if args.role:
        users.remove_role(actor, args.user, args.role)
        print(f"removed {args.role} from {args.user}")
        return 0
    recovery = users.remove_user(actor, args.user)
    if args.json:
        print(json.dumps({"removed": args.user, "recovery_key": recovery}, indent=2))
        return 0
    print(f"{args.user} removed; every key was rotated so their key opens nothing new")
    print("New recovery key (the old one no longer opens the vault; shown only once):")
    print(f"  {recovery}")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    me = users.whoami(Actor.current())
    if args.json:
        print(json.dumps(me, indent=2))
        return 0
    print(f"{me['user']}  key {me['fingerprint']}")
    if not me["vault"]:
        print("no vault in this data folder yet ('medprint vault init' founds one)")
    elif me["request"]:
        print("not enrolled: your request is waiting; ask an administrator to run")
        print(f"  medprint users enrol {me['user']} ROLE --fingerprint {me['fingerprint']}")
    else:
        print(f"roles: {', '.join(me['roles']) or 'none'}")
    return 0

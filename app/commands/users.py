"""``medprint users``: roles of the OS accounts (administrators manage them)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.security import access

if TYPE_CHECKING:
    pass


def register(sub: argparse._SubParsersAction) -> None:
    _register_users(sub)


# --- users --------------------------------------------------------------------------------------


def _register_users(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="roles of the OS accounts (administrators manage them)")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every user and their roles").set_defaults(func=_users_list)
    add = actions.add_parser("add", help="give a user a role")
    add.add_argument("user", help="OS login name")
    add.add_argument("role", choices=access.ROLES)
    add.set_defaults(func=_users_add)
    remove = actions.add_parser("remove", help="take a role (or every role) from a user")
    remove.add_argument("user")
    remove.add_argument("role", nargs="?", choices=access.ROLES)
    remove.set_defaults(func=_users_remove)
    actions.add_parser(
        "bootstrap", help="make yourself the first administrator (only while no roles exist)"
    ).set_defaults(func=_users_bootstrap)


def _users_list(args: argparse.Namespace) -> int:
    from app.security.vault import Vault  # noqa: PLC0415

    roles = access.load_roles(Vault.open())
    for user, held in sorted(roles.items()):
        print(f"{user:24} {', '.join(sorted(held))}")
    if not roles:
        print("no roles assigned")
    return 0


def _users_bootstrap(args: argparse.Namespace) -> int:
    from app.security.vault import Vault  # noqa: PLC0415

    vault = Vault.open()
    access.load_roles(vault)  # the vault's creator, when the audit log names them, comes first
    access.bootstrap(vault, access.current_user())
    print(f"{access.current_user()} is now the administrator")
    return 0


def _users_add(args: argparse.Namespace) -> int:
    access.assign_role(access.current_user(), args.user, args.role)
    print(f"{args.user} is now a {args.role}")
    return 0


def _users_remove(args: argparse.Namespace) -> int:
    access.remove_role(access.current_user(), args.user, args.role)
    print(f"removed {args.role or 'every role'} from {args.user}")
    return 0

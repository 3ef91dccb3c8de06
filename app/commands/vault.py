"""``medprint vault init|status|rotate-key|recovery-key``."""

from __future__ import annotations

import argparse
import json

from app.workflow import users
from app.workflow.actor import Actor


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vault", help="create and manage the encrypted case vault")
    actions = parser.add_subparsers(dest="vault_action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", help="create the vault (you become its administrator); shows the recovery key once"
    )
    init.add_argument("--json", action="store_true")
    init.set_defaults(func=_init)
    status = actions.add_parser("status", help="vault folder, key generation, number of cases")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)
    rotate = actions.add_parser(
        "rotate-key",
        help="new master and data keys, every file re-encrypted, new recovery key shown once "
        "(administrators)",
    )
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=_rotate)
    recovery = actions.add_parser(
        "recovery-key",
        help="issue a new recovery key, shown once (administrators; rotates every key), or "
        "regain access with one",
    )
    recovery.add_argument(
        "--restore", metavar="KEY", help="seal the master key to your (new) personal keys"
    )
    recovery.add_argument("--json", action="store_true")
    recovery.set_defaults(func=_recovery)


def _init(args: argparse.Namespace) -> int:
    actor = Actor.current()
    recovery = users.init_vault(actor)
    if args.json:
        out = {
            "folder": str(actor.paths.vault),
            "administrator": actor.user,
            "recovery_key": recovery,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"vault created in {actor.paths.vault}; {actor.user} is its administrator")
    print("Recovery key (write it down and keep it offline; it is shown only once):")
    print(f"  {recovery}")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = users.vault_status(Actor.current())
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:18} {', '.join(value) if isinstance(value, list) else value}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    generation, recovery = users.rotate_key(Actor.current())
    if args.json:
        print(json.dumps({"key_generation": generation, "recovery_key": recovery}))
        return 0
    print(f"keys rotated; key generation is now {generation}")
    _show_recovery(recovery)
    return 0


def _show_recovery(recovery: str) -> None:
    print("New recovery key (write it down, keep it offline; the old one no longer opens")
    print("the vault; this one is shown only once):")
    print(f"  {recovery}")


def _recovery(args: argparse.Namespace) -> int:
    actor = Actor.current()
    if args.restore:
        vault_id = users.restore_vault(actor, args.restore)
        print(f"access restored: vault {vault_id} opens with your personal key again")
        return 0
    recovery = users.recovery_key(actor)
    if args.json:
        print(json.dumps({"recovery_key": recovery}))
    else:
        _show_recovery(recovery)
    return 0

"""``medprint vault init|status|rotate-key|recovery-key``."""

from __future__ import annotations

import argparse
import json

from app.security.vault import Vault


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("vault", help="create and manage the encrypted case vault")
    actions = parser.add_subparsers(dest="vault_action", metavar="ACTION", required=True)
    actions.add_parser("init", help="create the vault; shows the recovery key once").set_defaults(
        func=_init
    )
    status = actions.add_parser("status", help="vault folder, key generation, number of cases")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_status)
    actions.add_parser(
        "rotate-key", help="re-wrap every data key under a new master key"
    ).set_defaults(func=_rotate)
    recovery = actions.add_parser(
        "recovery-key", help="show the recovery key (audited), or restore access with it"
    )
    recovery.add_argument(
        "--restore", metavar="KEY", help="put the master key back into the keystore"
    )
    recovery.set_defaults(func=_recovery)


def _init(args: argparse.Namespace) -> int:
    vault, recovery = Vault.init()
    print(f"vault created in {vault.root}")
    print("Recovery key (write it down and keep it offline; it is shown only once):")
    print(f"  {recovery}")
    return 0


def _status(args: argparse.Namespace) -> int:
    info = Vault.open().status()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:18} {value}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    vault = Vault.open()
    vault.rotate_key()
    print(f"master key rotated; key generation is now {vault.generation}")
    return 0


def _recovery(args: argparse.Namespace) -> int:
    if args.restore:
        vault = Vault.restore_with_recovery_key(args.restore)
        print(f"access restored: the master key of vault {vault.vault_id} is back in the keystore")
    else:
        print(Vault.open().recovery_key())
    return 0

"""Migration of an old-format vault (master key in one keystore, unsigned roles) on its
founder's first open (:attr:`app.workflow.actor.Actor.vault` calls it)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from app.errors import MedPrintError, VaultError
from app.security import roles
from app.security.vault import Vault
from app.workflow import policy

if TYPE_CHECKING:
    from app.workflow.actor import Actor


def migrate(actor: Actor) -> Vault:
    """Turn an old-format vault (master key in one keystore, unsigned roles) into a current one
    founded by the actor, who must hold its master key in their own keystore (the account that
    ran ``vault init``, or restored it with the recovery key: in the old format that was the one
    account everybody used).

    Roles of other accounts are not carried over (they had no keys): they run ``medprint
    whoami`` and are enrolled again. The recovery key stays valid; rotate the keys afterwards.
    """
    try:
        vault = Vault.open_legacy(actor.paths)
    except MedPrintError:
        msg = "this vault was made by an older MedPrint version and only the account holding "
        msg += "its master key in its own keystore (its founder) can migrate it; see README, "
        msg += "'Migrating an older vault'"
        raise VaultError(msg) from None
    old = vault.get_record(roles.RECORD)
    vault.upgrade(actor.keys)
    roles.found(vault, actor.keys)
    actor.adopt_vault(vault)
    left = max(len(json.loads(old).get("users", {})) - 1, 0) if old else 0
    policy.record(actor, "vault.migrated", vault_id=vault.vault_id, roles_not_carried=left)
    return vault

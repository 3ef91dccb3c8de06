"""Anchors: what this person last saw of a vault's state, kept in their own OS keystore.

The data folder can be rolled back or wiped by anyone who can write to it; a person's keystore
cannot. So whenever someone acts, the newest state they saw is written to their keystore as a
named counter with the digest of that state:

``audit``
    the audit log's last record (sequence number, line hash);
``roles``
    the roles chain's head (statement number, statement hash);
``vault``
    ``vault.json``'s version (``meta_version``; the digest is empty when not known);
``decisions:<case>``
    the number of records in a case's ``approvals.json`` history and the hash of that history.

:meth:`Anchors.check` refuses any state older than its anchor, naming what is missing or older,
and (given the digest of the state at the anchored position) a history that was replaced.
Counters only move forward.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import IntegrityError
from app.security.keystore import Keystore

AUDIT, ROLES, VAULT = "audit", "roles", "vault"
_FIX = "; restore the data folder from a backup and tell an administrator"


def decisions(case: str) -> str:
    """The anchor name of a case's decision history."""
    return f"decisions:{case}"


@dataclass(frozen=True)
class Anchor:
    seq: int
    digest: str


def _describe(name: str) -> tuple[str, str]:
    """What the anchored state is called and what its counter counts."""
    if name.startswith("decisions:"):
        return f"the decision history of case {name.split(':', 1)[1]}", "decision"
    return {
        AUDIT: ("the audit log", "record"),
        ROLES: ("the roles record", "statement"),
        VAULT: ("vault.json", "version"),
    }.get(name, (name, "entry"))


class Anchors:
    """The anchors of one vault (by id) in one account's keystore."""

    def __init__(self, vault_id: str, keystore: Keystore | None = None) -> None:
        self.vault_id = vault_id
        self.keystore = keystore or Keystore()

    def _entry(self, name: str) -> str:
        return f"anchor-{self.vault_id}-{name}"

    def get(self, name: str) -> Anchor | None:
        raw = self.keystore.get(self._entry(name))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Anchor(int(data["seq"]), str(data["digest"]))
        except (ValueError, KeyError, TypeError):
            msg = f"the anchor of {_describe(name)[0]} in your keystore is unreadable" + _FIX
            raise IntegrityError(msg) from None

    def check(
        self,
        name: str,
        seq: int,
        digest: str,
        *,
        digest_at: Callable[[int], str | None] | None = None,
    ) -> None:
        """Raise :class:`IntegrityError` when the state (``seq``, ``digest``) is older than
        the anchor or not the one anchored; ``digest_at(n)`` gives the digest the state had at
        position ``n``, to catch a history replaced by a longer one."""
        anchor = self.get(name)
        if anchor is None:
            return
        what, unit = _describe(name)
        if seq == 0 and anchor.seq > 0:
            msg = f"{what} is missing (deleted): you saw {unit} {anchor.seq}"
            raise IntegrityError(msg + _FIX)
        if seq < anchor.seq:
            msg = f"{what} ends at {unit} {seq} but you saw {unit} {anchor.seq} "
            raise IntegrityError(msg + "(rolled back or deleted)" + _FIX)
        seen = digest if seq == anchor.seq else (digest_at(anchor.seq) if digest_at else None)
        if anchor.digest and seen is not None and seen != anchor.digest:
            msg = f"{what} at {unit} {anchor.seq} is not the one you saw (replaced)"
            raise IntegrityError(msg + _FIX)

    def advance(self, name: str, seq: int, digest: str) -> None:
        """Anchor (``seq``, ``digest``) unless a newer state is already anchored."""
        anchor = self.get(name)
        if anchor is not None and (anchor.seq, anchor.digest) == (seq, digest):
            return
        if anchor is None or seq >= anchor.seq:
            data = json.dumps({"seq": seq, "digest": digest}, sort_keys=True).encode()
            self.keystore.set(self._entry(name), data)

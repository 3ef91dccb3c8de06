"""The actor: who is acting (the OS account) and in which data folder (vault, audit, settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.case import Case
from app.security.identity import os_user
from app.security.vault import Vault
from app.settings import Paths, resolve_paths


@dataclass
class Actor:
    """One person at the workstation, acting on the data folder ``paths``.

    ``user`` comes from the OS account of the process (:func:`os_user`), never from the
    environment. The vault is opened on first use and kept open for the actor's lifetime.
    """

    user: str
    paths: Paths
    _vault: Vault | None = field(default=None, repr=False)

    @classmethod
    def current(cls, paths: Paths | None = None) -> Actor:
        return cls(os_user(), paths or resolve_paths())

    def has_vault(self) -> bool:
        return self._vault is not None or Vault.exists(self.paths)

    @property
    def vault(self) -> Vault:
        """The opened vault (a clear error when there is none or its key is missing)."""
        if self._vault is None:
            self._vault = Vault.open(self.paths)
        return self._vault

    def adopt_vault(self, vault: Vault) -> None:
        """Use an already opened vault (just created or restored)."""
        self._vault = vault

    def case(self, pseudonym: str) -> Case:
        """The case ``pseudonym`` of this vault; a clear error when it does not exist."""
        self.vault.case_entry(pseudonym)
        return Case(self.vault, pseudonym)

"""The actor: who is acting (the OS account), with which personal keys, in which data folder."""

from __future__ import annotations

from app.case import Case
from app.errors import KeystoreError
from app.security.identity import PersonalKeys, os_user
from app.security.vault import Vault
from app.settings import Paths, resolve_paths
from app.workflow import anchoring, migration


class Actor:
    """One person at the workstation, acting on the data folder ``paths``.

    ``user`` comes from the OS account of the process (:func:`os_user`), never from the
    environment. ``keys`` are that account's personal keys (from its own keystore, made on first
    use); tests acting as several people in one process pass ``keys`` made with
    :meth:`PersonalKeys.in_memory` and share one opened vault (``_vault``). The vault is opened
    with the personal keys on first use and kept open for the actor's lifetime.
    """

    def __init__(
        self,
        user: str,
        paths: Paths,
        *,
        keys: PersonalKeys | None = None,
        _vault: Vault | None = None,
    ) -> None:
        self.user = user
        self.paths = paths
        self._keys = keys
        self._vault = _vault

    def __repr__(self) -> str:
        return f"Actor({self.user!r}, {self.paths.root})"

    @classmethod
    def current(cls, paths: Paths | None = None) -> Actor:
        return cls(os_user(), paths or resolve_paths())

    @property
    def keys(self) -> PersonalKeys:
        """This person's signing and wrapping keys (made in the keystore on first use)."""
        if self._keys is None:
            if self.user != os_user():
                msg = f"no personal keys for '{self.user}' in this process; act as yourself"
                raise KeystoreError(msg)
            self._keys = PersonalKeys.load_or_create()
        return self._keys

    def has_vault(self) -> bool:
        return self._vault is not None or Vault.exists(self.paths)

    @property
    def vault(self) -> Vault:
        """The opened vault (a clear error when there is none or this person is no member).

        An old-format vault is migrated when its founder opens it
        (:func:`app.workflow.migration.migrate`).
        """
        if self._vault is None:
            if Vault.is_legacy(self.paths):
                self._vault = migration.migrate(self)
            else:
                self._vault = Vault.open(self.paths, self.keys)
            self._check_anchors()
        return self._vault

    def _check_anchors(self) -> None:
        """Refuse a vault whose audit log, roles or ``vault.json`` is older than this person saw
        (the anchors in their keystore); the vault stays closed then."""
        try:
            anchoring.check(self)
        except BaseException:
            self._vault = None
            raise

    @property
    def opened_vault(self) -> Vault | None:
        """The vault when it is already open (opens nothing)."""
        return self._vault

    def adopt_vault(self, vault: Vault) -> None:
        """Use an already opened vault (just created or restored)."""
        self._vault = vault

    def case(self, pseudonym: str) -> Case:
        """The case ``pseudonym`` of this vault; a clear error when it does not exist."""
        self.vault.case_entry(pseudonym)
        case = Case(self.vault, pseudonym)
        anchoring.check_case(self, case)
        return case

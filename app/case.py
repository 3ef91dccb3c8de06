"""Case: one patient's work in the vault, known everywhere outside it by its pseudonym.

A case holds the imported series (original DICOM, encrypted, for traceability, and the loaded
volume), the segmentation, mesh versions, QA reports, approvals and print jobs. Every file
goes through the vault; nothing of a case is ever written to disk in the clear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.errors import VaultError
from app.imaging.volume import Volume
from app.security import audit
from app.security.vault import Vault

VOLUME_FILE = "volume.mpvol"


@dataclass
class Case:
    vault: Vault
    pseudonym: str

    # ----- generic content ------------------------------------------------------------------
    def save_bytes(self, name: str, data: bytes) -> None:
        self.vault.write_bytes(self.pseudonym, name, data)

    def load_bytes(self, name: str) -> bytes:
        return self.vault.read_bytes(self.pseudonym, name)

    def has(self, name: str) -> bool:
        return self.vault.has_file(self.pseudonym, name)

    def files(self) -> list[str]:
        return self.vault.list_files(self.pseudonym)

    def save_json(self, name: str, obj: Any) -> None:
        self.save_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def load_json(self, name: str) -> Any:
        try:
            return json.loads(self.load_bytes(name))
        except ValueError:
            msg = f"{name} of case {self.pseudonym} is not valid JSON; restore it from a backup"
            raise VaultError(msg) from None

    # ----- the image ------------------------------------------------------------------------
    def save_volume(self, volume: Volume) -> None:
        with self.vault.write_file(self.pseudonym, VOLUME_FILE) as out:
            volume.write(out)
        audit.record("case.save_volume", case=self.pseudonym, shape=list(volume.shape))

    def load_volume(self) -> Volume:
        if not self.has(VOLUME_FILE):
            msg = f"case {self.pseudonym} has no image yet; import a series first"
            raise VaultError(msg)
        with self.vault.read_file(self.pseudonym, VOLUME_FILE) as src:
            return Volume.read(src)


def open_case(pseudonym: str, vault: Vault | None = None) -> Case:
    """The case ``pseudonym`` of the (opened) vault; a clear error when it does not exist."""
    vault = vault or Vault.open()
    vault.case_entry(pseudonym)
    return Case(vault, pseudonym)

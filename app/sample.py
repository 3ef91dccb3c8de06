"""The bundled sample case: a downsampled public CT so a new user sees something at once.

Source and licence: ``resources/sample/ATTRIBUTION.md`` (TCIA Pancreas-CT, CC BY 4.0).
"""

from __future__ import annotations

from app.case import Case, import_path
from app.progress import CancelToken, Progress
from app.resources import resource_path
from app.security.vault import Vault

SAMPLE_MARK = "MedPrint sample"


def sample_folder():
    return resource_path("sample", "ct-abdomen")


def find_sample_case(vault: Vault) -> Case | None:
    for entry in vault.list_cases():
        if entry.identity.get("sample") == SAMPLE_MARK:
            return Case(vault, entry.pseudonym)
    return None


def open_or_import_sample(
    vault: Vault, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> Case:
    """The sample case, imported into the vault the first time it is asked for."""
    existing = find_sample_case(vault)
    if existing is not None:
        return existing
    case = import_path(str(sample_folder()), vault=vault, progress=progress, cancel=cancel)
    vault.set_identity(
        case.pseudonym, {**vault.case_entry(case.pseudonym).identity, "sample": SAMPLE_MARK}
    )
    return case

"""Importing real DICOM into the vault: one case per import, originals kept, cancel undoes."""

from __future__ import annotations

import numpy as np
import pytest

from app.case import SERIES_FILE, import_path, open_case
from app.errors import Cancelled
from app.progress import CancelToken, Progress
from app.security import audit
from app.security.vault import Vault

pytest.importorskip("app.imaging.load", reason="the DICOM loader is not in this checkout yet")


@pytest.fixture
def vault(data_dir, keystore_service) -> Vault:
    return Vault.init()[0]


def test_import_stores_volume_originals_and_identity(vault, dicom_dir):
    folder = dicom_dir / "ct-head-ge-gantry-tilt-28"
    case = import_path(str(folder), vault=vault)
    entry = vault.case_entry(case.pseudonym)
    assert entry.identity.get("patient_id") is not None
    volume = open_case(case.pseudonym, vault).load_volume()
    assert volume.modality == "CT" and volume.array.dtype == np.int16
    assert np.allclose(np.abs(np.linalg.det(volume.direction)), 1.0)
    originals = [f for f in case.files() if f.startswith("dicom/")]
    assert len(originals) == len(list(folder.glob("*.dcm"))) or len(originals) == 28
    first = next(p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix != ".txt")
    stored = [case.load_bytes(name) for name in originals]
    assert first.read_bytes() in stored
    facts = case.load_json(SERIES_FILE)
    assert any("tilt" in w.lower() for w in facts["warnings"])
    actions = [r["action"] for r in audit.read_records()]
    assert "case.import" in actions


def test_cancelled_import_leaves_no_case_and_a_retry_gives_one(vault, dicom_dir):
    folder = dicom_dir / "ct-head-ge-gantry-tilt-28"
    token = CancelToken()

    def cancel_halfway(fraction: float, message: str) -> None:
        if fraction > 0.7:
            token.cancel()

    with pytest.raises(Cancelled):
        import_path(str(folder), vault=vault, progress=Progress(cancel_halfway), cancel=token)
    assert vault.list_cases() == []
    assert (
        not any((vault.root / "cases").glob("*/dicom/*"))
        if (vault.root / "cases").exists()
        else True
    )
    import_path(str(folder), vault=vault)
    assert len(vault.list_cases()) == 1


def test_sample_case_is_imported_once(vault):
    from app.sample import find_sample_case, open_or_import_sample

    try:
        first = open_or_import_sample(vault)
    except Exception as exc:  # the bundled sample is produced by scripts/make_sample.py
        pytest.skip(f"bundled sample not available: {exc}")
    again = open_or_import_sample(vault)
    assert first.pseudonym == again.pseudonym == find_sample_case(vault).pseudonym
    volume = first.load_volume()
    assert volume.modality == "CT" and (volume.array > 300).any()

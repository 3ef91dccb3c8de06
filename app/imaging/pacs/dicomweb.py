"""DICOMweb with dicomweb-client: QIDO-RS queries (native limit and offset) and WADO-RS
retrieves of a study or series into memory, one instance at a time."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import pydicom
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from requests import RequestException

from app.imaging.pacs.dimse import OnInstance, series_match, study_match
from app.imaging.pacs.nodes import Node, PacsError
from app.imaging.pacs.query import FindPage, Query, SeriesMatch, check_page
from app.progress import CancelToken, Progress, check_cancel, ensure

TIMEOUT = 10.0
_STUDY_FIELDS = ["PatientBirthDate", "StudyDescription", "NumberOfStudyRelatedInstances"]
_SERIES_FIELDS = ["SeriesDescription", "NumberOfSeriesRelatedInstances"]
_UIDS_PER_REQUEST = 50  # keeps the query string under 4 KiB


def _client(node: Node) -> DICOMwebClient:
    if not node.dicomweb:
        msg = f"PACS '{node.name}' has no DICOMweb address; add one with --dicomweb URL"
        raise PacsError(msg)
    client = DICOMwebClient(node.dicomweb.rstrip("/"))
    if node.tls_ca:
        client._session.verify = node.tls_ca
    return client


def _filters(query: Query) -> dict[str, str]:
    keys = {
        "PatientID": query.patient_id,
        "PatientName": query.name,
        "PatientBirthDate": query.birth_date,
        "AccessionNumber": query.accession,
        "ModalitiesInStudy": query.modality,
        "StudyDate": query.date_range,
    }
    return {k: v for k, v in keys.items() if v}


def _qido(node: Node, path: str, params: dict[str, object]) -> list[dict]:
    """A QIDO-RS search (``*`` wildcards kept literal in the query string)."""
    url = f"{node.dicomweb.rstrip('/')}/{path}?{urlencode(params, safe='*')}"
    session = _client(node)._session
    try:
        response = session.get(url, headers={"Accept": "application/dicom+json"}, timeout=TIMEOUT)
        response.raise_for_status()
    except RequestException as exc:
        msg = f"PACS '{node.name}' DICOMweb query failed ({type(exc).__name__})"
        raise PacsError(msg) from None
    return response.json() if response.content else []


def find(node: Node, query: Query, *, limit: int = 100, offset: int = 0) -> FindPage:
    """QIDO-RS: studies matching ``query`` from ``offset``, at most ``limit``, with series."""
    check_page(limit, offset)
    params = _filters(query) | {"limit": limit + 1, "offset": offset}
    found = _qido(node, "studies", params | {"includefield": ",".join(_STUDY_FIELDS)})
    studies = [study_match(Dataset.from_json(item)) for item in found[:limit]]
    by_study = _series_of(node, [study.uid for study in studies])
    for study in studies:
        study.series = by_study.get(study.uid, [])
    return FindPage(studies, offset, limit, more=len(found) > limit)


def _series_of(node: Node, study_uids: list[str]) -> dict[str, list[SeriesMatch]]:
    """The series of several studies: QIDO-RS with UID list matching, 50 studies a request."""
    out: dict[str, list[SeriesMatch]] = {}
    for start in range(0, len(study_uids), _UIDS_PER_REQUEST):
        uids = ",".join(study_uids[start : start + _UIDS_PER_REQUEST])
        params = {"StudyInstanceUID": uids, "includefield": ",".join(_SERIES_FIELDS)}
        for item in _qido(node, "series", params):
            ds = Dataset.from_json(item)
            out.setdefault(str(ds.get("StudyInstanceUID", "")), []).append(series_match(ds))
    return {uid: _in_order(matches) for uid, matches in out.items()}


def series(node: Node, study_uid: str) -> list[SeriesMatch]:
    found = _qido(node, f"studies/{study_uid}/series", {"includefield": ",".join(_SERIES_FIELDS)})
    return _in_order([series_match(Dataset.from_json(item)) for item in found])


def _in_order(matches: list[SeriesMatch]) -> list[SeriesMatch]:
    return sorted(matches, key=lambda s: (s.number is None, s.number or 0, s.uid))


def retrieve(
    node: Node,
    study_uid: str,
    series_uid: str | None,
    on_instance: OnInstance,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> int:
    """WADO-RS a study or series; each instance's bytes go to ``on_instance``. Failed count (0)."""
    progress = ensure(progress)
    client = _client(node)
    expected = _expected(node, study_uid, series_uid)
    if series_uid:
        instances = client.iter_series(study_uid, series_uid)
    else:
        instances = client.iter_study(study_uid)
    done = 0
    try:
        for dataset in instances:
            check_cancel(cancel)
            on_instance(_encode(dataset))
            done += 1
            progress.update(done / max(expected, done), f"receiving instances ({done}/{expected})")
    except RequestException as exc:
        msg = f"PACS '{node.name}' DICOMweb retrieve failed ({type(exc).__name__})"
        raise PacsError(msg) from None
    return 0


def _expected(node: Node, study_uid: str, series_uid: str | None) -> int:
    matches = series(node, study_uid)
    chosen = [s for s in matches if series_uid in (None, s.uid)]
    return sum(s.instances or 0 for s in chosen) or 1


def _encode(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()

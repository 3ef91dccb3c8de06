"""DIMSE with pynetdicom: C-ECHO, C-FIND (limit and paging), C-GET, C-MOVE to our own storage
SCP, and C-STORE. Every call names the node and answers within ``timeout`` seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE, _config, build_context, build_role, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from app.errors import Cancelled
from app.imaging.pacs.nodes import Node, PacsError
from app.imaging.pacs.query import (
    FindPage,
    Query,
    SeriesMatch,
    StudyMatch,
    as_int,
    check_page,
)
from app.imaging.pacs.tls import explain, server_context, tls_args
from app.progress import CancelToken, Progress, check_cancel, ensure

TIMEOUT = 10.0
OnInstance = Callable[[bytes], None]
# pynetdicom logs every query and response identifier element at INFO: thousands of lines per
# C-FIND (withheld by app.log's scrubber, yet rotating the log) and ~15% of its time.
_config.LOG_REQUEST_IDENTIFIERS = _config.LOG_RESPONSE_IDENTIFIERS = False

# Storage SOP classes we take in a C-GET or as the C-MOVE destination (CT, MR, PET, SC, SEG,
# the 3D model objects and their enhanced forms); each with the usual transfer syntaxes.
STORAGE_CLASSES = [
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image
    "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image
    "1.2.840.10008.5.1.4.1.1.128",  # PET Image
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
    "1.2.840.10008.5.1.4.1.1.104.3",  # Encapsulated STL
    "1.2.840.10008.5.1.4.1.1.104.4",  # Encapsulated OBJ
    "1.2.840.10008.5.1.4.1.1.104.5",  # Encapsulated MTL
]
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
]
_FAILED = "NumberOfFailedSuboperations"


def _ae(node: Node, timeout: float) -> AE:
    ae = AE(ae_title=node.our_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.connection_timeout = timeout
    return ae


@contextmanager
def _association(ae: AE, node: Node, timeout: float, **kwargs: object) -> Iterator[Association]:
    started = time.monotonic()
    tls = tls_args(node)
    opened: list[evt.Event] = []  # the TCP connection was made (a TLS or plain port answered)
    handlers = [*kwargs.pop("evt_handlers", []), (evt.EVT_CONN_OPEN, opened.append)]  # type: ignore[misc]
    assoc = ae.associate(
        node.host, node.port, ae_title=node.aet, tls_args=tls, evt_handlers=handlers, **kwargs
    )
    if tls is not None and tls[0].failure is not None:
        raise PacsError(explain(node, tls[0].failure))
    if not assoc.is_established:
        raise PacsError(
            _no_association(node, assoc, bool(opened), time.monotonic() - started, timeout)
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _no_association(
    node: Node, assoc: Association, opened: bool, waited: float, timeout: float
) -> str:
    where = f"PACS '{node.name}' at {node.host}:{node.port}"
    if assoc.is_rejected:
        msg = f"PACS '{node.name}' rejected the association (called AE title '{node.aet}', "
        return msg + f"ours '{node.our_aet}'); check both AE titles in the node and on the archive"
    if opened and waited < timeout / 2:
        tls_hint = "" if node.tls else "; if that port speaks DICOM TLS, add --tls"
        return f"{where} closed the connection without answering{tls_hint}"
    msg = f"{where} does not answer (no association after {waited:.1f} s of {timeout:.0f} s); "
    return msg + "is it running and reachable?"


def echo(node: Node, *, timeout: float = TIMEOUT) -> float:
    """C-ECHO ``node``; the round trip in seconds."""
    ae = _ae(node, timeout)
    ae.add_requested_context(Verification)
    started = time.monotonic()
    with _association(ae, node, timeout) as assoc:
        status = assoc.send_c_echo()
    _check_status(node, status, "C-ECHO")
    return time.monotonic() - started


def _check_status(node: Node, status: Dataset | None, what: str) -> int:
    if status is None or "Status" not in status:
        msg = f"PACS '{node.name}' did not answer the {what} in time (or aborted it)"
        raise PacsError(msg)
    code = int(status.Status)
    if code not in (0x0000, 0xFF00, 0xFF01, 0xFE00) and not 0xB000 <= code <= 0xBFFF:
        msg = f"PACS '{node.name}' refused the {what} (status 0x{code:04X})"
        raise PacsError(msg)
    return code


# --- C-FIND -------------------------------------------------------------------------------------


def _study_keys(query: Query) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = query.name
    ds.PatientID = query.patient_id
    ds.PatientBirthDate = query.birth_date
    ds.AccessionNumber = query.accession
    ds.ModalitiesInStudy = query.modality
    ds.StudyDate = query.date_range
    ds.StudyInstanceUID = ""
    ds.StudyDescription = ""
    return ds


def _series_keys(study_uids: list[str]) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uids
    ds.SeriesInstanceUID = ""
    ds.Modality = ""
    ds.SeriesNumber = ""
    ds.SeriesDescription = ""
    ds.NumberOfSeriesRelatedInstances = ""
    return ds


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if keyword == "ModalitiesInStudy":
        return "\\".join(value) if not isinstance(value, str) else value
    return str(value)


def study_match(ds: Dataset) -> StudyMatch:
    modalities = ds.get("ModalitiesInStudy", "") or ""
    modalities = [modalities] if isinstance(modalities, str) else list(modalities)
    return StudyMatch(
        uid=_text(ds, "StudyInstanceUID"),
        patient_name=_text(ds, "PatientName"),
        patient_id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        date=_text(ds, "StudyDate"),
        accession=_text(ds, "AccessionNumber"),
        description=_text(ds, "StudyDescription"),
        modalities=[m for m in modalities if m],
    )


def series_match(ds: Dataset) -> SeriesMatch:
    return SeriesMatch(
        uid=_text(ds, "SeriesInstanceUID"),
        modality=_text(ds, "Modality"),
        number=as_int(ds.get("SeriesNumber")),
        description=_text(ds, "SeriesDescription"),
        instances=as_int(ds.get("NumberOfSeriesRelatedInstances")),
    )


def find(
    node: Node,
    query: Query,
    *,
    limit: int = 100,
    offset: int = 0,
    timeout: float = TIMEOUT,
) -> FindPage:
    """Studies matching ``query`` (``offset`` onwards, at most ``limit``), each with its series.

    DIMSE has no paging: the C-FIND is cancelled (C-CANCEL, then A-ABORT) once the page is
    full and one more match is known, and a later page repeats the query and skips the first
    ``offset`` matches, which relies on the archive's stable order (Orthanc's is). The series
    of the page's studies come from one more C-FIND (UID list) on a new association.
    """
    check_page(limit, offset)
    ae = _ae(node, timeout)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    with _association(ae, node, timeout) as assoc:
        page, more = _find_studies(node, assoc, _study_keys(query), offset, limit)
    if page:
        with _association(ae, node, timeout) as assoc:
            series = _find_series(node, assoc, [study.uid for study in page])
        for study in page:
            study.series = series.get(study.uid, [])
    return FindPage(page, offset, limit, more=more)


def _find_studies(
    node: Node, assoc: Association, keys: Dataset, offset: int, limit: int
) -> tuple[list[StudyMatch], bool]:
    """The matches from ``offset`` on, at most ``limit``, and whether there are more. The
    matches before ``offset`` are counted, not kept. At match ``offset + limit + 1`` the
    C-FIND is cancelled and the association aborted: the archive may have thousands of
    responses in flight already, and reading them all would take seconds."""
    model = StudyRootQueryRetrieveInformationModelFind
    page: list[StudyMatch] = []
    seen = 0
    responses = assoc.send_c_find(keys, model, msg_id=1)
    for status, identifier in responses:
        code = _check_status(node, status, "C-FIND")
        if code not in (0xFF00, 0xFF01) or identifier is None:
            continue
        seen += 1
        if seen > offset + limit:
            assoc.send_c_cancel(1, query_model=model)
            assoc.abort()
            return page, True
        if seen > offset:
            page.append(study_match(identifier))
    return page, False


def _find_series(
    node: Node, assoc: Association, study_uids: list[str]
) -> dict[str, list[SeriesMatch]]:
    """The series of several studies in one C-FIND (UID list matching)."""
    model = StudyRootQueryRetrieveInformationModelFind
    out: dict[str, list[SeriesMatch]] = {}
    for status, identifier in assoc.send_c_find(_series_keys(study_uids), model):
        code = _check_status(node, status, "C-FIND")
        if code in (0xFF00, 0xFF01) and identifier is not None:
            study = _text(identifier, "StudyInstanceUID")
            out.setdefault(study, []).append(series_match(identifier))
    for matches in out.values():
        matches.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
    return out


# --- C-GET and C-MOVE ---------------------------------------------------------------------------


def _retrieve_keys(study_uid: str, series_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    ds.StudyInstanceUID = study_uid
    if series_uid:
        ds.SeriesInstanceUID = series_uid
    return ds


def _store_handler(on_instance: OnInstance, cancel: CancelToken | None) -> Callable:
    def handle(event: evt.Event) -> int:
        if cancel is not None and cancel.cancelled:
            return 0xA700  # refused: out of resources (we are stopping)
        on_instance(event.encoded_dataset(include_meta=True))
        return 0x0000

    return handle


def get(
    node: Node,
    study_uid: str,
    series_uid: str | None,
    on_instance: OnInstance,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = TIMEOUT,
) -> int:
    """C-GET a study or series; each instance's bytes go to ``on_instance``. Failed count."""
    ae = _ae(node, timeout)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    roles = []
    for uid in STORAGE_CLASSES:
        ae.add_requested_context(uid, TRANSFER_SYNTAXES)
        roles.append(build_role(uid, scp_role=True))
    handlers = [(evt.EVT_C_STORE, _store_handler(on_instance, cancel))]
    keys = _retrieve_keys(study_uid, series_uid)
    with _association(ae, node, timeout, ext_neg=roles, evt_handlers=handlers) as assoc:
        responses = assoc.send_c_get(keys, StudyRootQueryRetrieveInformationModelGet)
        return _follow(node, assoc, responses, "C-GET", progress=ensure(progress), cancel=cancel)


def move(
    node: Node,
    study_uid: str,
    series_uid: str | None,
    on_instance: OnInstance,
    *,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
    timeout: float = TIMEOUT,
) -> int:
    """C-MOVE a study or series to our own storage SCP (listening on ``node.our_port`` only
    while the move runs, accepting only ``node.aet``; over TLS for a TLS node). Failed count."""
    ae = _ae(node, timeout)
    ae.require_calling_aet = [node.aet]
    contexts = [build_context(uid, TRANSFER_SYNTAXES) for uid in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, _store_handler(on_instance, cancel))]
    try:
        server = ae.start_server(
            ("", node.our_port), block=False, evt_handlers=handlers, contexts=contexts,
            ssl_context=server_context(node),
        )  # fmt: skip
    except OSError:
        msg = f"cannot listen on port {node.our_port} for the C-MOVE; is it in use?"
        raise PacsError(msg) from None
    try:
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        keys = _retrieve_keys(study_uid, series_uid)
        with _association(ae, node, timeout) as assoc:
            responses = assoc.send_c_move(
                keys, node.our_aet, StudyRootQueryRetrieveInformationModelMove
            )
            return _follow(
                node, assoc, responses, "C-MOVE", progress=ensure(progress), cancel=cancel
            )
    finally:
        server.shutdown()


def _follow(
    node: Node,
    assoc: Association,
    responses: Iterator[tuple[Dataset, Dataset | None]],
    what: str,
    *,
    progress: Progress,
    cancel: CancelToken | None,
) -> int:
    """Follow a C-GET/C-MOVE's responses: progress from the sub-operation counts; cancelling
    aborts the association. The number of failed sub-operations."""
    failed = 0
    for status, _identifier in responses:
        if cancel is not None and cancel.cancelled:
            assoc.abort()
            check_cancel(cancel)
        code = _check_status(node, status, what)
        failed = int(status.get(_FAILED, 0) or 0)
        done = sum(int(status.get(k, 0) or 0) for k in ("NumberOfCompletedSuboperations", _FAILED))
        left = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
        if done + left:
            progress.update(done / (done + left), f"receiving instances ({done}/{done + left})")
        if code == 0xFE00:
            msg = f"the {what} was cancelled by PACS '{node.name}'"
            raise Cancelled(msg)
    check_cancel(cancel)
    return failed


# --- C-STORE ------------------------------------------------------------------------------------


def store(
    node: Node,
    datasets: list[Dataset],
    *,
    progress: Progress | None = None,
    timeout: float = TIMEOUT,
) -> int:
    """C-STORE ``datasets`` (Explicit VR Little Endian) to ``node``; how many were stored."""
    progress = ensure(progress)
    ae = _ae(node, timeout)
    for uid in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(uid, ["1.2.840.10008.1.2.1"])
    stored = 0
    with _association(ae, node, timeout) as assoc:
        _check_accepted(node, assoc, datasets)
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = _check_status(node, status, "C-STORE")
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
                msg = f"PACS '{node.name}' did not store an instance (status 0x{code:04X})"
                raise PacsError(msg)
            stored += 1
            progress.update(stored / len(datasets), f"stored {stored} of {len(datasets)} objects")
    return stored


def _check_accepted(node: Node, assoc: Association, datasets: list[Dataset]) -> None:
    """Refuse before the first C-STORE when the archive takes not every object's SOP class."""
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    missing = sorted({str(ds.SOPClassUID) for ds in datasets} - accepted)
    if missing:
        names = ", ".join(UID(uid).name for uid in missing)
        msg = f"PACS '{node.name}' does not accept {names}; nothing was sent"
        raise PacsError(msg)

"""The de-identification of one dataset's elements (header, sequences and file meta)."""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from app.security.deid.errors import DeidError
from app.security.deid.profile import (
    CID_7050,
    TABLE_EDITION,
    DeidOptions,
    Profile,
    descriptor_tags,
    profile_for,
)
from app.security.deid.values import remap_uid, shift_date, shift_datetime

DUMMY_TEXT = "ANONYMIZED"
PREAMBLE = bytes(128)
DUMMY_VALUES: dict[str, object] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "PN": "ANONYMOUS",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "UR": "",
}
_TEXT_VRS = {"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR"}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "AT"}
_BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
_MAX_LENGTH = {"AE": 16, "CS": 16, "SH": 16, "LO": 64, "ST": 1024, "LT": 10240}
_META_KEEP = ("FileMetaInformationVersion", "MediaStorageSOPClassUID", "TransferSyntaxUID")


_DIGIT_RUN = re.compile(r"\d{5,}")
_DATE_LIKE = re.compile(r"\b(\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})\b")


@dataclass
class Identity:
    """Identifiers of one dataset, used to clean free text (the ``C`` action on text)."""

    tokens: set[str] = field(default_factory=set)
    phrases: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, ds: Dataset) -> Identity:
        found = cls()
        basic = profile_for(DeidOptions())
        descriptors = descriptor_tags()
        for elem in walk(ds):
            if elem.tag.is_private or elem.VR == "SQ" or int(elem.tag) in descriptors:
                continue
            if basic.action(elem.tag, elem.VR) == "K":
                continue  # not identifying (manufacturer, model, ...)
            for value in text_values(elem):
                found._add(elem, value)
        return found

    def _add(self, elem: DataElement, value: str) -> None:
        keyword = elem.keyword or ""
        if elem.VR == "PN":
            for part in re.split(r"[\^=\s,]+", value):
                if len(part) >= 3:
                    self.tokens.add(part.upper())
        elif elem.VR == "DA" and len(value) == 8:
            self.phrases.update({value, f"{value[:4]}-{value[4:6]}-{value[6:]}"})
            self.phrases.update({f"{value[6:]}.{value[4:6]}.{value[:4]}"})
            self.phrases.update({f"{value[4:6]}/{value[6:]}/{value[:4]}"})
        elif elem.VR in ("LO", "SH", "ST") and is_identifier_keyword(keyword) and len(value) >= 3:
            self.phrases.add(value.upper())

    def clean(self, text: str, max_length: int | None = None) -> str:
        """``text`` without the identifiers, date-like strings and long digit runs."""
        cleaned = text
        for phrase in sorted(self.phrases, key=len, reverse=True):
            cleaned = re.sub(re.escape(phrase), " ", cleaned, flags=re.IGNORECASE)
        words = [
            w
            for w in re.split(r"(\s+)", cleaned)
            if w.strip().upper().strip(".,;:") not in self.tokens
        ]
        cleaned = _DATE_LIKE.sub(" ", "".join(words))
        cleaned = " ".join(_DIGIT_RUN.sub(" ", cleaned).split())
        return cleaned[:max_length] if max_length else cleaned


_ID_WORDS = (
    "ID", "Number", "Institution", "Address", "Telephone", "Telecom", "Physician", "Operator",
    "Name", "Location", "Accession", "Issuer", "Station", "Performer", "Observer", "Author",
)  # fmt: skip


def is_identifier_keyword(keyword: str) -> bool:
    return any(word in keyword for word in _ID_WORDS) and "Description" not in keyword


def text_values(elem: DataElement) -> list[str]:
    if elem.VR in _NUMBER_VRS or elem.VR in _BINARY_VRS or elem.VR == "SQ":
        return []
    value = elem.value
    if value is None or value == "":
        return []
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


def walk(ds: Dataset) -> Iterator[DataElement]:
    """Every element of ``ds`` and its sequences, depth first (file meta included)."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        yield from meta
    stack = [ds]
    while stack:
        current = stack.pop()
        for elem in current:
            yield elem
            if elem.VR == "SQ" and elem.value:
                stack.extend(item for item in elem.value if isinstance(item, Dataset))


class _Deidentifier:
    """Applies a :class:`Profile` to one dataset, in place."""

    def __init__(
        self,
        profile: Profile,
        uid_key: bytes,
        pseudonym: str,
        date_shift_days: int,
        identity: Identity,
    ) -> None:
        self.profile = profile
        self.uid_key = uid_key
        self.pseudonym = pseudonym
        self.shift = date_shift_days
        self.identity = identity
        self.longitudinal = profile.options.retain_longitudinal_temporal

    def dataset(self, ds: Dataset) -> None:
        for elem in list(ds):
            action = self.profile.action(elem.tag, elem.VR)
            if action == "X":
                del ds[elem.tag]
            else:
                self.element(elem, action)

    def element(self, elem: DataElement, action: str) -> None:
        if elem.VR == "SQ":
            self.sequence(elem, action)
            return
        keyword = elem.keyword
        if keyword in ("PatientName", "PatientID") and action != "K":
            elem.value = self.pseudonym
        elif action == "Z":
            elem.value = b"" if elem.VR in _BINARY_VRS else None
        elif action == "D":
            elem.value = self._dummy(elem)
        elif action == "U":
            elem.value = self._uids(elem)
        elif action == "C":
            self._clean(elem)

    def sequence(self, elem: DataElement, action: str) -> None:
        if action in ("Z", "D"):
            elem.value = DicomSequence([])
            return
        for item in elem.value or []:
            self.dataset(item)

    def _uids(self, elem: DataElement) -> object:
        if elem.VR != "UI":
            return self._dummy(elem)
        values = text_values(elem)
        mapped = [remap_uid(v, self.uid_key) for v in values]
        return mapped[0] if len(mapped) == 1 else mapped or None

    def _dummy(self, elem: DataElement) -> object:
        vr = elem.VR
        if vr == "UI":
            return self._uids(elem)
        if vr in DUMMY_VALUES:
            return DUMMY_VALUES[vr]
        if vr in _NUMBER_VRS:
            return 0
        if vr in _BINARY_VRS:
            return b"\x00\x00"
        return DUMMY_TEXT

    def _clean(self, elem: DataElement) -> None:
        vr = elem.VR
        values = text_values(elem)
        if not values:
            return
        if vr in ("DA", "DT", "TM"):
            shifted = [self._temporal(vr, v) for v in values]
            elem.value = shifted[0] if len(shifted) == 1 else shifted
        elif vr in _TEXT_VRS or vr == "PN":
            cleaned = [self.identity.clean(v, _MAX_LENGTH.get(vr)) for v in values]
            cleaned = [c for c in cleaned if c]
            elem.value = (cleaned[0] if len(cleaned) == 1 else cleaned) if cleaned else None

    def _temporal(self, vr: str, value: str) -> str:
        if not self.longitudinal:
            return str(DUMMY_VALUES[vr])
        if vr == "TM":
            return value
        moved = shift_date(value, self.shift) if vr == "DA" else shift_datetime(value, self.shift)
        return moved if moved is not None else str(DUMMY_VALUES[vr])


def add_method(ds: Dataset, codes: Sequence[str], descriptions: Sequence[str] = ()) -> None:
    """Append CID 7050 items and method text, skipping ones already present."""
    seq = ds.get("DeidentificationMethodCodeSequence")
    items = list(seq) if seq is not None else []
    have = {str(item.get("CodeValue", "")) for item in items}
    for code in codes:
        if code in have:
            continue
        item = Dataset()
        item.CodeValue = code
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = CID_7050[code]
        items.append(item)
    ds.DeidentificationMethodCodeSequence = DicomSequence(items)
    method = ds.get(Tag(0x0012, 0x0063))  # the element, not its value
    texts = text_values(method) if method is not None else []
    texts += [t for t in descriptions if t not in texts]
    ds.DeidentificationMethod = texts[0] if len(texts) == 1 else texts


def method_texts(codes: Sequence[str]) -> list[str]:
    texts = [f"MedPrint; DICOM PS3.15 E.1-1 ({TABLE_EDITION})"]
    return texts + [CID_7050[c][:64] for c in codes]


def deidentify(
    dataset: Dataset,
    *,
    options: DeidOptions,
    uid_key: bytes,
    pseudonym: str,
    date_shift_days: int = 0,
    in_place: bool = False,
) -> Dataset:
    """De-identify one dataset to the Basic Profile plus ``options``.

    Parameters
    ----------
    dataset
        A pydicom dataset, with or without file meta information.
    options
        The Annex E options to apply (see :class:`DeidOptions`).
    uid_key
        Secret key of the UID remapping (at least 16 bytes).
    pseudonym
        Value for Patient's Name and Patient ID.
    date_shift_days
        Days added to every date when ``options.retain_longitudinal_temporal`` is set; must not
        be 0 then.
    in_place
        Change ``dataset`` itself instead of a copy.

    Returns
    -------
    Dataset
        The de-identified dataset, with a zeroed preamble, Patient Identity Removed, De-identification Method (and
        its Code Sequence) and Longitudinal Temporal Information Modified set. Defacing and pixel
        masking are separate steps (:func:`deface_mask`, :func:`mask_rectangles`).
    """
    check_arguments(options, uid_key, pseudonym, date_shift_days)
    ds = dataset if in_place else copy.deepcopy(dataset)
    profile = profile_for(options)
    with quiet_pydicom():
        worker = _Deidentifier(profile, uid_key, pseudonym, date_shift_days, Identity.of(ds))
        worker.dataset(ds)
        _deidentify_meta(ds, worker)
    ds.preamble = PREAMBLE  # the 128 free bytes before "DICM" can hold anything (names, TIFF)
    ds.PatientIdentityRemoved = "YES"
    codes = options.method_codes()
    add_method(ds, codes, method_texts(codes))
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_longitudinal_temporal else "REMOVED"
    )
    return ds


def check_arguments(
    options: DeidOptions, uid_key: bytes, pseudonym: str | None, date_shift_days: int | None
) -> None:
    if len(uid_key) < 16:
        msg = "the UID key is too short (need 16 bytes or more); use the key from the keystore"
        raise DeidError(msg)
    if options.retain_longitudinal_temporal and date_shift_days == 0:
        msg = "modified dates need a non-zero date shift; pass date_shift_days (see date_shift_for)"
        raise DeidError(msg)
    if pseudonym is not None and not 0 < len(pseudonym) <= 64:
        msg = "the pseudonym must be 1 to 64 characters; use the case pseudonym from the vault"
        raise DeidError(msg)


def _deidentify_meta(ds: Dataset, worker: _Deidentifier) -> None:
    """Keep only the meta elements that describe the encoding; point it at the new instance."""
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    for keyword in _META_KEEP:
        if keyword in old:
            meta[keyword] = old[keyword]
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = _transfer_syntax_of(ds)
    if meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian  # so the output can be verified as is
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif "MediaStorageSOPInstanceUID" in old:
        meta.MediaStorageSOPInstanceUID = remap_uid(old.MediaStorageSOPInstanceUID, worker.uid_key)
    ds.file_meta = meta


def _transfer_syntax_of(ds: Dataset) -> UID:
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        implicit, little = True, True
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Keep pydicom's warnings and log records out of the logs: they can quote element values.

    ``warnings.catch_warnings`` is process-wide state, safe only on the main thread; a worker
    thread (the GUI's) gets a lasting filter for pydicom's modules instead.
    """
    logger = logging.getLogger("pydicom")
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.CRITICAL + 1)
    logger.propagate = False
    try:
        if threading.current_thread() is not threading.main_thread():
            warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")
            yield
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
    finally:
        logger.setLevel(level)
        logger.propagate = propagate

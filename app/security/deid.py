"""De-identification of DICOM to the PS3.15 Annex E Basic Application Level Confidentiality Profile.

The profile is driven by the standard's whole Table E.1-1, stored as data in
``resources/deid/table_e1_1.csv`` (see the README there for the edition). Every element of a
dataset, at every nesting level of every sequence, and the file meta information, gets the action
the table gives it under the chosen options; private elements are removed; UIDs are remapped with a
keyed hash so one input UID always gives the same output UID under the same key.

How the table's action codes are applied
-----------------------------------------
- ``X`` remove; ``Z`` empty value (a sequence becomes empty); ``K`` keep (sequences are cleaned
  item by item); ``U`` new UID ``2.25.<HMAC-SHA256(key, uid)>``; UIDs under the DICOM root
  ``1.2.840.10008`` (SOP classes, transfer syntaxes, coding schemes) are never changed.
- ``D`` a dummy value of the element's VR (Patient's Name and Patient ID get the case pseudonym;
  a sequence becomes empty).
- ``C`` clean: dates and date-times are shifted by a whole number of days under Retain
  Longitudinal Temporal Information (Modified Dates), times kept; text loses every token that
  matches an identifier of the same dataset (name parts, IDs, dates, institution) and every date-
  or ID-like digit run; sequences are cleaned item by item.
- ``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``: the first action unless the attribute needs a value (Type 1)
  or presence (Type 2) in the CT, MR, enhanced CT/MR, SC, US, XA and PET image IODs MedPrint
  handles (:data:`NEEDS_VALUE`, :data:`NEEDS_PRESENCE`).
- ``X/Z/U*`` (Referenced Image and Source Image Sequences): kept with every UID inside remapped,
  which keeps references consistent inside the de-identified set and carries nothing identifying.
- Elements the table does not list: dates and date-times are treated as the listed ones (removed,
  or shifted under the longitudinal option), person names are removed, other UIDs are remapped,
  public tags unknown to the data dictionary are removed (nothing can be said of their content),
  group lengths are removed; everything else is kept.
- Overlay (60xx) and curve (50xx) groups are removed whole (their data is ``X``; their labels
  and descriptions are free text).

Burned-in annotation (:func:`burned_in_risk`) blocks export in :func:`deid_folder` until pixel
rectangles are blanked (:func:`mask_rectangles`, code 113101) or the caller confirms. Defacing of
head CT/MR (:func:`deface_mask`, code 113102) removes the soft tissue in front of the skull.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import hmac
import io
import logging
import os
import re
import secrets
import shutil
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pydicom
from pydicom.datadict import dictionary_has_tag, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from scipy import ndimage

from app.errors import DicomError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.resources import resources_root
from app.security.atomic import fsync_dir

TABLE_PATH = resources_root() / "deid" / "table_e1_1.csv"
TABLE_EDITION = "2025b"
DICOM_ROOT = "1.2.840.10008."

# CID 7050 "De-identification Method" (PS3.16).
CID_7050 = {
    "113100": "Basic Application Confidentiality Profile",
    "113101": "Clean Pixel Data Option",
    "113102": "Clean Recognizable Visual Features Option",
    "113103": "Clean Graphics Option",
    "113104": "Clean Structured Content Option",
    "113105": "Clean Descriptors Option",
    "113106": "Retain Longitudinal Temporal Information Full Dates Option",
    "113107": "Retain Longitudinal Temporal Information Modified Dates Option",
    "113108": "Retain Patient Characteristics Option",
    "113109": "Retain Device Identity Option",
    "113110": "Retain UIDs Option",
    "113111": "Retain Safe Private Option",
    "113112": "Retain Institution Identity Option",
}

# Attributes with a compound action code that are Type 1 (need a value) or Type 2 (need to be
# present) in at least one image IOD MedPrint handles; all others take the first action (X or Z).
NEEDS_VALUE = frozenset(
    {
        0x00080023,  # Content Date: Type 1 in the enhanced CT/MR image modules
        0x00080033,  # Content Time
        0x0008002A,  # Acquisition DateTime: Type 1C in the enhanced CT/MR image modules
        0x00181000,  # Device Serial Number: Type 1 in Enhanced General Equipment
        0x00189919,  # Instruction Performed DateTime
    }
)
NEEDS_PRESENCE = frozenset(
    {
        0x00400555,  # Acquisition Context Sequence: Type 2 in the Acquisition Context module
        0x00180010,  # Contrast/Bolus Agent: Type 2 in the Contrast/Bolus module
        0x00700084,  # Content Creator's Name: Type 2 where present
    }
)

DUMMY_TEXT = "ANONYMIZED"
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
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_HEAD_WORDS = (
    "HEAD", "BRAIN", "SKULL", "CRAN", "NEURO", "FACE", "FACIAL", "SINUS", "ORBIT", "MAXILL",
    "MANDIB", "DENTAL", "TMJ", "KOPF", "SCHAEDEL", "SCHADEL", "TETE", "CEREB",
)  # fmt: skip


class DeidError(DicomError):
    """De-identification cannot be done as asked."""


class BurnedInAnnotationBlocked(DeidError):
    """Images that may carry burned-in text were neither masked nor confirmed."""


class IdentifierLeak(DeidError):
    """The verification found an input identifier in the de-identified output."""


@dataclass(frozen=True)
class DeidOptions:
    """The Annex E options applied on top of the Basic Profile.

    Attributes
    ----------
    retain_longitudinal_temporal
        Retain Longitudinal Temporal Information with Modified Dates (113107): dates shifted by
        a whole number of days, times kept.
    clean_descriptors
        Clean Descriptors (113105): descriptions kept with identifiers removed from them.
    retain_device_identity
        Retain Device Identity (113109): station, serial numbers and device IDs kept.
    retain_patient_characteristics
        Retain Patient Characteristics (113108): sex, age, size, weight... kept.
    deface
        Clean Recognizable Visual Features (113102) for head CT/MR: face soft tissue removed.
        Off by default, since the face is sometimes what is printed.
    """

    retain_longitudinal_temporal: bool = False
    clean_descriptors: bool = False
    retain_device_identity: bool = False
    retain_patient_characteristics: bool = False
    deface: bool = False

    def columns(self) -> list[str]:
        """Columns of the table, besides ``basic``, that apply."""
        chosen = [
            (self.retain_longitudinal_temporal, "retain_long_modified_dates"),
            (self.clean_descriptors, "clean_descriptors"),
            (self.retain_device_identity, "retain_device_identity"),
            (self.retain_patient_characteristics, "retain_patient_characteristics"),
        ]
        return [column for on, column in chosen if on]

    def method_codes(self) -> list[str]:
        """CID 7050 codes of the profile and options applied by :func:`deidentify`."""
        codes = ["113100"]
        codes += ["113107"] if self.retain_longitudinal_temporal else []
        codes += ["113105"] if self.clean_descriptors else []
        codes += ["113109"] if self.retain_device_identity else []
        codes += ["113108"] if self.retain_patient_characteristics else []
        return codes


@dataclass(frozen=True)
class Rect:
    """A rectangle of pixels: ``x`` (column) and ``y`` (row) of the top-left corner, size."""

    x: int
    y: int
    width: int
    height: int


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class TableRow:
    tag: str
    name: str
    keyword: str
    actions: Mapping[str, str]


@cache
def load_table(path: Path = TABLE_PATH) -> tuple[TableRow, ...]:
    """Every row of PS3.15 Table E.1-1, as shipped in ``resources/deid``."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        msg = f"the de-identification table is missing ({exc.strerror}); reinstall MedPrint"
        raise DeidError(msg) from None
    fixed = ("tag", "name", "keyword")
    return tuple(
        TableRow(r["tag"], r["name"], r["keyword"], {k: v for k, v in r.items() if k not in fixed})
        for r in rows
    )


def _tag_pattern(text: str) -> tuple[int, int] | None:
    """``(0008,0050)`` -> (mask, value); ``(60xx,3000)`` matches any 60xx group; None: private."""
    digits = text.strip("()").replace(",", "")
    if digits.lower() == "ggggeeee":
        return None
    mask = int("".join("0" if c in "xX" else "F" for c in digits), 16)
    value = int("".join("0" if c in "xX" else c for c in digits), 16)
    return mask, value


def _merge(basic: str, option_actions: list[str]) -> str:
    """Options override the basic profile; K (retain) wins over C (clean)."""
    if "K" in option_actions:
        return "K"
    if "C" in option_actions:
        return "C"
    return basic


def _resolve(code: str, tag: int) -> str:
    """Turn a compound code into the one action to take for this attribute."""
    if code == "Z/D":
        return "D" if tag in NEEDS_VALUE else "Z"
    if code == "X/Z/U*":
        return "U"
    if code.startswith("X/"):
        if tag in NEEDS_VALUE and "D" in code:
            return "D"
        if (tag in NEEDS_PRESENCE or tag in NEEDS_VALUE) and "Z" in code:
            return "Z"
        return "X"
    return code


class Profile:
    """The effective action for any tag under a set of options."""

    def __init__(self, options: DeidOptions, table: Sequence[TableRow] | None = None) -> None:
        self.options = options
        self.exact: dict[int, str] = {}
        self.patterns: list[tuple[int, int, str]] = []
        self.private = "X"
        columns = options.columns()
        for row in table if table is not None else load_table():
            code = _merge(row.actions["basic"], [row.actions[c] for c in columns if row.actions[c]])
            pattern = _tag_pattern(row.tag)
            if pattern is None:
                continue  # private attributes: always removed (no Retain Safe Private)
            mask, value = pattern
            if mask == 0xFFFFFFFF:
                self.exact[value] = _resolve(code, value)
            else:
                self.patterns.append((mask, value, _resolve(code, value)))
        self._cache: dict[tuple[int, str], str] = {}

    def action(self, tag: BaseTag, vr: str) -> str:
        key = (int(tag), vr)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._action(tag, vr)
        return found

    def _action(self, tag: BaseTag, vr: str) -> str:
        if tag.is_private:
            return self.private
        if tag.element == 0 or tag.group == 0xFFFC:
            return "X"  # group lengths and trailing padding
        if int(tag) in self.exact:
            return self.exact[int(tag)]
        for mask, value, code in self.patterns:
            if int(tag) & mask == value:
                return code
        return self._unlisted(tag, vr)

    def _unlisted(self, tag: BaseTag, vr: str) -> str:
        group = tag.group
        if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
            return "X"  # curves and overlays go whole: their data is removed (X), and their
            # descriptions and labels are free text
        if not dictionary_has_tag(tag):
            return "X"
        if vr in ("DA", "DT"):
            return "C" if self.options.retain_longitudinal_temporal else "X"
        if vr == "PN":
            return "X"
        if vr == "UI":
            return "U"
        return "K"


# --------------------------------------------------------------------------- values


def remap_uid(uid: str, key: bytes) -> str:
    """``2.25.<integer>`` from HMAC-SHA256(key, uid): same input and key, same output UID."""
    uid = str(uid).strip().rstrip("\x00")
    if not uid or uid.startswith(DICOM_ROOT):
        return uid
    digest = hmac.new(key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def date_shift_for(key: bytes, patient_id: str) -> int:
    """A per-patient shift of -3650..-30 days, derived from the key (stable for a patient)."""
    digest = hmac.new(key, b"date-shift\0" + patient_id.encode("utf-8"), hashlib.sha256).digest()
    return -(30 + int.from_bytes(digest[:4], "big") % 3621)


def shift_date(text: str, days: int) -> str | None:
    """A DA value moved by ``days``; None when it is not a full date."""
    digits = text.strip().replace(".", "").replace("-", "")
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        moved = dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) + dt.timedelta(days)
    except (ValueError, OverflowError):
        return None
    return f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"


def shift_datetime(text: str, days: int) -> str | None:
    """A DT value with its date part moved by ``days`` (time and offset kept)."""
    text = text.strip()
    moved = shift_date(text[:8], days) if len(text) >= 8 else None
    return None if moved is None else moved + text[8:]


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
        basic = _profile(DeidOptions())
        descriptors = _descriptor_tags()
        for elem in _walk(ds):
            if elem.tag.is_private or elem.VR == "SQ" or int(elem.tag) in descriptors:
                continue
            if basic.action(elem.tag, elem.VR) == "K":
                continue  # not identifying (manufacturer, model, ...)
            for value in _text_values(elem):
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
        elif elem.VR in ("LO", "SH", "ST") and _is_identifier_keyword(keyword) and len(value) >= 3:
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


@cache
def _descriptor_tags() -> frozenset[int]:
    """Tags the Clean Descriptors option cleans: descriptions, not identifiers."""
    rows = load_table()
    found = (_tag_pattern(r.tag) for r in rows if r.actions["clean_descriptors"] == "C")
    return frozenset(value for mask, value in filter(None, found) if mask == 0xFFFFFFFF)


def _is_identifier_keyword(keyword: str) -> bool:
    return any(word in keyword for word in _ID_WORDS) and "Description" not in keyword


def _text_values(elem: DataElement) -> list[str]:
    if elem.VR in _NUMBER_VRS or elem.VR in _BINARY_VRS or elem.VR == "SQ":
        return []
    value = elem.value
    if value is None or value == "":
        return []
    values = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
    return [str(v).strip() for v in values if v is not None and str(v).strip()]


# --------------------------------------------------------------------------- dataset walk


def _walk(ds: Dataset) -> Iterator[DataElement]:
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
        values = _text_values(elem)
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
        values = _text_values(elem)
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


def _add_method(ds: Dataset, codes: Sequence[str], descriptions: Sequence[str] = ()) -> None:
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
    texts = _text_values(method) if method is not None else []
    texts += [t for t in descriptions if t not in texts]
    ds.DeidentificationMethod = texts[0] if len(texts) == 1 else texts


def _method_texts(codes: Sequence[str]) -> list[str]:
    texts = [f"MedPrint; DICOM PS3.15 E.1-1 ({TABLE_EDITION})"]
    return texts + [CID_7050[c][:64] for c in codes]


# --------------------------------------------------------------------------- public API


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
        The de-identified dataset, with Patient Identity Removed, De-identification Method (and
        its Code Sequence) and Longitudinal Temporal Information Modified set. Defacing and pixel
        masking are separate steps (:func:`deface_mask`, :func:`mask_rectangles`).
    """
    _check_arguments(options, uid_key, pseudonym, date_shift_days)
    ds = dataset if in_place else _copy(dataset)
    profile = _profile(options)
    with _quiet_pydicom():
        worker = _Deidentifier(profile, uid_key, pseudonym, date_shift_days, Identity.of(ds))
        worker.dataset(ds)
        _deidentify_meta(ds, worker)
    ds.PatientIdentityRemoved = "YES"
    codes = options.method_codes()
    _add_method(ds, codes, _method_texts(codes))
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_longitudinal_temporal else "REMOVED"
    )
    return ds


def _check_arguments(
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


@cache
def _profile(options: DeidOptions) -> Profile:
    return Profile(options)


def _copy(ds: Dataset) -> Dataset:
    import copy  # noqa: PLC0415

    return copy.deepcopy(ds)


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


def burned_in_risk(ds: Dataset) -> str | None:
    """Why ``ds`` may show identifying text in its pixels, or None.

    Flagged: Burned In Annotation YES; unless Burned In Annotation is NO, ultrasound,
    secondary capture, photographic, document and screen-capture images, and projection X-ray
    (XA, RF, DX, CR, MG), which often carry labels. CT and MR are not flagged.
    """
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    flag = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if flag == "YES":
        return "Burned In Annotation is YES"
    if flag == "NO":
        return None
    modality = str(ds.get("Modality", "")).upper()
    sop_class = str(ds.get("SOPClassUID", ""))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if modality in ("US", "IVUS"):
        return "ultrasound images usually carry burned-in text"
    if modality in ("SC", "OT", "DOC", "XC", "ES", "GM", "SM") or sop_class.startswith(
        _SECONDARY_CAPTURE_PREFIX
    ):
        return "secondary capture / photographic images may carry burned-in text"
    if "SCREEN SAVE" in image_type or ("SECONDARY" in image_type and modality in ("XA", "RF")):
        return "screen captures may carry burned-in text"
    if modality in ("XA", "RF", "DX", "CR", "MG"):
        return "projection X-ray images often carry burned-in labels"
    return None


def mask_rectangles(ds: Dataset, rects: Sequence[Rect]) -> Dataset:
    """Blank the stored pixel values inside ``rects`` on every frame (in place).

    Compressed pixel data is decoded and re-encoded uncompressed (Explicit VR Little Endian);
    the blank value is black for the photometric interpretation. Burned In Annotation becomes NO
    and, on a de-identified dataset, Clean Pixel Data (113101) is recorded.
    """
    if not rects:
        return ds
    arr = _decoded_pixels(ds)
    rows, cols = int(ds.Rows), int(ds.Columns)
    blank = _black_value(ds, arr)
    samples = (int(ds.SamplesPerPixel),) if _is_color(ds) else ()
    frames = arr.reshape((-1, rows, cols, *samples))
    for rect in rects:
        y0, y1 = max(rect.y, 0), min(rect.y + rect.height, rows)
        x0, x1 = max(rect.x, 0), min(rect.x + rect.width, cols)
        if y1 > y0 and x1 > x0:
            frames[:, y0:y1, x0:x1, ...] = blank
    _store_pixels(ds, frames.reshape(arr.shape))
    ds.BurnedInAnnotation = "NO"
    if str(ds.get("PatientIdentityRemoved", "")) == "YES":
        _add_method(ds, ["113101"], [CID_7050["113101"]])
    return ds


def _is_color(ds: Dataset) -> bool:
    return int(ds.get("SamplesPerPixel", 1)) > 1


def _decoded_pixels(ds: Dataset) -> np.ndarray:
    try:
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.decompress(generate_instance_uid=False)
        return ds.pixel_array.copy()
    except Exception as exc:  # decoders raise many types
        msg = f"the pixel data cannot be decoded for masking ({type(exc).__name__})"
        raise DeidError(msg) from None


def _black_value(ds: Dataset, arr: np.ndarray) -> int:
    if _is_color(ds):
        return 0
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        return int(arr.max())
    return int(arr.min())


def _store_pixels(ds: Dataset, arr: np.ndarray) -> None:
    photometric = str(ds.PhotometricInterpretation)
    if _is_color(ds) and photometric.startswith("YBR"):
        photometric = "RGB"  # pixel_array converted it
    ds.set_pixel_data(arr, photometric, int(ds.BitsStored), generate_instance_uid=False)
    if _is_color(ds):
        ds.PlanarConfiguration = 0


# --------------------------------------------------------------------------- defacing


def deface_mask(
    volume: Volume, *, modality: str | None = None, max_depth_mm: float = 50.0
) -> np.ndarray:
    """Voxels of the face soft tissue (skin, fat, nose, lips, eyelids) to blank.

    Rays run from the front of the head backwards along the volume axis closest to the
    anterior–posterior direction. On each ray the tissue between the skin and the first voxel
    that is not soft tissue (bone or air on CT; the dark band of cortical bone, air or CSF on MR)
    is marked, when that voxel lies inside the head (tissue behind it) at most ``max_depth_mm``
    deep; so the skull, and the brain behind it, are never marked, and soft tissue far from
    bone or air is left alone. Neighbouring rays share a median cut depth, so the cut is smooth.

    Parameters
    ----------
    volume
        CT in Hounsfield units, or MR in its own units; any orientation.
    modality
        "CT" or "MR"; defaults to ``volume.modality``.
    max_depth_mm
        Deepest soft tissue removed in front of the bone or air.

    Returns
    -------
    numpy.ndarray
        Boolean array of ``volume.shape``; True where the face tissue (and the air in front of
        it) is.
    """
    modality = (modality or volume.modality or "").upper()
    ap_axis = int(np.argmax(np.abs(volume.direction[1, :])))  # i, j or k
    np_axis = 2 - ap_axis
    posterior_first = volume.direction[1, ap_axis] < 0  # LPS +y is posterior
    rays = np.moveaxis(np.asarray(volume.array), np_axis, -1)
    if posterior_first:
        rays = rays[..., ::-1]
    step = float(volume.spacing[ap_axis])
    tissue, stops, fallback = _tissue_classes(rays, modality)
    run = max(1, round(2.0 / step))
    line = np.ones((1,) * (rays.ndim - 1) + (run,), dtype=bool)
    tissue = ndimage.binary_opening(tissue, structure=line)
    n = rays.shape[-1]
    index = np.arange(n)
    entry = np.where(tissue.any(axis=-1), np.argmax(tissue, axis=-1), n)
    # The stop must be inside the head (tissue behind it): where a thin slice through the
    # vertex misses the skull, the ray leaving the back of the head is no stop.
    last_tissue = n - 1 - np.argmax(tissue[..., ::-1], axis=-1)

    def first_stop(kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hit = kind & (index >= entry[..., None])
        first = np.where(hit.any(axis=-1), np.argmax(hit, axis=-1), n)
        usable = (first > entry) & (first < last_tissue) & ((first - entry) * step <= max_depth_mm)
        return first, usable & (entry < n)

    first, usable = first_stop(stops)
    if fallback is not None:  # CT: no bone within reach, so stop at air inside the face
        second, usable_second = first_stop(fallback)
        first = np.where(usable, first, np.where(usable_second, second, first))
        usable |= usable_second
    # Neighbouring rays agree (median of the stop index over 5x5 rays) so the cut has no
    # streaks; never past a ray's own stop, so the skull is never touched.
    stop = ndimage.median_filter(np.where(usable, first, 0), size=(5,) * first.ndim)
    stop = np.minimum(stop, np.where(first < n, first, 0))
    if fallback is None:  # MR: the nose stops at its own nostril air; cut it to the cheeks
        grid = tuple(float(volume.spacing[a]) for a in (2, 1, 0) if a != ap_axis)
        stop = _fill_narrow_pits(
            stop, entry, grid_spacing=grid, step=step, max_depth_mm=max_depth_mm
        )
    mask = index < stop[..., None]
    if posterior_first:
        mask = mask[..., ::-1]
    return np.ascontiguousarray(np.moveaxis(mask, -1, np_axis))


def _fill_narrow_pits(
    stop: np.ndarray,
    entry: np.ndarray,
    *,
    grid_spacing: tuple[float, ...],
    step: float,
    max_depth_mm: float,
    width_mm: float = 40.0,
) -> np.ndarray:
    """Raise cut depths in pits narrower than ``width_mm`` (the nose among the cheeks) to the
    level around them (a grey closing of the depth map), never more than ``max_depth_mm`` of
    tissue on any ray. Broad plateaus (the forehead over the brain) are left as they are."""
    size = tuple(max(3, round(width_mm / spacing) | 1) for spacing in grid_spacing)
    closed = ndimage.grey_closing(stop, size=size)
    limit = entry + int(max_depth_mm / step)  # rays with no tissue: only air is cut
    return np.maximum(stop, np.minimum(closed, limit))


def _tissue_classes(
    rays: np.ndarray, modality: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(anything not air, where the cut stops, where it stops when the first is out of reach).

    CT stops at bone, so the nose, lips and eyes go whole (air in the nose does not stop the
    cut), or at air inside the face where no bone is within reach; MR stops at the first dark
    voxel (cortical bone, air and CSF look alike on T1).
    """
    if modality == "CT":
        tissue = rays > -400
        return tissue, rays >= 250, ~tissue | (rays >= 250)
    threshold = _otsu(rays)
    bright = _median3(np.asarray(rays, dtype=np.float32)) > 0.5 * threshold
    return bright, ~bright, None


def _median3(rays: np.ndarray) -> np.ndarray:
    """Median of each voxel and its two neighbours along the last axis (edges kept)."""
    out = rays.copy()
    a, b, c = rays[..., :-2], rays[..., 1:-1], rays[..., 2:]
    out[..., 1:-1] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    return out


def _otsu(values: np.ndarray) -> float:
    sample = np.asarray(values, dtype=np.float32).ravel()[:: max(1, values.size // 2_000_000)]
    hist, edges = np.histogram(sample, bins=256)
    centers = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centers)
    total, total_mean = weight[-1], mean[-1]
    between = (total_mean * weight - mean * total) ** 2 / np.maximum(
        weight * (total - weight), 1e-9
    )
    return float(centers[int(np.argmax(between[:-1]))])


def deface(volume: Volume, *, modality: str | None = None) -> Volume:
    """A copy of ``volume`` with the face soft tissue set to air (CT -1000 HU, MR minimum)."""
    modality = (modality or volume.modality or "").upper()
    mask = deface_mask(volume, modality=modality)
    array = volume.array.copy()
    blank = -1000 if modality == "CT" else array.min()
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        blank = min(max(blank, info.min), info.max)
    array[mask] = blank
    return Volume(
        array,
        volume.origin,
        volume.spacing,
        volume.direction,
        volume.modality,
        [*volume.warnings, "face soft tissue removed (defaced)"],
    )


def is_head_series(ds: Dataset) -> bool:
    """Whether the body part or descriptions name the head or brain (CT/MR only)."""
    if str(ds.get("Modality", "")).upper() not in ("CT", "MR"):
        return False
    words = " ".join(
        str(ds.get(k, "") or "")
        for k in ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")
    ).upper()
    return any(word in words for word in _HEAD_WORDS)


def _deface_stack(datasets: list[Dataset]) -> None:
    """Deface one series of single-frame CT/MR slices in place (stored values blanked)."""
    first = datasets[0]
    try:
        iop = np.array([float(v) for v in first.ImageOrientationPatient])
        row, col = iop[:3], iop[3:]
        normal = np.cross(row, col)
        order = sorted(
            datasets,
            key=lambda d: float(np.dot([float(v) for v in d.ImagePositionPatient], normal)),
        )
        positions = [np.dot([float(v) for v in d.ImagePositionPatient], normal) for d in order]
        spacing_rc = [float(v) for v in first.PixelSpacing]
        stored = np.stack([_decoded_pixels(d) for d in order])
        if stored.ndim != 3 or not np.issubdtype(stored.dtype, np.integer):
            msg = "multi-frame, colour or float pixel data"
            raise ValueError(msg)
    except (AttributeError, ValueError, TypeError, DeidError) as exc:
        msg = "a head series cannot be defaced (no usable single-frame slice geometry, "
        msg += f"{type(exc).__name__}); export it without defacing, or deface the loaded volume"
        raise DeidError(msg) from None
    gap = float(np.median(np.diff(positions))) if len(positions) > 1 else 1.0
    slopes = np.array([float(d.get("RescaleSlope", 1) or 1) for d in order], np.float32)
    intercepts = np.array([float(d.get("RescaleIntercept", 0) or 0) for d in order], np.float32)
    values = stored.astype(np.float32) * slopes[:, None, None] + intercepts[:, None, None]
    modality = str(first.Modality).upper()
    volume = Volume(
        values,
        origin=tuple(float(v) for v in order[0].ImagePositionPatient),
        spacing=(spacing_rc[1], spacing_rc[0], abs(gap) or 1.0),
        direction=np.column_stack([row, col, normal]),
        modality=modality,
    )
    mask = deface_mask(volume, modality=modality)
    info = np.iinfo(stored.dtype)
    for k, ds in enumerate(order):
        if modality == "CT":
            blank = round((-1000.0 - intercepts[k]) / slopes[k])
        else:
            blank = int(stored.min())
        plane = stored[k].copy()
        plane[mask[k]] = min(max(blank, info.min), info.max)
        _store_pixels(ds, plane)
        _add_method(ds, ["113102"], [CID_7050["113102"][:64]])


# --------------------------------------------------------------------------- folders


@dataclass
class DeidReport:
    """What :func:`deid_folder` did. ``uid_map`` and ``patients`` hold original identifiers:
    keep them in the vault only, never on disk or in logs."""

    out_dir: Path
    written: list[Path] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    studies: int = 0
    series: int = 0
    defaced_series: int = 0
    masked_files: int = 0
    pseudonyms: list[str] = field(default_factory=list)
    patients: dict[str, dict[str, str]] = field(default_factory=dict)
    uid_map: dict[str, str] = field(default_factory=dict)
    checked_values: int = 0


@dataclass
class _Header:
    path: Path
    rel: str
    patient: tuple[str, str, str]
    study: str
    series: str
    instance: int
    position: float
    risk: str | None
    head: bool
    modality: str


def deid_folder(
    in_dir: Path,
    out_dir: Path,
    *,
    options: DeidOptions,
    uid_key: bytes,
    pseudonym: str | None = None,
    date_shift_days: int | None = None,
    masks: Mapping[str, Sequence[Rect]] | None = None,
    confirm_burned_in: bool = False,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> DeidReport:
    """De-identify every DICOM file under ``in_dir`` into ``out_dir``, then verify the output.

    Output files get opaque names (``study-01/series-01/0001.dcm``). The output is written to a
    hidden staging folder beside ``out_dir``, re-read, and searched byte for byte for every
    identifying value of the inputs (names, IDs, dates, institution, UIDs); only when none is
    found does the staging folder become ``out_dir``. Unreadable and non-DICOM files are listed in
    the report with a one-line reason; a DICOMDIR is not copied (it lists patient names).

    Parameters
    ----------
    in_dir, out_dir
        Input folder (or one file); output folder, which must not exist or be empty.
    options, uid_key
        As for :func:`deidentify`.
    pseudonym
        Pseudonym of the one patient in ``in_dir``; None gives each patient a new pseudonym
        (the report's ``patients`` maps them to the original identity, for the vault).
    date_shift_days
        Shift for modified dates; None derives one per patient from the key.
    masks
        Rectangles to blank, by original Series Instance UID (``"*"``: every image at risk).
    confirm_burned_in
        The user checked the images at risk and found no identifying text.

    Raises
    ------
    BurnedInAnnotationBlocked
        Images at risk of burned-in text were neither masked nor confirmed; nothing written.
    IdentifierLeak
        The verification found an input identifier in the output; nothing written.
    """
    progress = ensure(progress)
    _check_arguments(options, uid_key, pseudonym, date_shift_days)
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.exists():
        msg = "the input folder does not exist; check the path"
        raise DeidError(msg)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        msg = "the output folder is not empty; choose a new or empty folder"
        raise DeidError(msg)
    with _quiet_pydicom():
        return _deid_folder(
            in_dir, out_dir, options=options, uid_key=uid_key, pseudonym=pseudonym,
            date_shift_days=date_shift_days, masks=masks, confirm_burned_in=confirm_burned_in,
            progress=progress, cancel=cancel,
        )  # fmt: skip


@contextlib.contextmanager
def _quiet_pydicom() -> Iterator[None]:
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


def _deid_folder(
    in_dir: Path,
    out_dir: Path,
    *,
    options: DeidOptions,
    uid_key: bytes,
    pseudonym: str | None,
    date_shift_days: int | None,
    masks: Mapping[str, Sequence[Rect]] | None,
    confirm_burned_in: bool,
    progress: Progress,
    cancel: CancelToken | None,
) -> DeidReport:
    report = DeidReport(out_dir=out_dir)
    headers = _scan_headers(in_dir, report, progress.sub(0.0, 0.15), cancel)
    names = _assign_pseudonyms(headers, pseudonym, report)
    masks = dict(masks or {})
    _check_burned_in(headers, masks, confirm_burned_in)
    staging = out_dir.parent / f".deid-{secrets.token_hex(6)}.partial"
    staging.mkdir(parents=True, mode=0o700)
    try:
        job = _Job(staging, report, options, uid_key, names, date_shift_days, masks)
        _write_all(job, headers, progress.sub(0.15, 0.85), cancel)
        _verify(report, job, progress.sub(0.85, 1.0), cancel)
        _make_durable(staging, report.written)
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.written = [out_dir / p.relative_to(staging) for p in report.written]
    progress.update(1.0, "de-identified and verified")
    return report


def _scan_headers(
    in_dir: Path, report: DeidReport, progress: Progress, cancel: CancelToken | None
) -> list[_Header]:
    if in_dir.is_file():
        files, root = [in_dir], in_dir.parent
    else:
        files, root = sorted(p for p in in_dir.rglob("*") if p.is_file()), in_dir
    headers: list[_Header] = []
    for n, path in enumerate(files):
        check_cancel(cancel)
        progress.update(n / max(len(files), 1), "reading headers")
        rel = str(path.relative_to(root))
        try:
            ds = _read(path, header_only=True)
        except DeidError as exc:
            report.rejected.append((rel, str(exc)))
            continue
        if str(ds.get("SOPClassUID", "")) == _DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
            report.rejected.append((rel, "DICOMDIR index: not copied (it lists patient names)"))
            continue
        headers.append(_header_of(path, rel, ds))
    return headers


_HEADER_TAGS = [
    Tag(k)
    for k in (
        "SOPClassUID", "SOPInstanceUID", "Modality", "PatientID", "PatientName",
        "PatientBirthDate", "StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber",
        "ImagePositionPatient", "ImageOrientationPatient", "BurnedInAnnotation", "ImageType",
        "BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName",
        "DirectoryRecordSequence", "PixelData", "FloatPixelData", "DoubleFloatPixelData",
    )
]  # fmt: skip


def _read(path: Path, *, header_only: bool = False) -> Dataset:
    """Read one file; every failure becomes a :class:`DeidError` with a one-line reason.

    The full read drops private elements (at every level) before their values are decoded and
    parses every other element, so a damaged file fails here and not half-way through.
    """
    try:
        if header_only:
            ds = pydicom.dcmread(path, specific_tags=_HEADER_TAGS, defer_size=256, force=True)
        else:
            ds = pydicom.dcmread(path, force=True)
        if "SOPInstanceUID" not in ds and "DirectoryRecordSequence" not in ds:
            msg = "not a DICOM object (no SOP Instance UID)"
            raise DeidError(msg)
        if not header_only:
            _drop_private_and_parse(ds)
    except DeidError:
        raise
    except RecursionError:
        msg = "sequences nested too deeply to process"
        raise DeidError(msg) from None
    except (InvalidDicomError, EOFError) as exc:
        msg = f"not a readable DICOM file ({type(exc).__name__})"
        raise DeidError(msg) from None
    except MemoryError:
        msg = "declares element sizes larger than memory"
        raise DeidError(msg) from None
    except Exception as exc:  # pydicom raises many types on damaged files
        msg = f"damaged DICOM file ({type(exc).__name__})"
        raise DeidError(msg) from None
    return ds


def _drop_private_and_parse(ds: Dataset) -> None:
    stack = [ds]
    while stack:
        current = stack.pop()
        for tag in [t for t in list(current.keys()) if t.is_private]:
            del current[tag]
        for elem in current:
            if elem.VR == "SQ" and elem.value:
                stack.extend(item for item in elem.value if isinstance(item, Dataset))


def _header_of(path: Path, rel: str, ds: Dataset) -> _Header:
    try:
        iop = [float(v) for v in ds.ImageOrientationPatient]
        ipp = [float(v) for v in ds.ImagePositionPatient]
        position = float(np.dot(ipp, np.cross(iop[:3], iop[3:])))
    except (AttributeError, ValueError, TypeError):
        position = 0.0
    try:
        instance = int(ds.get("InstanceNumber") or 0)
    except (ValueError, TypeError):
        instance = 0
    patient = tuple(
        str(ds.get(k, "") or "") for k in ("PatientID", "PatientName", "PatientBirthDate")
    )
    return _Header(
        path=path,
        rel=rel,
        patient=patient,  # type: ignore[arg-type]
        study=str(ds.get("StudyInstanceUID", "") or ""),
        series=str(ds.get("SeriesInstanceUID", "") or ""),
        instance=instance,
        position=position,
        risk=burned_in_risk(ds),
        head=is_head_series(ds),
        modality=str(ds.get("Modality", "") or "OT"),
    )


def _assign_pseudonyms(
    headers: list[_Header], pseudonym: str | None, report: DeidReport
) -> dict[tuple[str, str, str], str]:
    patients = list(dict.fromkeys(h.patient for h in headers))
    if pseudonym is not None and len(patients) > 1:
        msg = f"the folder holds {len(patients)} patients; give no pseudonym (one per patient)"
        msg += " or de-identify one patient's folder at a time"
        raise DeidError(msg)
    from app.security.vault import new_pseudonym  # noqa: PLC0415

    names: dict[tuple[str, str, str], str] = {}
    for patient in patients:
        names[patient] = pseudonym or new_pseudonym(set(names.values()))
        report.patients[names[patient]] = dict(
            zip(("patient_id", "patient_name", "birth_date"), patient, strict=True)
        )
    report.pseudonyms = list(names.values())
    return names


def _check_burned_in(
    headers: list[_Header], masks: Mapping[str, Sequence[Rect]], confirmed: bool
) -> None:
    if confirmed:
        return
    blocked = [h for h in headers if h.risk and not (masks.get(h.series) or masks.get("*"))]
    if blocked:
        kinds = sorted({h.modality for h in blocked})
        msg = f"{len(blocked)} image(s) ({', '.join(kinds)}) may show burned-in patient text: "
        msg += "mask the text rectangles or confirm the images were checked, then export again"
        raise BurnedInAnnotationBlocked(msg)


@dataclass
class _Job:
    """Everything one :func:`deid_folder` run needs while it writes."""

    staging: Path
    report: DeidReport
    options: DeidOptions
    uid_key: bytes
    names: Mapping[tuple[str, str, str], str]
    date_shift_days: int | None
    masks: Mapping[str, Sequence[Rect]]
    leaks: dict[Path, dict[str, str]] = field(default_factory=dict)  # per output file
    shared: dict[str, str] = field(default_factory=dict)  # names and IDs of every input
    kept: set[str] = field(default_factory=set)


def _write_all(
    job: _Job, headers: list[_Header], progress: Progress, cancel: CancelToken | None
) -> None:
    """De-identify and write every series, collecting the input identifiers in ``job.leaks``."""
    studies: dict[str, int] = {}
    series_groups: dict[str, list[_Header]] = {}
    for h in headers:
        series_groups.setdefault(h.series, []).append(h)
    done = 0
    for series_n, (series_uid, group) in enumerate(series_groups.items(), start=1):
        check_cancel(cancel)
        study_n = studies.setdefault(group[0].study, len(studies) + 1)
        folder = job.staging / f"study-{study_n:02d}" / f"series-{series_n:02d}"
        group.sort(key=lambda h: (h.instance, h.position, str(h.path)))
        rects = job.masks.get(series_uid) or job.masks.get("*") or []
        deface = job.options.deface and group[0].head
        if job.options.deface and not deface and group[0].modality in ("CT", "MR"):
            job.report.notes.append(f"series-{series_n:02d}: not a head series, not defaced")
        held: list[tuple[Path, str, Dataset, dict[str, str]]] = []
        for n, h in enumerate(group, start=1):
            check_cancel(cancel)
            done += 1
            progress.update(done / max(len(headers), 1), "de-identifying")
            result = _deidentify_file(job, h, rects)
            if result is None:
                continue
            if deface:
                held.append((folder / f"{n:04d}.dcm", h.rel, *result))
            else:
                _write(job, folder / f"{n:04d}.dcm", h.rel, *result)
        if held:
            _deface_stack([ds for _, _, ds, _ in held])
            job.report.defaced_series += 1
            for path, rel, ds, own in held:
                _write(job, path, rel, ds, own)
        job.report.series += 1 if any(folder.glob("*.dcm")) else 0
    job.report.studies = len({p.parent.parent for p in job.report.written})


def _deidentify_file(
    job: _Job, h: _Header, rects: Sequence[Rect]
) -> tuple[Dataset, dict[str, str]] | None:
    """One input file de-identified (and masked) with its identifiers, or None (reason in the
    report)."""
    try:
        ds = _read(h.path)
        own = _collect_leaks(ds, job)
        shift = job.date_shift_days
        if job.options.retain_longitudinal_temporal and shift is None:
            shift = date_shift_for(job.uid_key, h.patient[0] or h.patient[1])
        deidentify(
            ds,
            options=job.options,
            uid_key=job.uid_key,
            pseudonym=job.names[h.patient],
            date_shift_days=shift or 0,
            in_place=True,
        )
        if h.risk and rects:
            mask_rectangles(ds, rects)
            job.report.masked_files += 1
    except DeidError as exc:
        job.report.rejected.append((h.rel, str(exc)))
        return None
    except RecursionError:
        job.report.rejected.append((h.rel, "sequences nested too deeply to process"))
        return None
    return ds, own


def _write(job: _Job, path: Path, rel: str, ds: Dataset, own: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=True)
    except Exception as exc:  # an element pydicom cannot encode
        syntax = ds.file_meta.get("TransferSyntaxUID")
        reason = f"cannot be written ({type(exc).__name__})"
        if syntax is not None and not UID(syntax).is_transfer_syntax:
            reason = "transfer syntax unknown to pydicom; cannot be re-encoded"
        job.report.rejected.append((rel, reason))
        return
    with open(path, "xb") as handle:
        handle.write(buffer.getvalue())
    job.report.written.append(path)
    job.leaks[path] = own


def _make_durable(staging: Path, files: Sequence[Path]) -> None:
    """Flush the written files to disk before the staging folder is renamed into place."""
    if hasattr(os, "sync"):
        os.sync()  # one call instead of a fsync per file
    else:  # pragma: no cover - Windows
        for path in files:
            with open(path, "rb+") as handle:
                os.fsync(handle.fileno())
    for folder in {p.parent for p in files} | {staging}:
        fsync_dir(folder)


_MIN_CHECKED = 6
# Values MedPrint itself writes: an input value equal to one of them is no leak.
_OWN_VALUES = {
    v
    for v in (
        DUMMY_TEXT, "ANONYMOUS", "REMOVED", "MODIFIED", "UNMODIFIED", "YES", "NO", "DCM",
        *(str(v) for v in DUMMY_VALUES.values()), *CID_7050.values(), *CID_7050,
        *_method_texts([]),
    )
}  # fmt: skip


def _collect_leaks(ds: Dataset, job: _Job) -> dict[str, str]:
    """Values of the identifying attributes (names, IDs, dates, institution, UIDs) of an input
    that the profile removes or replaces, and the values it keeps (an identifier equal to a kept
    value, such as an institution named like the manufacturer, is no leak)."""
    profile = _profile(job.options)
    own: dict[str, str] = {}
    for elem in _walk(ds):
        if elem.VR == "SQ" or (elem.tag.group == 0x0002 and elem.tag != 0x00020003):
            continue  # file meta: only the instance UID is about the patient
        action = profile.action(elem.tag, elem.VR)
        values = _text_values(elem)
        if action == "K":
            job.kept.update(values)
            continue
        if int(elem.tag) in _descriptor_tags():
            continue  # descriptions are cleaned or removed, but they are not identifiers
        keyword = elem.keyword or keyword_for_tag(elem.tag) or "unknown element"
        for value in values:
            for candidate in _leak_candidates(elem.VR, keyword, value):
                if elem.VR == "UI":
                    job.report.uid_map[candidate] = remap_uid(candidate, job.uid_key)
                elif elem.VR not in ("DA", "DT"):
                    job.shared.setdefault(candidate, keyword)
                own.setdefault(candidate, keyword)
    return own


def _leak_candidates(vr: str, keyword: str, value: str) -> list[str]:
    """The strings of one value worth searching for (long and varied enough to be specific)."""
    if vr == "UI":
        found = [value] if len(value) >= 10 and not value.startswith(DICOM_ROOT) else []
    elif vr in ("DA", "DT"):
        found = [value[:8]] if shift_date(value[:8], 0) not in (None, "19000101") else []
    elif vr == "PN":
        parts = [p.strip() for p in re.split(r"[\^=]+", value)]
        found = [value, *(p for p in parts if len(p) >= _MIN_CHECKED)]
        found = [f for f in found if len(f) >= 4 and any(c.isalpha() for c in f)]
    elif _is_identifier_keyword(keyword) and len(value) >= _MIN_CHECKED:
        found = [value]
    else:
        found = []
    return [f for f in found if len(set(f)) >= 3]


def _verify(report: DeidReport, job: _Job, progress: Progress, cancel: CancelToken | None) -> None:
    """Re-read every output file and search it for the input identifiers.

    Each file is searched for the identifiers of its own input (names, IDs, dates, UIDs) and
    for the names and IDs of every input, in every byte outside the pixel values; compressed
    pixel data (where a JPEG may carry text) is searched too. Numbers only match as whole
    numbers, not inside a longer number or UID.
    """
    ignore = set(report.pseudonyms) | _OWN_VALUES | job.kept
    shared = {v: k for v, k in job.shared.items() if v not in ignore}
    found: dict[str, int] = {}
    checked: set[str] = set(shared)
    for n, path in enumerate(report.written):
        check_cancel(cancel)
        progress.update(n / max(len(report.written), 1), "verifying the output")
        needles = shared | {v: k for v, k in job.leaks.get(path, {}).items() if v not in ignore}
        checked.update(needles)
        for keyword in _hits(path.read_bytes(), needles):
            found[keyword] = found.get(keyword, 0) + 1
    report.checked_values = len(checked)
    if found:
        where = ", ".join(f"{k} ({n} files)" for k, n in sorted(found.items()))
        msg = f"input identifiers remain in the de-identified output: {where}; nothing was written"
        raise IdentifierLeak(msg)


def _hits(data: bytes, needles: Mapping[str, str]) -> set[str]:
    """Keywords of the ``needles`` found in one output file (outside the uncompressed pixel
    values; compressed pixel data is searched too). A number only counts as a whole number."""
    if not needles:
        return set()
    spans, compressed_pixels = _reread(data)
    if compressed_pixels is not None:
        spans = [*spans, compressed_pixels]
    found: set[str] = set()
    for value, keyword in needles.items():
        needle = value.encode("utf-8", "replace")
        if any(_found_whole(data, needle, span) for span in spans):
            found.add(keyword)
    return found


def _found_whole(data: bytes, needle: bytes, span: slice) -> bool:
    """Whether ``needle`` occurs in ``data[span]`` not glued to a longer number (a date may be
    followed by a time)."""
    digits = b"0123456789."
    date_like = len(needle) == 8 and needle.isdigit()
    stop = len(data) if span.stop is None else min(span.stop, len(data))
    at = data.find(needle, span.start, stop)
    while at >= 0:
        before = data[at - 1 : at] if at else b""
        after = data[at + len(needle) : at + len(needle) + 1]
        clear_before = not (needle[:1].isdigit() and before and before in digits)
        clear_after = date_like or not (needle[-1:].isdigit() and after and after in digits)
        if clear_before and clear_after:
            return True
        at = data.find(needle, at + 1, stop)
    return False


def _reread(data: bytes) -> tuple[list[slice], slice | None]:
    """Parse an output file again; return the byte ranges outside the pixel data values, and
    the range of the pixel data when it is compressed (encapsulated)."""
    try:
        handle = io.BytesIO(data)
        ds = pydicom.dcmread(handle, stop_before_pixels=True)
        start = handle.tell()
    except Exception as exc:  # the file we just wrote must read back
        msg = f"an output file does not read back ({type(exc).__name__}); nothing was written"
        raise DeidError(msg) from None
    syntax = ds.file_meta.TransferSyntaxUID
    if start >= len(data):
        return [slice(0, len(data))], None
    if syntax.is_encapsulated:
        return [slice(0, start)], slice(start, None)
    if syntax == ImplicitVRLittleEndian:
        header, length = 8, int.from_bytes(data[start + 4 : start + 8], "little")
    elif syntax == ExplicitVRLittleEndian:
        header, length = 12, int.from_bytes(data[start + 8 : start + 12], "little")
    elif syntax == ExplicitVRBigEndian:
        header, length = 12, int.from_bytes(data[start + 8 : start + 12], "big")
    else:
        return [slice(0, len(data))], None  # any other encoding: search everything
    return [slice(0, start + header), slice(start + header + length, None)], None


def uid_key_from_keystore(keystore: object | None = None) -> bytes:
    """The UID remapping key (``deid-uid-key``) from the OS keystore; created on first use."""
    from app.security.keystore import Keystore  # noqa: PLC0415

    store = keystore or Keystore()
    key = store.get("deid-uid-key")  # type: ignore[attr-defined]
    if key is None:
        key = secrets.token_bytes(32)
        store.set("deid-uid-key", key)  # type: ignore[attr-defined]
    return key


__all__ = [
    "CID_7050",
    "BurnedInAnnotationBlocked",
    "DeidError",
    "DeidOptions",
    "DeidReport",
    "IdentifierLeak",
    "Profile",
    "Rect",
    "burned_in_risk",
    "date_shift_for",
    "deface",
    "deface_mask",
    "deid_folder",
    "deidentify",
    "is_head_series",
    "load_table",
    "mask_rectangles",
    "remap_uid",
    "uid_key_from_keystore",
]

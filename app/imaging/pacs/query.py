"""What a query asks for and what it finds: studies with their series (identity included).

Matches carry the patient's identity for display inside the application only; nothing here is
logged, and the workflow audits a query with a hash of its keys, never the values.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field

from app.imaging.pacs.nodes import PacsError

STL_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.104.3"
MAX_LIMIT = 1000
_DATE = re.compile(r"^\d{8}$")


@dataclass(frozen=True)
class Query:
    """Study-level query keys; empty keys match anything. Names take ``*`` wildcards."""

    patient_id: str = ""
    name: str = ""
    birth_date: str = ""
    accession: str = ""
    modality: str = ""
    date_from: str = ""
    date_to: str = ""

    def __post_init__(self) -> None:
        for label, value in (
            ("birth date", self.birth_date),
            ("from date", self.date_from),
            ("to date", self.date_to),
        ):
            if value and not _DATE.match(value):
                msg = f"the {label} must be written YYYYMMDD"
                raise PacsError(msg)

    @property
    def date_range(self) -> str:
        if not (self.date_from or self.date_to):
            return ""
        return f"{self.date_from}-{self.date_to}"

    def fingerprint(self) -> str:
        """A hash of the keys (the audit records this, never the keys themselves)."""
        text = json.dumps(asdict(self), sort_keys=True).encode("utf-8")
        return hashlib.sha256(text).hexdigest()[:16]


@dataclass
class SeriesMatch:
    uid: str
    modality: str
    number: int | None
    description: str
    instances: int | None
    sop_classes: list[str] = field(default_factory=list)


@dataclass
class StudyMatch:
    uid: str
    patient_name: str
    patient_id: str
    birth_date: str
    date: str
    accession: str
    description: str
    modalities: list[str]
    series: list[SeriesMatch] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class FindPage:
    """One page of study matches: ``more`` when the archive holds matches past this page."""

    studies: list[StudyMatch]
    offset: int
    limit: int
    more: bool

    def to_json(self) -> dict:
        return {
            "format": "medprint-pacs-find/1",
            "offset": self.offset,
            "limit": self.limit,
            "more": self.more,
            "studies": [s.to_json() for s in self.studies],
        }


def check_page(limit: int, offset: int) -> None:
    if not 0 < limit <= MAX_LIMIT:
        msg = f"the limit must be 1 to {MAX_LIMIT} studies per page"
        raise PacsError(msg)
    if offset < 0:
        msg = "the offset must not be negative"
        raise PacsError(msg)


def uid_hash(uid: str) -> str:
    """A short hash of a UID, for audit records (UIDs can lead back to a patient)."""
    return hashlib.sha256(uid.encode("ascii", "replace")).hexdigest()[:16]


def as_int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None

"""PS3.15 Table E.1-1 as data, and the action it gives any tag under a set of options."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydicom.datadict import dictionary_has_tag
from pydicom.tag import BaseTag

from app.resources import resources_root
from app.security.deid.errors import DeidError

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


@cache
def profile_for(options: DeidOptions) -> Profile:
    return Profile(options)


@cache
def descriptor_tags() -> frozenset[int]:
    """Tags the Clean Descriptors option cleans: descriptions, not identifiers."""
    rows = load_table()
    found = (_tag_pattern(r.tag) for r in rows if r.actions["clean_descriptors"] == "C")
    return frozenset(value for mask, value in filter(None, found) if mask == 0xFFFFFFFF)

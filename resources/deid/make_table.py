"""Rebuild ``table_e1_1.csv`` (PS3.15 Table E.1-1) from a machine-readable copy of the table.

Usage::

    pip download --no-deps --python-version 3.12 --only-binary=:all: -d /tmp/w idiscore==1.6.0
    unzip -q /tmp/w/idiscore-1.6.0-*.whl -d /tmp/w/x
    python resources/deid/make_table.py /tmp/w/x/idiscore/_public_dicom.py

The source is read as data only (tag, action code and column of each row of the standard's
table, as scraped from dicom.nema.org by that package); names come from pydicom's data
dictionary where it knows the tag. See README.md for the edition.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from pydicom.datadict import dictionary_description, keyword_for_tag

# Column of our CSV -> name of the block of rows in the source file.
COLUMNS = {
    "basic": "basic_profile",
    "retain_safe_private": "retain_safe_private",
    "retain_uids": "retain_uid",
    "retain_device_identity": "retain_device_id",
    "retain_institution_identity": "retain_institution_id",
    "retain_patient_characteristics": "retain_patient_characteristics",
    "retain_long_full_dates": "retain_full_dates",
    "retain_long_modified_dates": "retain_modified_dates",
    "clean_descriptors": "clean_descriptors",
    "clean_structured_content": "clean_structured_content",
    "clean_graphics": "clean_graphics",
}
CODES = {
    "DUMMY": "D",
    "EMPTY": "Z",
    "REMOVE": "X",
    "KEEP": "K",
    "CLEAN": "C",
    "UID": "U",
    "EMPTY_OR_DUMMY": "Z/D",
    "REMOVE_OR_EMPTY": "X/Z",
    "REMOVE_OR_DUMMY": "X/D",
    "REMOVE_OR_EMPTY_OR_DUMMY": "X/Z/D",
    "REMOVE_OR_EMPTY_OR_UID": "X/Z/U*",
}
# Names the pydicom dictionary does not carry (repeating groups, private, newest tags).
EXTRA_NAMES = {
    "(50xx,xxxx)": "Curve Data",
    "(60xx,3000)": "Overlay Data",
    "(60xx,4000)": "Overlay Comments",
    "(gggg,eeee)": "Private Attributes",
    "(0008,1301)": "Principal Diagnosis Code Sequence",
    "(0008,1302)": "Primary Diagnosis Code Sequence",
    "(0008,1303)": "Secondary Diagnoses Code Sequence",
    "(0008,1304)": "Histological Diagnoses Code Sequence",
    "(0010,0011)": "Person Names to Use Sequence",
    "(0010,0012)": "Name to Use",
    "(0010,0013)": "Name to Use Comment",
    "(0010,0014)": "Third Person Pronouns Sequence",
    "(0010,0015)": "Pronoun Code Sequence",
    "(0010,0016)": "Pronoun Comment",
    "(0010,0041)": "Gender Identity Sequence",
    "(0010,0042)": "Sex Parameters for Clinical Use Category Comment",
    "(0010,0043)": "Sex Parameters for Clinical Use Category Sequence",
    "(0010,0044)": "Gender Identity Code Sequence",
    "(0010,0045)": "Gender Identity Comment",
    "(0010,0046)": "Sex Parameters for Clinical Use Category Code Sequence",
    "(0010,0047)": "Sex Parameters for Clinical Use Category Reference",
    "(0010,2162)": "Ethnic Groups",
    "(0040,A034)": "Effective Start DateTime",
    "(0040,A035)": "Effective Stop DateTime",
    "(0040,B034)": "Annotation DateTime",
    "(0040,B036)": "Segment Definition DateTime",
    "(0040,B03B)": "Montage Name",
    "(0040,B03F)": "Montage Channel Label",
}
ROW = re.compile(
    r"(SingleTag|RepeatingGroup|PrivateTags)\((?:\"([0-9a-fA-Fx]{8})\")?\)\s*,\s*ActionCodes\.(\w+)"
)
COMMENT = re.compile(r"#\s*([^\n]*)")


def tag_text(kind: str, raw: str | None) -> str:
    if kind == "PrivateTags":
        return "(gggg,eeee)"
    return f"({raw[:4].upper()},{raw[4:].upper()})".replace("X", "x")


def name_of(tag: str, comment: str) -> tuple[str, str]:
    if tag in EXTRA_NAMES:
        return EXTRA_NAMES[tag], ""
    if "x" not in tag:
        value = int(tag[1:5] + tag[6:10], 16)
        try:
            return dictionary_description(value), keyword_for_tag(value)
        except KeyError:
            pass
    return comment.strip(), ""


def main(source: Path, out: Path) -> int:
    text = source.read_text()
    blocks = re.split(r"\n(\w+) = RawNemaRuleSet\(", text)
    actions: dict[str, dict[str, str]] = {}
    comments: dict[str, str] = {}
    for i in range(1, len(blocks), 2):
        block_name, body = blocks[i], blocks[i + 1]
        column = next((c for c, b in COLUMNS.items() if b == block_name), None)
        if column is None:
            continue
        for match in ROW.finditer(body):
            kind, raw, code = match.groups()
            tag = tag_text(kind, raw or None)
            if column in actions.get(tag, {}):
                msg = f"{tag} appears twice in {block_name}"
                raise ValueError(msg)
            actions.setdefault(tag, {})[column] = CODES[code]
            comment = COMMENT.search(body, match.end())
            comments.setdefault(tag, comment.group(1) if comment else "")
    rows = []
    for tag, by_column in actions.items():
        name, keyword = name_of(tag, comments[tag])
        rows.append([tag, name, keyword] + [by_column.get(c, "") for c in COLUMNS])
    rows.sort(key=lambda r: r[0].replace("x", "0").replace("g", "f").replace("e", "f"))
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["tag", "name", "keyword", *COLUMNS])
        writer.writerows(rows)
    print(f"{len(rows)} rows written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(__file__).with_name("table_e1_1.csv")))

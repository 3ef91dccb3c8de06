"""Verification: the written output, re-read and searched for every input identifier."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from app.progress import CancelToken, Progress, check_cancel
from app.security.deid.errors import DeidError, IdentifierLeak
from app.security.deid.header import (
    DUMMY_TEXT,
    DUMMY_VALUES,
    PREAMBLE,
    is_identifier_keyword,
    method_texts,
    text_values,
    walk,
)
from app.security.deid.profile import CID_7050, DICOM_ROOT, Profile, descriptor_tags
from app.security.deid.values import remap_uid, shift_date

_MIN_CHECKED = 6
# Values MedPrint itself writes: an input value equal to one of them is no leak.
_OWN_VALUES = {
    v
    for v in (
        DUMMY_TEXT, "ANONYMOUS", "REMOVED", "MODIFIED", "UNMODIFIED", "YES", "NO", "DCM",
        *(str(v) for v in DUMMY_VALUES.values()), *CID_7050.values(), *CID_7050,
        *method_texts([]),
    )
}  # fmt: skip


@dataclass
class Identifiers:
    """The input identifiers of one run, which its output is searched for."""

    uid_key: bytes
    uid_map: dict[str, str] = field(default_factory=dict)  # original UID -> new UID
    per_file: dict[Path, dict[str, str]] = field(default_factory=dict)  # output -> its input's
    shared: dict[str, str] = field(default_factory=dict)  # names and IDs of every input
    kept: set[str] = field(default_factory=set)  # values the profile keeps: no leak


def collect_identifiers(ds: Dataset, profile: Profile, found: Identifiers) -> dict[str, str]:
    """Values of the identifying attributes (names, IDs, dates, institution, UIDs) of an input
    that the profile removes or replaces, by value, with their keyword; the values it keeps go to
    ``found.kept`` (an identifier equal to a kept value, such as an institution named like the
    manufacturer, is no leak)."""
    own: dict[str, str] = {}
    for elem in walk(ds):
        if elem.VR == "SQ" or (elem.tag.group == 0x0002 and elem.tag != 0x00020003):
            continue  # file meta: only the instance UID is about the patient
        action = profile.action(elem.tag, elem.VR)
        values = text_values(elem)
        if action == "K":
            found.kept.update(values)
            continue
        if int(elem.tag) in descriptor_tags():
            continue  # descriptions are cleaned or removed, but they are not identifiers
        keyword = elem.keyword or keyword_for_tag(elem.tag) or "unknown element"
        for value in values:
            for candidate in _leak_candidates(elem.VR, keyword, value):
                if elem.VR == "UI":
                    found.uid_map[candidate] = remap_uid(candidate, found.uid_key)
                elif elem.VR not in ("DA", "DT"):
                    found.shared.setdefault(candidate, keyword)
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
    elif is_identifier_keyword(keyword) and len(value) >= _MIN_CHECKED:
        found = [value]
    else:
        found = []
    return [f for f in found if len(set(f)) >= 3]


def verify(
    written: Sequence[Path],
    found: Identifiers,
    pseudonyms: Sequence[str],
    progress: Progress,
    cancel: CancelToken | None,
) -> int:
    """Re-read every output file and search it for the input identifiers; the number of
    distinct values searched for.

    Each file is searched for the identifiers of its own input (names, IDs, dates, UIDs) and
    for the names and IDs of every input, in every byte outside the pixel values; compressed
    pixel data (where a JPEG may carry text) is searched too. The 128-byte preamble must be
    zero (it is free space any program may fill). Numbers only match as whole
    numbers, not inside a longer number or UID.
    """
    ignore = set(pseudonyms) | _OWN_VALUES | found.kept
    shared = {v: k for v, k in found.shared.items() if v not in ignore}
    leaks: dict[str, int] = {}
    checked: set[str] = set(shared)
    for n, path in enumerate(written):
        check_cancel(cancel)
        progress.update(n / max(len(written), 1), "verifying the output")
        own = found.per_file.get(path, {})
        needles = shared | {v: k for v, k in own.items() if v not in ignore}
        checked.update(needles)
        data = path.read_bytes()
        found_here = _hits(data, needles)
        if not data.startswith(PREAMBLE + b"DICM"):
            found_here.add("preamble")
        for keyword in found_here:
            leaks[keyword] = leaks.get(keyword, 0) + 1
    if leaks:
        where = ", ".join(f"{k} ({n} files)" for k, n in sorted(leaks.items()))
        msg = f"input identifiers remain in the de-identified output: {where}; nothing was written"
        raise IdentifierLeak(msg)
    return len(checked)


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

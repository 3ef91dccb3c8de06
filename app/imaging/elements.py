"""Fast access to the plain elements of a header, and tolerant number parsing."""

from __future__ import annotations

import struct

import numpy as np

_STRUCT = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}


_TEXT_VRS = {"CS", "UI", "DA", "TM", "SH", "AS", "DS", "IS"}


_TAGS: dict[str, tuple[int, str]] = {}


def _tag_vr(keyword: str) -> tuple[int, str]:
    entry = _TAGS.get(keyword)
    if entry is None:
        from pydicom.datadict import dictionary_VR, tag_for_keyword  # noqa: PLC0415 (pydicom on first use)

        tag = tag_for_keyword(keyword)
        entry = _TAGS[keyword] = (tag, dictionary_VR(tag))
    return entry


def get_value(ds, keyword: str, default=None):
    """``ds.get`` for the plain numeric and ASCII elements a scan reads, without pydicom's
    per-element conversion machinery (the bulk of a header scan); anything else goes to pydicom.
    """
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415 (pydicom on first use)

    tag, vr = _tag_vr(keyword)
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return default
    if not isinstance(elem, RawDataElement):
        return default if elem.value is None or elem.value == "" else elem.value
    raw = elem.value
    if raw is None and elem.length:
        return ds.get(keyword, default)  # deferred: pydicom re-reads it
    if not raw:
        return default
    if elem.VR not in (None, "UN"):
        vr = elem.VR
    try:
        if vr in _STRUCT:
            code = _STRUCT[vr]
            count = len(raw) // struct.calcsize(code)
            order = "<" if elem.is_little_endian else ">"
            values = struct.unpack(order + code * count, raw[: count * struct.calcsize(code)])
            return values[0] if count == 1 else list(values)
        if vr in _TEXT_VRS:
            parts = [p.strip(" \0") for p in raw.decode("ascii").split("\\")]
            if vr == "DS":
                values = [float(p) for p in parts]
            elif vr == "IS":
                values = [int(p) for p in parts]
            else:
                values = parts
            return values[0] if len(values) == 1 else values
    except (ValueError, UnicodeDecodeError):
        pass
    return ds.get(keyword, default)


def raw_text(ds, keyword: str) -> str:
    """An element's bytes as text, undecoded: good for grouping, not for display."""
    from pydicom.dataelem import RawDataElement  # noqa: PLC0415 (pydicom on first use)

    elem = ds.get_item(_tag_vr(keyword)[0], keep_deferred=True)
    if elem is None:
        return ""
    if isinstance(elem, RawDataElement):
        return (elem.value or b"").decode("latin-1").strip(" \0")
    return str(elem.value or "").strip()


def text_value(ds, name: str) -> str:
    try:
        value = ds.get(name)
    except Exception:
        return ""
    return "" if value is None else str(value).strip()


def floats(value, count: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == count and all(np.isfinite(out)) else None


def float_or(value, default):
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) else default


def maybe_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

"""New values: keyed UID remapping and per-patient date shifts."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from app.security.deid.profile import DICOM_ROOT


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

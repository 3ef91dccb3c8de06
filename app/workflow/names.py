"""Names given by users that leave the vault: segment and part names (file names in exports and
packages, object names in G-code, labels in a DICOM SEG), file names of exports, names on a
printer, and the names the audit log keeps.

A name may leave only when it matches :data:`SAFE_NAME` (ASCII letters, digits, space, ``.``,
``_``, ``-``, up to 64 characters) and holds nothing of the case's identity as the vault's index
keeps it: a part of the patient's name (as a word; as a substring when 4 letters or more), the
patient ID or another ID (as a substring), the birth date (as digits, in any order of day,
month and year). A refusal is audited as ``access.denied`` (reason ``name``) and never repeats
the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.case import Case
from app.workflow import policy
from app.workflow.actor import Actor

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
WITHHELD = "(withheld)"
_NAME_FIELDS = {"patientname", "othernames", "otherpatientnames", "patientbirthname"}
_ID_FIELDS = {"patientid", "otherpatientids", "accessionnumber", "medicalrecordnumber"}
_DATE_FIELDS = {"birthdate", "patientbirthdate"}


@dataclass(frozen=True)
class Identity:
    """The tokens of a case's identity a name is checked against."""

    name_parts: frozenset[str]
    ids: frozenset[str]
    dates: frozenset[str]

    def found_in(self, name: str) -> bool:
        words = re.findall(r"[a-z0-9]+", name.casefold())
        compact, digits = "".join(words), re.sub(r"\D", "", name)
        if any(p in words or (len(p) >= 4 and p in compact) for p in self.name_parts):
            return True
        return any(i in compact for i in self.ids) or any(d in digits for d in self.dates)


def identity_of(actor: Actor, case: Case) -> Identity:
    """The identity tokens of ``case`` from the vault's index (never shown or logged)."""
    fields = {
        re.sub(r"[^a-z]", "", key.casefold()): str(value)
        for key, value in actor.vault.case_entry(case.pseudonym).identity.items()
    }
    parts, ids, dates = set(), set(), set()
    for key, value in fields.items():
        if key in _NAME_FIELDS:
            parts.update(_compact(p) for p in re.split(r"[\^=\s,]+", value))
        elif key in _ID_FIELDS:
            ids.update(_compact(v) for v in re.split(r"[\\\s]+", value))
        elif key in _DATE_FIELDS and re.fullmatch(r"\d{8}", value):
            y, m, d = value[:4], value[4:6], value[6:]
            dates.update({value, f"{d}{m}{y}", f"{m}{d}{y}"})
    return Identity(
        frozenset(p for p in parts if len(p) >= 3),
        frozenset(i for i in ids if len(i) >= 3),
        frozenset(dates),
    )


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def problem(name: str, identity: Identity) -> str | None:
    """Why ``name`` may not leave the vault, or None (the reason never repeats the name)."""
    if not SAFE_NAME.fullmatch(name):
        return "uses characters or a length outside the safe set"
    if identity.found_in(name):
        return "holds part of the patient's name, ID or birth date"
    return None


def check_outgoing(actor: Actor, case: Case, name: str, *, what: str, action: str) -> str:
    """``name`` when it may leave the vault; else refuse ``action`` (audited)."""
    reason = problem(name, identity_of(actor, case))
    if reason is None:
        return name
    msg = f"the {what} {reason}; rename it (letters, digits, space, '.', '_', '-', up to 64 "
    msg += "characters, nothing of the patient's name, ID or birth date) and try again"
    policy.refuse(actor, action, case.pseudonym, reason="name", message=msg, what=what)


def check_all(actor: Actor, case: Case, names: list[str], *, what: str, action: str) -> None:
    """:func:`check_outgoing` for each of ``names`` (the identity read once)."""
    identity = identity_of(actor, case)
    for name in names:
        if problem(name, identity) is not None:
            check_outgoing(actor, case, name, what=what, action=action)


def for_audit(actor: Actor, case: Case, text: str) -> str:
    """``text`` as the audit log may keep it: itself when it may leave the vault, else
    :data:`WITHHELD`."""
    return text if problem(text, identity_of(actor, case)) is None else WITHHELD

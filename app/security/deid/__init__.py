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
head CT/MR (:func:`face_mask`, code 113102) removes the soft tissue in front of the skull.

Modules: ``profile`` (the table, options and the action of a tag), ``values`` (UID remapping,
date shifts), ``header`` (one dataset), ``pixels`` (burned-in risk, masking), ``deface``,
``batch`` (a folder), ``verify`` (the output searched for the input identifiers), ``keys``
(the UID key in the keystore).
"""

from __future__ import annotations

from app.security.deid.batch import DeidReport, deid_folder
from app.security.deid.deface import face_mask, is_head_series
from app.security.deid.errors import BurnedInAnnotationBlocked, DeidError, IdentifierLeak
from app.security.deid.header import deidentify
from app.security.deid.keys import uid_key_from_keystore
from app.security.deid.pixels import Rect, burned_in_risk, mask_rectangles
from app.security.deid.profile import CID_7050, DeidOptions, Profile, load_table
from app.security.deid.values import date_shift_for, remap_uid, shift_date, shift_datetime

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
    "deid_folder",
    "deidentify",
    "face_mask",
    "is_head_series",
    "load_table",
    "mask_rectangles",
    "remap_uid",
    "shift_date",
    "shift_datetime",
    "uid_key_from_keystore",
]

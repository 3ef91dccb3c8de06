"""Why a de-identification was refused."""

from __future__ import annotations

from app.errors import DicomError


class DeidError(DicomError):
    """De-identification cannot be done as asked."""


class BurnedInAnnotationBlocked(DeidError):
    """Images that may carry burned-in text were neither masked nor confirmed."""


class IdentifierLeak(DeidError):
    """The verification found an input identifier in the de-identified output."""

"""One exception hierarchy for MedPrint.

Every message is one line that says what went wrong and what to do next. The GUI catches
:class:`MedPrintError` at one boundary and shows the message; the CLI prints it and exits 2.
"""


class MedPrintError(Exception):
    """Base of every error MedPrint reports to a user."""


class KeystoreError(MedPrintError):
    """The OS keystore is missing, locked or refused the request."""


class VaultError(MedPrintError):
    """The case vault cannot be used (not initialised, wrong key, missing case)."""


class IntegrityError(VaultError):
    """Stored data failed authentication: tampering, truncation or corruption."""


class AuditError(MedPrintError):
    """The audit log is unreadable or failed verification."""


class DicomError(MedPrintError):
    """A DICOM file or series cannot be read or is not an image."""


class SegmentationError(MedPrintError):
    """A segmentation tool refused its input or parameters."""


class MeshError(MedPrintError):
    """A mesh cannot be built, read, repaired or written."""


class PrintingError(MedPrintError):
    """Slicing, G-code, a printer profile or a printer connection failed."""


class PrinterConnectionError(PrintingError):
    """A printer did not answer, answered garbage, or the link dropped."""


class PackageError(MedPrintError):
    """A print package is invalid, tampered with or cannot be written."""


class AccessDenied(MedPrintError):
    """The current user's role does not allow the action."""


class Cancelled(MedPrintError):
    """The user cancelled a long-running task; nothing was changed."""

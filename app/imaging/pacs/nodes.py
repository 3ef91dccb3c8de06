"""PACS nodes: the archives MedPrint may query, retrieve from and store to (no PHI here)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from app.atomic import atomic_write_bytes
from app.errors import MedPrintError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
AET_RE = re.compile(r"^[\x21-\x5b\x5d-\x7e](?:[\x20-\x5b\x5d-\x7e]{0,14})$")  # no backslash
DEFAULT_OUR_AET = "MEDPRINT"
DEFAULT_OUR_PORT = 11113


class PacsError(MedPrintError):
    """A PACS could not be reached, refused us, or answered something we cannot use."""


@dataclass(frozen=True)
class Node:
    """One archive: its AE title, address, our AE title and storage port, and options.

    ``dicomweb`` is the DICOMweb root (QIDO-RS/WADO-RS). ``tls`` speaks DICOM TLS to the
    node's port: its certificate must chain to ``tls_ca`` (a PEM file; the system's CAs when
    empty) and name ``host``; ``tls_cert`` and ``tls_key`` are our own certificate and key
    (PEM) for a node that asks for one (paths only are kept). ``research`` marks an archive
    that only receives de-identified objects, ``clinical`` one that may receive identified
    objects of any case (otherwise only the cases retrieved from it).
    """

    name: str
    aet: str
    host: str
    port: int
    our_aet: str = DEFAULT_OUR_AET
    our_port: int = DEFAULT_OUR_PORT
    dicomweb: str = ""
    tls_cert: str = ""
    research: bool = False
    tls: bool = False
    tls_ca: str = ""
    tls_key: str = ""
    clinical: bool = False

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            msg = f"'{self.name}' is not a valid node name; use letters, digits, '.', '-', '_'"
            raise PacsError(msg)
        for label, aet in (("AE title", self.aet), ("our AE title", self.our_aet)):
            if not AET_RE.match(aet) or aet != aet.strip():
                msg = f"{label} '{aet}' is not valid: 1 to 16 printable characters, no backslash"
                raise PacsError(msg)
        for label, port in (("port", self.port), ("our port", self.our_port)):
            if not isinstance(port, int) or not 0 < port < 65536:
                msg = f"{label} {port} is not a TCP port (1-65535)"
                raise PacsError(msg)
        if self.dicomweb and not self.dicomweb.startswith(("http://", "https://")):
            msg = "the DICOMweb address must start with http:// or https://"
            raise PacsError(msg)
        if self.research and self.clinical:
            msg = "a node is either a research archive or a clinical one, not both"
            raise PacsError(msg)
        self._check_tls()

    def _check_tls(self) -> None:
        files = {"--tls-ca": self.tls_ca, "--tls-cert": self.tls_cert, "--tls-key": self.tls_key}
        if any(files.values()) and not self.tls:
            msg = "TLS files are given but TLS is off; add --tls"
            raise PacsError(msg)
        if bool(self.tls_cert) != bool(self.tls_key):
            msg = "our TLS certificate and its key go together: give both --tls-cert and --tls-key"
            raise PacsError(msg)
        for option, file in files.items():
            if file and not Path(file).is_file():
                msg = f"{option} file {Path(file).name} not found"
                raise PacsError(msg)


def load_nodes(path: Path) -> dict[str, Node]:
    """The nodes kept in ``path`` (none when it does not exist yet)."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(Node)}
        return {
            n["name"]: Node(**{k: v for k, v in _upgrade(n).items() if k in known})
            for n in raw["nodes"]
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"PACS node file {path.name} is unreadable ({type(exc).__name__}); fix or delete it"
        raise PacsError(msg) from None


def _upgrade(entry: dict) -> dict:
    """A node saved before ``tls`` existed: its ``tls_cert`` was the CA to trust."""
    if "tls" in entry or not entry.get("tls_cert"):
        return entry
    return entry | {"tls": True, "tls_ca": entry["tls_cert"], "tls_cert": ""}


def save_nodes(path: Path, nodes: dict[str, Node]) -> None:
    data = {"format": "medprint-pacs-nodes/1", "nodes": [asdict(n) for n in nodes.values()]}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode("utf-8"))

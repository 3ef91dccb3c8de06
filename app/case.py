"""Case: one patient's work in the vault, known everywhere outside it by its pseudonym.

This module is the one place that knows where a case keeps what. No other module builds a case
file name; they call the methods below. Every file goes through the vault (encrypted, atomic);
nothing of a case is ever written to disk in the clear.

Layout inside a case::

    series.json                 the source series' facts (no identity), warnings, geometry
    origin.json                 where the series came from: the PACS node (name, AE title, address)
    volume.mpvol                the loaded image
    preview.mpvol               the image at most 256 voxels a side, shown while the full loads
    dicom/00000.dcm ...         the original DICOM, for traceability
    segmentation.seg            the segmentation (bit-field labels)
    segmentation-authors.json   every account that saved it (four eyes)
    mesh/vN/manifest.json       the parts of mesh version N and their SHA-256 (the version hash)
    mesh/vN/parts/NAME.stl      one clean binary STL per part
    mesh/vN/info.json           how the version was made: settings or edit, parent, author, time
    mesh/vN/qa.json             its QA report
    print/gN.gcode              sliced G-code N
    print/gN.json               its provenance: the mesh version and hash, profile, engine
    print/sN.sl1                resin slicing N (label-stripped SL1 archive)
    print/sN.json               its provenance: the mesh version and hash, profile, settings
    print/record.json           the print record: signed post-processing and material steps
    verify/vN.json              verification N of the printed model (signed report)
    approvals.json              decisions and overrides (append-only history)
    order.json                  the case order: coded indication, region, service, due date, note
    comments.json               comments pinned to points of mesh versions (resolvable)
    viewer.json                 the window's view state (window, layout, crosshair)
    reports/NAME                reports made from the case
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

from app.errors import MedPrintError, VaultError
from app.imaging.volume import Volume
from app.security.access import mesh_manifest_sha256

VOLUME_FILE = "volume.mpvol"
PREVIEW_FILE = "preview.mpvol"
SERIES_FILE = "series.json"
ORIGIN_FILE = "origin.json"
SEGMENTATION_FILE = "segmentation.seg"
SEGMENTATION_AUTHORS_FILE = "segmentation-authors.json"
DECISIONS_FILE = "approvals.json"
VIEW_FILE = "viewer.json"
ORDER_FILE = "order.json"
COMMENTS_FILE = "comments.json"

_MESH_DIR = re.compile(r"^mesh/v(\d+)/manifest\.json$")
_GCODE = re.compile(r"^print/g(\d+)\.gcode$")
_SL1 = re.compile(r"^print/s(\d+)\.sl1$")
_ORIGINAL = re.compile(r"^dicom/\d{5}\.dcm$")
_VERIFICATION = re.compile(r"^verify/v(\d+)\.json$")
PRINT_RECORD_FILE = "print/record.json"
PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_REPORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class CaseFiles(Protocol):
    """What a case needs of the vault: encrypted, atomic files per case."""

    def write_bytes(self, pseudonym: str, name: str, data: bytes) -> None: ...

    def read_bytes(self, pseudonym: str, name: str) -> bytes: ...

    def write_file(self, pseudonym: str, name: str) -> AbstractContextManager[BinaryIO]: ...

    def read_file(self, pseudonym: str, name: str) -> AbstractContextManager[BinaryIO]: ...

    def has_file(self, pseudonym: str, name: str) -> bool: ...

    def list_files(self, pseudonym: str) -> list[str]: ...


def check_part(name: str) -> str:
    """A part name: letters, digits, ``-`` and ``_`` (it becomes part of file names)."""
    if not isinstance(name, str) or not PART_RE.match(name):
        msg = f"'{name}' is not a valid part name; use letters, digits, '-' and '_' (≤ 40)"
        raise MedPrintError(msg)
    return name


@dataclass(frozen=True)
class StoredMesh:
    """One stored mesh version: its parts (name -> STL bytes), manifest, build info and QA."""

    number: int
    parts: dict[str, bytes]
    manifest: dict
    info: dict
    qa: dict

    @property
    def sha256(self) -> str:
        return mesh_manifest_sha256(self.manifest["parts"])

    @property
    def part_facts(self) -> list[dict]:
        return list(self.manifest["parts"])


@dataclass(frozen=True)
class StoredGcode:
    """One stored G-code with its provenance (which mesh version and hash, which profile)."""

    number: int
    text: str
    provenance: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


@dataclass
class StoredSla:
    """One stored resin slicing (an SL1 archive) with its provenance."""

    number: int
    data: bytes
    provenance: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Case:
    vault: CaseFiles
    pseudonym: str

    # ----- generic content ------------------------------------------------------------------
    def _save_bytes(self, name: str, data: bytes) -> None:
        self.vault.write_bytes(self.pseudonym, name, data)

    def _load_bytes(self, name: str) -> bytes:
        return self.vault.read_bytes(self.pseudonym, name)

    def _has(self, name: str) -> bool:
        return self.vault.has_file(self.pseudonym, name)

    def files(self) -> list[str]:
        return self.vault.list_files(self.pseudonym)

    def _save_json(self, name: str, obj: Any) -> None:
        self._save_bytes(name, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))

    def _load_json(self, name: str) -> Any:
        try:
            return json.loads(self._load_bytes(name))
        except ValueError:
            msg = f"{name} of case {self.pseudonym} is not valid JSON; restore it from a backup"
            raise VaultError(msg) from None

    # ----- the source series ------------------------------------------------------------------
    def save_volume(self, volume: Volume) -> None:
        """Store the image, then its preview."""
        with self.vault.write_file(self.pseudonym, VOLUME_FILE) as out:
            volume.write(out)
        self.save_preview(volume)

    def load_volume(self, progress: Callable[[float], None] | None = None) -> Volume:
        if not self._has(VOLUME_FILE):
            msg = f"case {self.pseudonym} has no image yet; import a series first"
            raise VaultError(msg)
        with self.vault.read_file(self.pseudonym, VOLUME_FILE) as src:
            return Volume.read(src, progress)

    def save_preview(self, volume: Volume) -> None:
        """Store ``volume`` reduced to a preview (cases stored before previews get one so)."""
        with self.vault.write_file(self.pseudonym, PREVIEW_FILE) as out:
            volume.reduced().write(out)

    def load_preview(self) -> Volume | None:
        """The image's preview, or None when the case has none (yet)."""
        if not self._has(PREVIEW_FILE):
            return None
        with self.vault.read_file(self.pseudonym, PREVIEW_FILE) as src:
            return Volume.read(src)

    def has_preview(self) -> bool:
        return self._has(PREVIEW_FILE)

    def has_volume(self) -> bool:
        return self._has(VOLUME_FILE)

    def save_series_facts(self, facts: Mapping[str, Any]) -> None:
        self._save_json(SERIES_FILE, dict(facts))

    def series_facts(self) -> dict:
        return self._load_json(SERIES_FILE) if self._has(SERIES_FILE) else {}

    def save_origin(self, origin: Mapping[str, Any]) -> None:
        """Where the source series came from (a PACS node's name and address; no identity)."""
        self._save_json(ORIGIN_FILE, dict(origin))

    def origin(self) -> dict:
        return self._load_json(ORIGIN_FILE) if self._has(ORIGIN_FILE) else {}

    def write_original(self, number: int) -> AbstractContextManager[BinaryIO]:
        """A stream for original DICOM file ``number`` (encrypted as it is written)."""
        return self.vault.write_file(self.pseudonym, f"dicom/{number:05d}.dcm")

    def original_names(self) -> list[str]:
        return sorted(name for name in self.files() if _ORIGINAL.match(name))

    def load_original(self, name: str) -> bytes:
        if not _ORIGINAL.match(name):
            msg = f"{name} is not an original DICOM file of this case"
            raise VaultError(msg)
        return self._load_bytes(name)

    def originals_sha256(self) -> str | None:
        """One hash over the original DICOM files (each file's SHA-256 in order), if any."""
        names = self.original_names()
        if not names:
            return None
        digests = "".join(hashlib.sha256(self._load_bytes(n)).hexdigest() for n in names)
        return hashlib.sha256(digests.encode("ascii")).hexdigest()

    # ----- segmentation ---------------------------------------------------------------------
    def has_segmentation(self) -> bool:
        return self._has(SEGMENTATION_FILE)

    def write_segmentation(self) -> AbstractContextManager[BinaryIO]:
        return self.vault.write_file(self.pseudonym, SEGMENTATION_FILE)

    def read_segmentation(self) -> AbstractContextManager[BinaryIO]:
        return self.vault.read_file(self.pseudonym, SEGMENTATION_FILE)

    def segmentation_sha256(self) -> str | None:
        """The SHA-256 of the stored segmentation, if any."""
        if not self.has_segmentation():
            return None
        return hashlib.sha256(self._load_bytes(SEGMENTATION_FILE)).hexdigest()

    def add_segmentation_author(self, user: str) -> None:
        """Record that ``user`` saved the segmentation: they author every mesh built from it."""
        self._save_json(SEGMENTATION_AUTHORS_FILE, sorted({*self.segmentation_authors(), user}))

    def segmentation_authors(self) -> list[str]:
        """Every account that saved the segmentation, sorted."""
        if not self._has(SEGMENTATION_AUTHORS_FILE):
            return []
        return [str(u) for u in self._load_json(SEGMENTATION_AUTHORS_FILE)]

    # ----- mesh versions ----------------------------------------------------------------------
    def mesh_versions(self) -> list[int]:
        """Mesh version numbers, oldest first."""
        return sorted(int(m.group(1)) for name in self.files() if (m := _MESH_DIR.match(name)))

    def save_mesh_version(
        self,
        parts: Mapping[str, bytes],
        *,
        qa: Mapping[str, Any],
        info: Mapping[str, Any],
        styles: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> int:
        """Store a new version (part name -> binary STL) with its QA and info; its number.

        ``styles`` gives each part's ``colour`` (``#rrggbb``) and ``material``, when set.
        """
        if not parts:
            msg = "a mesh version needs at least one part"
            raise MedPrintError(msg)
        number = (self.mesh_versions() or [0])[-1] + 1
        entries = []
        for name, data in parts.items():
            check_part(name)
            self._save_bytes(f"mesh/v{number}/parts/{name}.stl", data)
            style = dict((styles or {}).get(name, {}))
            entries.append(
                {
                    "name": name,
                    "file": f"{name}.stl",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "colour": style.get("colour"),
                    "material": style.get("material"),
                }
            )
        self._save_json(f"mesh/v{number}/info.json", dict(info))
        self._save_json(f"mesh/v{number}/qa.json", dict(qa))
        # The manifest last: a version exists once its manifest does.
        self._save_json(f"mesh/v{number}/manifest.json", {"version": 1, "parts": entries})
        return number

    def _check_mesh_version(self, number: int) -> None:
        if number not in self.mesh_versions():
            have = ", ".join(f"v{n}" for n in self.mesh_versions()) or "none yet"
            msg = f"case {self.pseudonym} has no mesh version {number} (versions: {have})"
            raise VaultError(msg)

    def latest_mesh_version(self) -> int:
        versions = self.mesh_versions()
        if not versions:
            msg = f"case {self.pseudonym} has no mesh yet; build one first ('medprint mesh')"
            raise VaultError(msg)
        return versions[-1]

    def load_mesh_version(self, number: int) -> StoredMesh:
        """A stored version; every part is checked against the manifest's hash."""
        self._check_mesh_version(number)
        manifest = self._load_json(f"mesh/v{number}/manifest.json")
        parts = {}
        for entry in manifest["parts"]:
            data = self._load_bytes(f"mesh/v{number}/parts/{check_part(entry['name'])}.stl")
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                msg = f"part {entry['name']} of mesh v{number} does not match its manifest"
                raise VaultError(msg)
            parts[entry["name"]] = data
        info = self._load_json(f"mesh/v{number}/info.json")
        qa = self._load_json(f"mesh/v{number}/qa.json")
        return StoredMesh(number, parts, manifest, info, qa)

    def mesh_manifest(self, number: int) -> dict:
        self._check_mesh_version(number)
        return self._load_json(f"mesh/v{number}/manifest.json")

    def mesh_info(self, number: int) -> dict:
        self._check_mesh_version(number)
        return self._load_json(f"mesh/v{number}/info.json")

    def mesh_qa(self, number: int) -> dict:
        self._check_mesh_version(number)
        return self._load_json(f"mesh/v{number}/qa.json")

    def mesh_sha256(self, number: int) -> str:
        return mesh_manifest_sha256(self.mesh_manifest(number)["parts"])

    def find_mesh_version(self, sha256: str) -> int | None:
        """The version whose hash is ``sha256``, if any."""
        return next((n for n in self.mesh_versions() if self.mesh_sha256(n) == sha256), None)

    # ----- G-code ------------------------------------------------------------------------------
    def gcode_versions(self) -> list[int]:
        return sorted(int(m.group(1)) for name in self.files() if (m := _GCODE.match(name)))

    def save_gcode(self, text: str, provenance: Mapping[str, Any]) -> StoredGcode:
        """Store G-code with its provenance; the provenance records the G-code's SHA-256."""
        number = (self.gcode_versions() or [0])[-1] + 1
        data = text.encode("utf-8")
        record = dict(provenance) | {"gcode_sha256": hashlib.sha256(data).hexdigest()}
        self._save_json(f"print/g{number}.json", record)
        self._save_bytes(f"print/g{number}.gcode", data)  # last: the G-code exists once complete
        return StoredGcode(number, text, record)

    def latest_gcode_version(self) -> int:
        versions = self.gcode_versions()
        if not versions:
            msg = f"case {self.pseudonym} has no G-code yet; slice a mesh version first"
            raise VaultError(msg)
        return versions[-1]

    def load_gcode(self, number: int) -> StoredGcode:
        if number not in self.gcode_versions():
            have = ", ".join(f"g{n}" for n in self.gcode_versions()) or "none yet"
            msg = f"case {self.pseudonym} has no G-code {number} (stored: {have})"
            raise VaultError(msg)
        text = self._load_bytes(f"print/g{number}.gcode").decode("utf-8")
        return StoredGcode(number, text, self.gcode_provenance(number))

    def gcode_provenance(self, number: int) -> dict:
        """The provenance of stored G-code ``number``, without reading the G-code itself."""
        if number not in self.gcode_versions():
            msg = f"case {self.pseudonym} has no G-code {number}"
            raise VaultError(msg)
        return self._load_json(f"print/g{number}.json")

    # ----- resin slicings (SL1 archives) -------------------------------------------------------
    def sla_versions(self) -> list[int]:
        return sorted(int(m.group(1)) for name in self.files() if (m := _SL1.match(name)))

    def save_sla(self, data: bytes, provenance: Mapping[str, Any]) -> StoredSla:
        """Store an SL1 archive with its provenance (which records the archive's SHA-256)."""
        number = (self.sla_versions() or [0])[-1] + 1
        record = dict(provenance) | {"sl1_sha256": hashlib.sha256(data).hexdigest()}
        self._save_json(f"print/s{number}.json", record)
        self._save_bytes(f"print/s{number}.sl1", data)  # last: the archive exists once complete
        return StoredSla(number, data, record)

    def load_sla(self, number: int) -> StoredSla:
        if number not in self.sla_versions():
            msg = f"case {self.pseudonym} has no resin slicing s{number}"
            raise VaultError(msg)
        data = self._load_bytes(f"print/s{number}.sl1")
        return StoredSla(number, data, self._load_json(f"print/s{number}.json"))

    # ----- the print record and verifications -----------------------------------------------------
    def print_record(self) -> list[dict]:
        """The signed steps after slicing (material, post-processing, delivery), oldest first."""
        if not self._has(PRINT_RECORD_FILE):
            return []
        data = self._load_json(PRINT_RECORD_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            msg = (
                f"the print record of case {self.pseudonym} is malformed; restore it from a backup"
            )
            raise VaultError(msg)
        return list(data["steps"])

    def save_print_record(self, steps: list[dict]) -> None:
        self._save_json(PRINT_RECORD_FILE, {"version": 1, "steps": steps})

    def verifications(self) -> list[int]:
        """Numbers of the stored verifications of the printed model, oldest first."""
        return sorted(int(m.group(1)) for n in self.files() if (m := _VERIFICATION.match(n)))

    def save_verification(self, report: Mapping[str, Any]) -> int:
        """Store a verification report; its number."""
        number = (self.verifications() or [0])[-1] + 1
        self._save_json(f"verify/v{number}.json", dict(report))
        return number

    def load_verification(self, number: int) -> dict:
        if number not in self.verifications():
            msg = f"case {self.pseudonym} has no verification {number}"
            raise VaultError(msg)
        return self._load_json(f"verify/v{number}.json")

    # ----- the order and the review comments --------------------------------------------------------
    def save_order(self, order: Mapping[str, Any]) -> None:
        """The case order: coded indication, region, service, due date; its free-text note."""
        self._save_json(ORDER_FILE, dict(order))

    def load_order(self) -> dict | None:
        return self._load_json(ORDER_FILE) if self._has(ORDER_FILE) else None

    def load_comments(self) -> list[dict]:
        """Comments pinned to mesh versions (free text: they never leave the vault)."""
        if not self._has(COMMENTS_FILE):
            return []
        data = self._load_json(COMMENTS_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("comments"), list):
            msg = f"{COMMENTS_FILE} of case {self.pseudonym} is malformed; restore it from a backup"
            raise VaultError(msg)
        return list(data["comments"])

    def save_comments(self, comments: list[dict]) -> None:
        self._save_json(COMMENTS_FILE, {"version": 1, "comments": comments})

    # ----- decisions ------------------------------------------------------------------------------
    def load_decisions(self) -> list[dict]:
        if not self._has(DECISIONS_FILE):
            return []
        data = self._load_json(DECISIONS_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            msg = (
                f"{DECISIONS_FILE} of case {self.pseudonym} is malformed; restore it from a backup"
            )
            raise VaultError(msg)
        return list(data["records"])

    def save_decisions(self, records: list[dict]) -> None:
        self._save_json(DECISIONS_FILE, {"version": 1, "records": records})

    # ----- view state -----------------------------------------------------------------------------
    def save_view_state(self, state: Mapping[str, Any]) -> None:
        self._save_json(VIEW_FILE, dict(state))

    def view_state(self) -> dict:
        return self._load_json(VIEW_FILE) if self._has(VIEW_FILE) else {}

    # ----- reports ----------------------------------------------------------------------------------
    def save_report(self, name: str, data: bytes) -> None:
        self._save_bytes(f"reports/{_check_report(name)}", data)

    def load_report(self, name: str) -> bytes:
        return self._load_bytes(f"reports/{_check_report(name)}")

    def reports(self) -> Iterator[str]:
        return (n.removeprefix("reports/") for n in self.files() if n.startswith("reports/"))


def _check_report(name: str) -> str:
    if not _REPORT_RE.match(name):
        msg = f"'{name}' is not a valid report name"
        raise MedPrintError(msg)
    return name

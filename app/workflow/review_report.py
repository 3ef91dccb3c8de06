"""The review report of a mesh version: assembled from the case, made as PDF, audited.

It shows the case by pseudonym only: acquisition facts come from the stored series facts and
a few technical header fields of the first original (kernel, tilt), never a patient field.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pydicom
import trimesh

from app.case import Case
from app.imaging.volume import Volume
from app.tools.mesh.core import make_mesh
from app.tools.mesh.meshio import read_mesh_bytes
from app.tools.mesh.review_report import ReviewFacts, report_pdf
from app.tools.mesh.surface import MaskCrop, extract_surface, sample_distances
from app.tools.segmentation.storage import read_segmentation
from app.workflow import names, policy, trace
from app.workflow.actor import Actor

ACTION = "review.report"
# Technical header fields the report may show (no identity among them).
_HEADER_FIELDS = {
    "kernel": "ConvolutionKernel",
    "gantry_tilt": "GantryDetectorTilt",
    "slice_thickness": "SliceThickness",
}
_INFO_SKIP = {"author", "operation", "time_utc", "parent_version", "authors"}


def make(actor: Actor, case: Case, version: int) -> bytes:
    """The review report of mesh ``version`` as PDF bytes (audited)."""
    policy.allow(actor, "review.view", case.pseudonym)
    data = report_bytes(case, version, chain=trace.build(actor, case, version=version))
    policy.record(actor, ACTION, case.pseudonym, version=version, bytes=len(data))
    return data


def write(actor: Actor, case: Case, version: int, out: str | os.PathLike[str]) -> Path:
    """Write the report of ``version`` to ``out`` (a file name the caller chose)."""
    target = Path(out)
    names.check_outgoing(actor, case, target.name, what="report file name", action=ACTION)
    target.write_bytes(make(actor, case, version))
    return target


def report_bytes(
    case: Case, version: int, decision: dict | None = None, chain: trace.Trace | None = None
) -> bytes:
    """The report itself, without a permission check (the package build has made it), signed
    by ``decision`` (default: the newest decision on the version's hash), with ``chain``."""
    return report_pdf(facts(case, version, decision, chain))


def facts(
    case: Case, version: int, decision: dict | None = None, chain: trace.Trace | None = None
) -> ReviewFacts:
    stored = case.load_mesh_version(version)
    parts = {n: make_mesh(*read_mesh_bytes(d, "stl")) for n, d in stored.parts.items()}
    colours = {e["name"]: e.get("colour") for e in stored.part_facts if e.get("colour")}
    series = {**case.series_facts(), **header_facts(case)}
    volume = case.load_volume() if case.has_volume() else None
    return ReviewFacts(
        pseudonym=case.pseudonym,
        version=version,
        parts=parts,
        colours=colours,
        series=series,
        qa=stored.qa,
        history=history(case, version),
        decision=decision or decision_for(case, stored.sha256),
        volume=volume,
        distances=_distances(case, version, stored.qa, parts, volume),
        suitability=list(series.get("suitability") or []),
        chain=trace.public(chain) if chain is not None else None,
    )


def _distances(
    case: Case, version: int, qa: dict, parts: dict[str, trimesh.Trimesh], volume: Volume | None
) -> np.ndarray | None:
    """Per-point distances to the segmentation surface for a version whose QA kept no
    histogram of them (made before QA did): each part against the surface of the segment it was
    built from, in the saved segmentation. None when QA kept them, or nothing to measure."""
    deviation = qa.get("deviation")
    if not isinstance(deviation, dict) or deviation.get("histogram") or volume is None:
        return None
    info = case.mesh_info(version)
    built_from = dict(zip(info.get("parts") or [], info.get("segments") or [], strict=False))
    if not built_from or not case.has_segmentation():
        return None
    with case.read_segmentation() as src:
        seg = read_segmentation(src)
    names_ = {s.name for s in seg.segments}
    found = []
    for part, name in built_from.items():
        box = seg.bbox(seg.segment(name)) if name in names_ and part in parts else None
        if box is not None and seg.grid.matches(volume):
            reference, _ = extract_surface(MaskCrop(seg.mask(seg.segment(name), box), box), volume)
            found.append(sample_distances(parts[part], reference))
    return np.concatenate(found) if found else None


def header_facts(case: Case) -> dict:
    """Kernel, tilt and thickness from the first original's header (technical fields only)."""
    names = case.original_names()
    if not names:
        return {}
    ds = pydicom.dcmread(io.BytesIO(case.load_original(names[0])), stop_before_pixels=True)
    found = {}
    for key, keyword in _HEADER_FIELDS.items():
        value = ds.get(keyword)
        if value is not None and value != "":
            found[key] = _plain(value)
    return found


def _plain(value: object) -> object:
    if isinstance(value, pydicom.multival.MultiValue):
        return "/".join(str(v) for v in value)
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


def history(case: Case, version: int) -> list[dict]:
    """The version lineage, oldest first: operation, parameters, who and when."""
    steps: list[dict] = []
    number: int | None = version
    while number is not None and number in case.mesh_versions():
        if any(s["version"] == number for s in steps):
            break
        info = case.mesh_info(number)
        params = {k: v for k, v in info.items() if k not in _INFO_SKIP}
        steps.append(
            {
                "version": number,
                "operation": info.get("operation", "build"),
                "params": info.get("params", params),
                "author": info.get("author"),
                "time_utc": info.get("time_utc"),
            }
        )
        parent = info.get("parent_version")
        number = int(parent) if parent is not None else None
    return steps[::-1]


def decision_for(case: Case, mesh_sha256: str) -> dict | None:
    """The newest signed decision on this mesh hash, if any."""
    found = [
        r
        for r in case.load_decisions()
        if r.get("type") == "decision" and r.get("mesh_sha256") == mesh_sha256
    ]
    return found[-1] if found else None

"""The review report: one PDF a surgeon signs off, made with matplotlib's PDF backend.

Pages: the case (pseudonym, parts, the source series' acquisition facts and suitability
warnings, never identity) with the signature block; key slices of the image with the mesh's
cross-section drawn over them; three shaded views of the mesh; the QA table with a deviation
histogram; the edit history along the version lineage. Pure: everything it shows is given.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import trimesh
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure

from app.imaging.volume import Volume
from app.tools.mesh.report import _VIEWS, _picture_mesh

SIGNATURE_FIELDS = (
    ("Printed name", "printed_name"),
    ("Role", "role"),
    ("Meaning", "meaning"),
    ("Time (UTC)", "time_utc"),
    ("Mesh SHA-256", "mesh_sha256"),
    ("Signer key", "signer_key"),
)
_PAGE = (8.27, 11.69)  # A4 portrait, inches


@dataclass
class ReviewFacts:
    """What the report shows; no identity anywhere in it."""

    pseudonym: str
    version: int
    parts: dict[str, trimesh.Trimesh]
    colours: dict[str, str]
    series: Mapping[str, object]
    qa: Mapping[str, object]
    history: Sequence[Mapping[str, object]]
    decision: Mapping[str, object] | None
    volume: Volume | None = None
    distances: np.ndarray | None = None
    suitability: list[Mapping[str, object]] = field(default_factory=list)


def contour_segments(mesh: trimesh.Trimesh, volume: Volume, k: float) -> np.ndarray:
    """The mesh's cross-section with image slice ``k`` as segments (n, 2, 2) in (i, j) index
    coordinates of that slice (the plane is cut in LPS mm and mapped to the grid)."""
    origin = volume.index_to_lps(np.array([0.0, 0.0, k]))
    normal = volume.direction[:, 2]
    lines = trimesh.intersections.mesh_plane(mesh, normal, origin)
    if len(lines) == 0:
        return np.zeros((0, 2, 2))
    ijk = volume.lps_to_index(np.asarray(lines).reshape(-1, 3)).reshape(-1, 2, 3)
    return ijk[:, :, :2]


def key_slices(mesh: trimesh.Trimesh, volume: Volume, count: int = 3) -> list[int]:
    """``count`` slice numbers spread across the mesh's extent along the slice axis."""
    k = volume.lps_to_index(mesh.vertices)[:, 2]
    lo, hi = float(k.min()), float(k.max())
    picks = np.linspace(lo, hi, count + 2)[1:-1]
    top = volume.shape[0] - 1
    return sorted({int(np.clip(round(p), 0, top)) for p in picks})


def report_pdf(facts: ReviewFacts) -> bytes:
    """The review report as PDF bytes."""
    out = io.BytesIO()
    meta = {"Title": f"Review report {facts.pseudonym} v{facts.version}", "Author": "MedPrint"}
    with PdfPages(out, metadata=meta) as pdf:
        for page in (_summary_page, _slices_page, _views_page, _qa_page, _history_page):
            fig = page(facts)
            if fig is not None:
                pdf.savefig(fig)
    return out.getvalue()


def _text_page(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=_PAGE)
    ax = fig.add_axes((0.06, 0.04, 0.88, 0.9))
    ax.axis("off")
    fig.suptitle(title, fontsize=14, x=0.06, ha="left")
    return fig, ax


def _lines(ax, rows: Sequence[str], top: float = 1.0, size: float = 9) -> float:
    y = top
    for row in rows:
        ax.text(0, y, row, fontsize=size, va="top", family="DejaVu Sans")
        y -= 0.024 * size / 9
    return y


def _summary_page(facts: ReviewFacts) -> Figure:
    fig, ax = _text_page(f"Review report: case {facts.pseudonym}, mesh v{facts.version}")
    parts = ", ".join(sorted(facts.parts))
    rows = [f"Case: {facts.pseudonym}", f"Part(s): {parts}", "", "Source series:"]
    rows += [f"  {label}: {value}" for label, value in _series_rows(facts.series)]
    rows += ["", "Suitability for printing:"]
    rows += [f"  - {w.get('reason', w)}" for w in facts.suitability] or ["  no warnings"]
    y = _lines(ax, rows)
    _lines(ax, ["", "Signature", *_signature_rows(facts.decision)], top=y - 0.02, size=10)
    return fig


def _series_rows(series: Mapping[str, object]) -> list[tuple[str, object]]:
    spacing = series.get("spacing") or series.get("pixel_spacing")
    labels = (
        ("Modality", series.get("modality")),
        ("Body part", series.get("body_part")),
        ("Slice thickness (mm)", series.get("slice_thickness", series.get("thickness"))),
        ("Spacing (mm)", _fmt(spacing)),
        ("Reconstruction kernel", series.get("kernel")),
        ("Gantry tilt (deg)", series.get("gantry_tilt", series.get("tilt"))),
        ("Slices", series.get("slices")),
    )
    return [(k, "not recorded" if v in (None, "") else v) for k, v in labels]


def _fmt(value: object) -> object:
    if isinstance(value, list | tuple):
        return " x ".join(f"{float(v):.3g}" for v in value)
    return value


def _signature_rows(decision: Mapping[str, object] | None) -> list[str]:
    if not decision:
        return ["Not yet decided: no signed decision for this version."]
    rows = [f"Decision: {decision.get('decision')}"]
    return rows + [f"{label}: {decision.get(key)}" for label, key in SIGNATURE_FIELDS]


def _slices_page(facts: ReviewFacts) -> Figure | None:
    if facts.volume is None:
        return None
    volume = facts.volume
    whole = trimesh.util.concatenate(list(facts.parts.values()))
    picks = key_slices(whole, volume)
    fig = Figure(figsize=_PAGE)
    fig.suptitle(f"Key slices with the mesh contour ({facts.pseudonym})", fontsize=12)
    for row, k in enumerate(picks):
        ax = fig.add_subplot(len(picks), 1, row + 1)
        image = volume.array[k]
        low, high = _window(volume, image)
        ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin="upper", aspect="equal")
        for name, mesh in facts.parts.items():
            segs = contour_segments(mesh, volume, float(k))
            colour = facts.colours.get(name) or "#ff3030"
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=1.2))
        ax.set_title(f"slice {k + 1} of {volume.shape[0]}", fontsize=8)
        ax.set_axis_off()
    return fig


def _window(volume: Volume, image: np.ndarray) -> tuple[float, float]:
    """A bone window for CT; the 1st to 99th percentile otherwise (MR has no fixed scale)."""
    if volume.modality == "CT":
        return -200.0, 1200.0
    low, high = np.percentile(image, [1, 99])
    return float(low), float(max(high, low + 1))


def _views_page(facts: ReviewFacts) -> Figure:
    fig = Figure(figsize=_PAGE)
    fig.suptitle("Shaded views of the mesh", fontsize=12)
    whole = _picture_mesh(trimesh.util.concatenate(list(facts.parts.values())))
    for index, (name, right, up, towards) in enumerate(_VIEWS):
        ax = fig.add_subplot(2, 2, index + 1)
        _shade(ax, whole, right, up, towards)
        ax.set_title(name, fontsize=9)
    return fig


def _shade(ax, mesh: trimesh.Trimesh, right, up, towards) -> None:
    tri = mesh.vertices[mesh.faces]
    normals = mesh.face_normals
    facing = normals @ -towards > 0
    tri, normals = tri[facing], normals[facing]
    xy = np.stack([tri @ right, tri @ up], axis=-1)
    order = np.argsort(-(tri @ towards).mean(axis=1))
    shade = 0.25 + 0.75 * np.clip(normals @ -towards, 0, 1)
    colours = np.stack([shade, shade, shade * 0.9, np.ones_like(shade)], axis=1)
    ax.add_collection(PolyCollection(xy[order], facecolors=colours[order], edgecolors="none"))
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_axis_off()


def _qa_page(facts: ReviewFacts) -> Figure:
    fig = Figure(figsize=_PAGE)
    fig.suptitle("Quality checks", fontsize=12)
    table_ax = fig.add_axes((0.06, 0.5, 0.88, 0.42))
    table_ax.axis("off")
    rows = [_check_row(c) for c in facts.qa.get("checks", [])] or [["no checks", "", "", ""]]
    table = table_ax.table(
        cellText=rows, colLabels=["check", "result", "value", "limit"], loc="upper center"
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    hist_ax = fig.add_axes((0.12, 0.08, 0.8, 0.33))
    _histogram(hist_ax, facts)
    return fig


def _check_row(check: Mapping[str, object]) -> list[str]:
    value = check.get("value")
    shown = f"{value:.3g}" if isinstance(value, int | float) else str(value)
    unit = check.get("unit") or ""
    return [
        str(check.get("name")),
        "pass" if check.get("passed") else "FAIL",
        f"{shown} {unit}".strip(),
        str(check.get("limit", ""))[:40],
    ]


def _histogram(ax, facts: ReviewFacts) -> None:
    ax.set_title("Deviation from the segmentation surface", fontsize=9)
    ax.set_xlabel("distance (mm)", fontsize=8)
    if facts.distances is not None and len(facts.distances):
        ax.hist(facts.distances, bins=40, color="#4a78b0")
        ax.set_ylabel("surface samples", fontsize=8)
        return
    dev = facts.qa.get("deviation") or {}
    if not isinstance(dev, Mapping) or not dev:
        ax.text(0.5, 0.5, "no deviation measured", ha="center", transform=ax.transAxes)
        return
    keys = [k for k in ("mean_mm", "p95_mm", "max_mm") if k in dev]
    ax.barh(keys, [float(dev[k]) for k in keys], color="#4a78b0")
    ax.axvline(float(facts.qa.get("tolerance_mm", 0.5)), color="red", linestyle="--")


def _history_page(facts: ReviewFacts) -> Figure:
    fig, ax = _text_page("Edit history (version lineage, oldest first)")
    rows = []
    for step in facts.history:
        params = ", ".join(f"{k}={v}" for k, v in dict(step.get("params") or {}).items())
        rows.append(
            f"v{step.get('version')}: {step.get('operation')} by {step.get('author')} at "
            f"{step.get('time_utc')}"
        )
        if params:
            rows.append(f"    {params[:110]}")
    _lines(ax, rows or ["no history recorded"])
    return fig

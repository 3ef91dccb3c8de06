"""The review report: one PDF a surgeon signs off, made with matplotlib's PDF backend.

Pages: the case (pseudonym, parts, the source series' acquisition facts and suitability
warnings, never identity) with the signature block; key slices of the image in the three
planes of its grid with the mesh's cross-section drawn over them; three shaded views of the
mesh; the QA table with the histogram of the distances between the mesh and the segmentation
surface; the edit history along the version lineage; the traceability chain as far as it
exists. Pure: everything it shows is given.
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
ZOOM_MARGIN_MM = 40.0  # image shown around the mesh's cut on each side


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
    chain: Mapping[str, object] | None = None  # app.workflow.trace.public


# The grid axis a slice is taken across -> (the image's row axis, column axis) in (i, j, k).
_IMAGE_AXES = {2: (1, 0), 1: (2, 0), 0: (2, 1)}
_PLANE_NAMES = ("sagittal", "coronal", "axial")  # by the LPS axis the slice plane faces


def slice_normal(volume: Volume, axis: int) -> np.ndarray:
    """Unit normal (LPS) of the planes of constant index along ``axis`` (0 = i, 1 = j, 2 = k);
    for a sheared grid (gantry tilt) it is not the grid axis itself."""
    inverse = np.linalg.inv(volume.direction * np.asarray(volume.spacing)[None, :])
    normal = inverse[axis]
    return normal / np.linalg.norm(normal)


def plane_name(volume: Volume, axis: int) -> str:
    """Axial, coronal or sagittal: the anatomical plane closest to the slices across ``axis``."""
    return _PLANE_NAMES[int(np.argmax(np.abs(slice_normal(volume, axis))))]


def slice_image(volume: Volume, axis: int, index: int) -> np.ndarray:
    """The image of slice ``index`` across ``axis``: rows and columns as in :data:`_IMAGE_AXES`."""
    return np.take(volume.array, index, axis=2 - axis)  # the array is [k, j, i]


def contour_segments(mesh: trimesh.Trimesh, volume: Volume, k: float, axis: int = 2) -> np.ndarray:
    """The mesh's cross-section with slice ``k`` across grid ``axis`` as segments (n, 2, 2) in
    the (column, row) index coordinates of :func:`slice_image` (for ``axis`` 2: (i, j)); the
    plane is cut in LPS mm and mapped to the grid."""
    corner = np.zeros(3)
    corner[axis] = k
    origin = volume.index_to_lps(corner)
    lines = trimesh.intersections.mesh_plane(mesh, slice_normal(volume, axis), origin)
    if len(lines) == 0:
        return np.zeros((0, 2, 2))
    ijk = volume.lps_to_index(np.asarray(lines).reshape(-1, 3)).reshape(-1, 2, 3)
    row, column = _IMAGE_AXES[axis]
    return ijk[:, :, [column, row]]


def key_slices(mesh: trimesh.Trimesh, volume: Volume, count: int = 3, axis: int = 2) -> list[int]:
    """``count`` slice numbers spread across the mesh's extent along grid ``axis``."""
    k = volume.lps_to_index(mesh.vertices)[:, axis]
    lo, hi = float(k.min()), float(k.max())
    picks = np.linspace(lo, hi, count + 2)[1:-1]
    top = volume.size_ijk[axis] - 1
    return sorted({int(np.clip(round(p), 0, top)) for p in picks})


def report_pdf(facts: ReviewFacts) -> bytes:
    """The review report as PDF bytes."""
    out = io.BytesIO()
    meta = {"Title": f"Review report {facts.pseudonym} v{facts.version}", "Author": "MedPrint"}
    with PdfPages(out, metadata=meta) as pdf:
        pages = (_summary_page, _slices_page, _views_page, _qa_page, _history_page, _chain_page)
        for page in pages:
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
    """Three key slices across each grid axis (axial, coronal, sagittal for an axial series),
    each with every part's cross-section in its colour."""
    if facts.volume is None:
        return None
    volume = facts.volume
    whole = trimesh.util.concatenate(list(facts.parts.values()))
    fig = Figure(figsize=_PAGE)
    fig.suptitle(f"Key slices with the mesh contour ({facts.pseudonym})", fontsize=12)
    for row, axis in enumerate((2, 1, 0)):
        picks = key_slices(whole, volume, axis=axis)
        for column, index in enumerate(picks):
            ax = fig.add_subplot(3, len(picks), row * len(picks) + column + 1)
            _slice_panel(ax, facts, axis, index)
    return fig


def _slice_panel(ax, facts: ReviewFacts, axis: int, index: int) -> None:
    volume = facts.volume
    assert volume is not None
    image = slice_image(volume, axis, index)
    low, high = _window(volume, image)
    row, column = _IMAGE_AXES[axis]
    aspect = volume.spacing[row] / volume.spacing[column]
    superior_up = axis != 2 and volume.direction[2, 2] > 0  # k runs up the page
    origin = "lower" if superior_up else "upper"
    ax.imshow(image, cmap="gray", vmin=low, vmax=high, origin=origin, aspect=aspect)
    drawn = []
    for name, mesh in facts.parts.items():
        segs = contour_segments(mesh, volume, float(index), axis)
        colour = facts.colours.get(name) or "#ff3030"
        ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.8))
        drawn.append(segs.reshape(-1, 2))
    margin = np.array(
        [ZOOM_MARGIN_MM / volume.spacing[column], ZOOM_MARGIN_MM / volume.spacing[row]]
    )
    _zoom(ax, np.concatenate(drawn), image.shape, margin, flip=origin == "upper")
    ax.set_title(f"{plane_name(volume, axis)} {index + 1} of {volume.size_ijk[axis]}", fontsize=7)
    ax.set_axis_off()


def _zoom(ax, points: np.ndarray, shape: tuple[int, ...], margin: np.ndarray, flip: bool) -> None:
    """Show the contour with ``margin`` (pixels per image axis) around it, within the image:
    the anatomy around the cut is what a reviewer judges."""
    if not len(points):
        return
    top = np.array([shape[1], shape[0]]) - 0.5
    lo = np.clip(points.min(axis=0) - margin, -0.5, top)
    hi = np.clip(points.max(axis=0) + margin, -0.5, top)
    if np.any(hi <= lo):  # the cut lies off the image: show the whole slice
        return
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim((hi[1], lo[1]) if flip else (lo[1], hi[1]))


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
    """How far the mesh lies from the segmentation surface: the distribution of the per-point
    distances (given, or as QA binned them), with the 95th percentile and the tolerance."""
    ax.set_title("Deviation from the segmentation surface", fontsize=9)
    ax.set_xlabel("distance from the segmentation surface (mm)", fontsize=8)
    dev = facts.qa.get("deviation")
    dev = dev if isinstance(dev, Mapping) else {}
    binned = _binned(facts.distances, dev)
    if binned is None:
        ax.text(0.5, 0.5, _no_histogram(dev), ha="center", fontsize=8, transform=ax.transAxes)
        ax.set_yticks([])
        return
    counts, edges, p95 = binned
    ax.stairs(counts, edges, fill=True, color="#4a78b0")
    ax.set_ylabel("surface points", fontsize=8)
    ax.axvline(p95, color="#202020", linestyle="-", label=f"95th percentile {p95:.3f} mm")
    tolerance = facts.qa.get("tolerance_mm")
    if isinstance(tolerance, int | float):
        ax.axvline(
            float(tolerance), color="red", linestyle="--", label=f"tolerance {tolerance:g} mm"
        )
    ax.legend(fontsize=7, title=f"{int(counts.sum())} points", title_fontsize=7)


def _binned(
    distances: np.ndarray | None, dev: Mapping[str, object]
) -> tuple[np.ndarray, np.ndarray, float] | None:
    """(counts, bin edges, 95th percentile) from the distances, else from QA's histogram."""
    if distances is not None and len(distances):
        counts, edges = np.histogram(distances, bins=40)
        return counts, edges, float(np.percentile(distances, 95))
    stored = dev.get("histogram")
    if isinstance(stored, Mapping) and dev.get("p95_mm") is not None:
        counts = np.asarray(stored.get("counts", []), dtype=float)
        edges = np.asarray(stored.get("edges_mm", []), dtype=float)
        if len(counts) and len(edges) == len(counts) + 1:
            return counts, edges, float(dev["p95_mm"])  # type: ignore[arg-type]
    return None


def _no_histogram(dev: Mapping[str, object]) -> str:
    if not dev:
        return "no deviation measured for this version"
    summary = ", ".join(f"{k[:-3]} {float(dev[k]):.3f} mm" for k in ("mean_mm", "p95_mm", "max_mm")
                        if isinstance(dev.get(k), int | float))  # fmt: skip
    return f"per-point distances not kept for this version ({summary})"


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


def _chain_page(facts: ReviewFacts) -> Figure:
    """The traceability chain when the report was made: each link in order with its status,
    the start of its hash, its time and its main facts."""
    fig, ax = _text_page("Traceability chain (as far as it exists)")
    chain = facts.chain
    if not chain:
        _lines(ax, ["no chain recorded"])
        return fig
    links = list(chain.get("links") or [])  # type: ignore[call-overload]
    broken = [str(link.get("name")) for link in links if link.get("status") == "broken"]
    verdict = f"BROKEN at {', '.join(broken)}" if broken else "intact"
    rows = [f"Case {chain.get('case')}, chain made {chain.get('made_utc')}: {verdict}", ""]
    for number, link in enumerate(links, start=1):
        link_facts = dict(link.get("facts") or {})
        rows.append(
            f"{number}. {link.get('name')}: {_status(link.get('status'))} | "
            f"sha256 {str(link.get('sha256') or '-')[:12]} | {link_facts.get('time_utc') or '-'}"
        )
        rows.append(f"      {_chain_facts(link_facts)}"[:120])
    _lines(ax, rows, size=8)
    return fig


def _status(status: object) -> str:
    return {"ok": "OK", "broken": "BROKEN"}.get(str(status), str(status))


def _chain_facts(facts: Mapping[str, object]) -> str:
    """The facts worth a line: no long hashes (the UID keys), no time (shown already)."""
    shown = [
        f"{k}={v}"
        for k, v in facts.items()
        if v not in (None, "", []) and k != "time_utc" and not k.endswith("sha256")
    ]
    return ", ".join(shown) or "-"

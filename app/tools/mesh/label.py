"""Case label: the pseudonym embossed or engraved as 3D text at a chosen surface point.

Only a case pseudonym (``C-7K3M-Q9``) can be a label: anything else is refused, so a patient
field can never end up printed. The glyphs come from DejaVu Sans Bold (bundled with
matplotlib), are thickened to a minimum stroke width so they survive printing, extruded with
manifold3d and united with / subtracted from the model: the result stays a closed 2-manifold.

The label is a flat plate of text in the tangent plane at the point: embossed text rises
``depth_mm`` above the highest surface point under it and is sunk into the surface below;
engraved text is cut ``depth_mm`` below the lowest surface point under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache

import manifold3d as mf
import numpy as np
import trimesh

from app.errors import MeshError
from app.tools.mesh.core import topology
from app.tools.mesh.edit import _place, frame_from_normal, from_manifold, to_manifold
from app.tools.mesh.meshio import PSEUDONYM_RE
from app.tools.mesh.repair import count_self_intersections, repair_mesh

DEFAULT_HEIGHT_MM = 7.5
DEFAULT_DEPTH_MM = 3.0
MIN_STROKE_MM = 1.0
POINT_CONTACT_MM = 0.01  # glyph strokes touching closer than this are joined
_FONT_FAMILY = "DejaVu Sans"
# Where an automatic label goes, tried in order: a ray from the front (anterior is -y in LPS),
# then from the patient's right and left, then from below.
_LABEL_APPROACHES = ((0, 1, 0), (-1, 0, 0), (1, 0, 0), (0, 0, 1))


@dataclass
class LabelInfo:
    """Everything needed to find and re-check a label on the mesh (no PHI: the pseudonym only)."""

    text: str
    mode: str
    point: list[float]
    normal: list[float]
    up: list[float]
    height_mm: float
    depth_mm: float
    width_mm: float
    stroke_mm: float
    surface_low_mm: float
    surface_high_mm: float
    text_plane_mm: float

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def rotation(self) -> np.ndarray:
        return frame_from_normal(np.asarray(self.normal), np.asarray(self.up))


@lru_cache(maxsize=32)
def _glyph_contours(text: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    from matplotlib.font_manager import FontProperties  # noqa: PLC0415 (heavy, only for labels)
    from matplotlib.textpath import TextPath  # noqa: PLC0415

    path = TextPath(
        (0, 0), text, size=100.0, prop=FontProperties(family=_FONT_FAMILY, weight="bold")
    )
    return tuple(tuple(map(tuple, poly[:-1])) for poly in path.to_polygons(closed_only=True))


def text_outline(
    text: str, height_mm: float = DEFAULT_HEIGHT_MM, min_stroke_mm: float = MIN_STROKE_MM
) -> mf.CrossSection:
    """2D outline of ``text`` with cap height ``height_mm``, centred on the origin, in mm.

    Strokes thinner than ``min_stroke_mm`` are thickened (the outline is offset outward).
    """
    contours = [np.asarray(c) for c in _glyph_contours(text)]
    if not contours:
        msg = "the label text has no printable glyphs"
        raise MeshError(msg)
    raw = mf.CrossSection(contours, mf.FillRule.EvenOdd)
    cap = _cap_height()
    scaled = raw.scale((height_mm / cap, height_mm / cap))
    stroke = _stroke_width(scaled)
    if stroke < min_stroke_mm:
        scaled = scaled.offset((min_stroke_mm - stroke) / 2.0, mf.JoinType.Round)
    # Glyph strokes can touch at one point (the fork of a Y): extruded, such a point pinches the
    # letter into a non-manifold edge. Closing by 0.01 mm bridges every point contact.
    scaled = scaled.offset(POINT_CONTACT_MM, mf.JoinType.Round).offset(
        -POINT_CONTACT_MM, mf.JoinType.Round
    )
    (x0, y0, x1, y1) = scaled.bounds()
    return scaled.translate((-(x0 + x1) / 2.0, -(y0 + y1) / 2.0))


@lru_cache(maxsize=1)
def _cap_height() -> float:
    """Height of a capital H at the outline size (font units scaled to size 100)."""
    points = np.concatenate([np.asarray(c) for c in _glyph_contours("H")])
    return float(points[:, 1].max() - points[:, 1].min())


def _stroke_width(section: mf.CrossSection) -> float:
    """Typical stroke width: twice the area over the outline length."""
    length = 0.0
    for poly in section.to_polygons():
        p = np.asarray(poly)
        length += float(np.linalg.norm(np.roll(p, -1, axis=0) - p, axis=1).sum())
    return 2.0 * section.area() / length if length else 0.0


def stroke_width(text: str, height_mm: float = DEFAULT_HEIGHT_MM) -> float:
    return _stroke_width(text_outline(text, height_mm))


def check_label_text(text: str) -> str:
    if not PSEUDONYM_RE.match(text or ""):
        msg = "a label can only be the case pseudonym (like C-7K3M-Q9), never a patient field"
        raise MeshError(msg)
    return text


def _surface_heights(
    solid: mf.Manifold,
    outline: mf.CrossSection,
    rotation: np.ndarray,
    point: np.ndarray,
    reach: float,
) -> np.ndarray:
    """Heights (along the normal) where rays cast down over the text footprint meet the surface."""
    x0, y0, x1, y1 = outline.bounds()
    xs = np.linspace(x0, x1, 9)
    ys = np.linspace(y0, y1, 4)
    heights = []
    for x in xs:
        for y in ys:
            start = point + rotation @ np.array([x, y, reach])
            end = point + rotation @ np.array([x, y, -reach])
            hits = solid.ray_cast(tuple(start), tuple(end))
            if hits:
                heights.append(float(np.dot(np.asarray(hits[0].position) - point, rotation[:, 2])))
    return np.asarray(heights)


def add_label(
    mesh: trimesh.Trimesh,
    text: str,
    point: np.ndarray,
    normal: np.ndarray,
    *,
    mode: str = "emboss",
    height_mm: float = DEFAULT_HEIGHT_MM,
    depth_mm: float = DEFAULT_DEPTH_MM,
    up: np.ndarray | None = None,
) -> tuple[trimesh.Trimesh, LabelInfo]:
    """Emboss or engrave ``text`` (a case pseudonym) at ``point`` facing ``normal``.

    Parameters
    ----------
    point, normal
        A point on the surface (LPS mm) and the outward normal there.
    mode
        ``"emboss"`` (raised) or ``"engrave"`` (cut in).
    height_mm, depth_mm
        Letter cap height and relief depth (defaults 7.5 and 3 mm).
    up
        Direction the top of the letters should face (default superior, +z).
    """
    check_label_text(text)
    if mode not in ("emboss", "engrave"):
        msg = f"label mode {mode!r} is unknown; use emboss or engrave"
        raise MeshError(msg)
    if height_mm <= 0 or depth_mm <= 0:
        msg = "label height and depth must be positive (defaults 7.5 mm and 3 mm)"
        raise MeshError(msg)
    point = np.asarray(point, dtype=np.float64)
    rotation = frame_from_normal(normal, up)
    solid = to_manifold(mesh)
    outline = text_outline(text, height_mm)
    reach = 4.0 * height_mm + depth_mm
    heights = _surface_heights(solid, outline, rotation, point, reach)
    if len(heights) < 30:
        msg = "the label does not fit on the surface there; pick a flatter, larger area"
        raise MeshError(msg)
    low, high = float(heights.min()), float(heights.max())
    if mode == "emboss":
        base = low - 1.0
        top = high + depth_mm
        block = mf.Manifold.extrude(outline, top - base).translate((0.0, 0.0, base))
        result = solid + _place(block, rotation, point)
        plane = top
    else:
        floor = low - depth_mm
        block = mf.Manifold.extrude(outline, high + 1.0 - floor).translate((0.0, 0.0, floor))
        result = solid - _place(block, rotation, point)
        plane = floor
    x0, _, x1, _ = outline.bounds()
    info = LabelInfo(
        text=text,
        mode=mode,
        point=point.tolist(),
        normal=rotation[:, 2].tolist(),
        up=rotation[:, 1].tolist(),
        height_mm=float(height_mm),
        depth_mm=float(depth_mm),
        width_mm=float(x1 - x0),
        stroke_mm=_stroke_width(outline),
        surface_low_mm=low,
        surface_high_mm=high,
        text_plane_mm=plane,
    )
    labelled = from_manifold(result)
    # The union is exact, but stored as float32 (an STL) two of its vertices can still fall on
    # one point on a curved surface and pinch it: mend that locally
    if not topology(labelled).closed_manifold:
        labelled, _ = repair_mesh(labelled, fix_intersections=False)
    return labelled, info


def label_section(mesh: trimesh.Trimesh, info: LabelInfo) -> mf.CrossSection:
    """The model's cross-section in the label frame just inside the text relief.

    For an embossed label that is the raised letters themselves; for an engraved one, the
    letter-shaped pockets in a slab of material (the cut letters are the holes). Compare it with
    :func:`text_outline` to check which text the mesh carries.
    """
    rotation = info.rotation
    point = np.asarray(info.point)
    m = np.zeros((3, 4))
    m[:, :3] = rotation.T
    m[:, 3] = -rotation.T @ point
    local = to_manifold(mesh).transform(m.tolist())
    if info.mode == "emboss":
        return local.slice(info.text_plane_mm - 0.5 * info.depth_mm)
    return local.slice(info.text_plane_mm + 0.5 * info.depth_mm)


def label_match(mesh: trimesh.Trimesh, info: LabelInfo, text: str | None = None) -> float:
    """Intersection over union of the letters on the mesh with ``text`` (default: info.text).

    About 1 when the mesh carries that text at that place, much lower for any other text.
    """
    expected = text_outline(text or info.text, info.height_mm)
    section = label_section(mesh, info)
    x0, y0, x1, y1 = expected.bounds()
    window = mf.CrossSection.square((x1 - x0 + 2.0, y1 - y0 + 2.0)).translate((x0 - 1.0, y0 - 1.0))
    found = section ^ window
    if info.mode == "engrave":
        found = window - found
        found = found ^ mf.CrossSection.square((x1 - x0, y1 - y0)).translate((x0, y0))
    inter = (found ^ expected).area()
    union = (found + expected).area()
    return float(inter / union) if union else 0.0


def label_region(info: LabelInfo, margin_mm: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """``points -> bool mask`` of the points inside the label's block (plus ``margin_mm``)."""
    rotation = info.rotation
    origin = np.asarray(info.point)
    half_w = info.width_mm / 2.0 + margin_mm
    half_h = info.height_mm + margin_mm  # descenders reach below the cap height
    z_low = min(info.surface_low_mm, info.text_plane_mm) - 1.0 - margin_mm
    z_high = max(info.surface_high_mm, info.text_plane_mm) + margin_mm

    def inside(points: np.ndarray) -> np.ndarray:
        local = (np.asarray(points) - origin) @ rotation
        return (
            (np.abs(local[:, 0]) <= half_w)
            & (np.abs(local[:, 1]) <= half_h)
            & (local[:, 2] >= z_low)
            & (local[:, 2] <= z_high)
        )

    return inside


def _label_sites(mesh: trimesh.Trimesh):
    """(point, outward normal, up) candidates: front, sides, back, below; text across the model
    or running along its long axis; at mid-height first."""
    solid = to_manifold(mesh)
    lo, hi = mesh.bounds
    reach = float(np.linalg.norm(hi - lo)) + 10.0
    ups = (np.array([0.0, 0.0, 1.0]), None)
    for approach in _LABEL_APPROACHES:
        direction = np.asarray(approach, dtype=np.float64)
        side = np.cross(direction, [0.0, 0.0, 1.0])
        side = side if np.linalg.norm(side) > 0 else np.array([1.0, 0.0, 0.0])
        for height in (0.5, 0.35, 0.65):
            centre = lo + (hi - lo) * np.array([0.5, 0.5, height])
            hits = solid.ray_cast(
                tuple(centre - reach * direction), tuple(centre + reach * direction)
            )
            if not hits:
                continue
            for up in ups:
                yield np.asarray(hits[0].position), -direction, side if up is None else up


def _printable(mesh: trimesh.Trimesh, crossings_before: int) -> bool:
    """Closed and manifold as an STL reader sees it, with no more crossing triangles than the
    model had before the label (QA counts them; the label must not add any)."""
    closed = topology(mesh).closed_manifold
    return closed and count_self_intersections(mesh) <= crossings_before


def label_with_pseudonym(
    mesh: trimesh.Trimesh,
    pseudonym: str,
    *,
    mode: str = "emboss",
    height_mm: float = DEFAULT_HEIGHT_MM,
    depth_mm: float = DEFAULT_DEPTH_MM,
) -> tuple[trimesh.Trimesh, LabelInfo]:
    """Emboss (or engrave) the pseudonym at the first automatic site where the text fits."""
    check_label_text(pseudonym)
    before = count_self_intersections(mesh)
    for point, normal, up in _label_sites(mesh):
        try:
            labelled, info = add_label(
                mesh, pseudonym, point, normal, mode=mode, up=up,
                height_mm=height_mm, depth_mm=depth_mm,
            )  # fmt: skip
        except MeshError:
            continue
        # add_label mends pinches; a crossing where letters meet the surface is removed
        # here, or the next site is tried.
        if not _printable(labelled, before):
            labelled, _ = repair_mesh(labelled)
        if _printable(labelled, before):
            return labelled, info
    msg = "no surface of this model is large and flat enough for the label; place it by hand"
    raise MeshError(msg)

"""The human-readable QA report: one self-contained HTML page with pictures of the model.

The pictures are orthographic views (anterior, left lateral, superior) drawn as flat-shaded
SVG polygons by a painter's algorithm: no renderer, no display and no external files needed,
so the page opens on any computer at the receiving side. It names the case by pseudonym only.
"""

from __future__ import annotations

import html

import numpy as np
import trimesh

from app.tools.mesh.qa import QAReport

# (name, right axis, up axis, viewing direction) in patient LPS: x left, y posterior, z superior.
_VIEWS = (
    ("anterior", np.array([-1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, 1.0, 0])),
    ("left lateral", np.array([0, -1.0, 0]), np.array([0, 0, 1.0]), np.array([-1.0, 0, 0])),
    ("superior", np.array([-1.0, 0, 0]), np.array([0, -1.0, 0]), np.array([0, 0, -1.0])),
)
_MAX_TRIANGLES = 6000
_SIZE = 260


def _picture_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    if len(mesh.faces) <= _MAX_TRIANGLES:
        return mesh
    import fast_simplification  # noqa: PLC0415

    points, faces = fast_simplification.simplify(
        mesh.vertices.astype(np.float32), mesh.faces, target_count=_MAX_TRIANGLES
    )
    return trimesh.Trimesh(points, faces, process=False)


def view_svg(mesh: trimesh.Trimesh, name: str, right, up, towards) -> str:
    """One orthographic, flat-shaded view of ``mesh`` as an SVG element."""
    tri = mesh.vertices[mesh.faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    facing = normals @ -towards > 0
    tri, normals = tri[facing], normals[facing]
    xy = np.stack([tri @ right, -(tri @ up)], axis=-1)
    lo, hi = xy.reshape(-1, 2).min(axis=0), xy.reshape(-1, 2).max(axis=0)
    scale = (_SIZE - 20) / max(float((hi - lo).max()), 1e-6)
    xy = (xy - lo) * scale + 10
    depth = (tri @ towards).mean(axis=1)
    shade = 0.25 + 0.75 * np.clip(normals @ -towards, 0, 1)
    polygons = []
    for index in np.argsort(-depth):
        level = int(235 * shade[index])
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy[index])
        polygons.append(
            f'<polygon points="{points}" fill="rgb({level},{level},{int(level * 0.9)})"/>'
        )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{_SIZE}" height="{_SIZE}" '
        f'viewBox="0 0 {_SIZE} {_SIZE}" shape-rendering="crispEdges">{"".join(polygons)}</svg>'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
    )


def qa_report_html(qa: QAReport, mesh: trimesh.Trimesh, *, pseudonym: str, part: str) -> str:
    """The QA report as one HTML page: verdict, every check with its numbers, three views."""
    picture = _picture_mesh(mesh)
    views = "".join(view_svg(picture, *view) for view in _VIEWS)
    rows = "".join(
        f"<tr class={'pass' if c.passed else 'fail'}><td>{'pass' if c.passed else 'FAIL'}</td>"
        f"<td>{html.escape(c.name)}</td><td>{html.escape(_value(c.value))} {html.escape(c.unit)}</td>"
        f"<td>{html.escape(str(c.limit))}</td><td>{html.escape(c.detail)}</td></tr>"
        for c in qa.checks
    )
    size = " × ".join(f"{s:.1f}" for s in qa.size_mm)
    verdict = "PASS" if qa.passed else "FAIL"
    title = f"QA report — {html.escape(pseudonym)} {html.escape(part)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:left}} tr.fail td{{background:#fdd}}
tr.pass td:first-child{{color:#070}} figure{{display:inline-block;margin:0 1em 1em 0}}
.verdict{{font-size:1.4em;font-weight:bold}}</style></head><body>
<h1>{title}</h1>
<p class="verdict">{verdict}</p>
<p>{html.escape(qa.orientation)}</p>
<p>Volume {qa.volume_mm3 / 1000:.1f} ml, area {qa.area_mm2:.0f} mm², size {size} mm,
{qa.triangles} triangles, {qa.components} component(s).</p>
<table><tr><th></th><th>check</th><th>value</th><th>limit</th><th>detail</th></tr>{rows}</table>
<h2>Views</h2>{views}
</body></html>
"""


def _value(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)

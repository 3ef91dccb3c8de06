"""Segment masks -> printable, checked parts: extract, smooth, decimate, repair, label, QA.

One pipeline with named settings for every front end: :data:`PRESETS` (``print``: smoothed,
decimated, labelled with the pseudonym; ``review``: smoothed, every triangle kept, no label),
adapted to the series by :func:`settings_for`. :func:`build_parts` is what ``medprint mesh``,
the Mesh panel and the demo run (through :mod:`app.workflow.mesh` when a case stores the
result); the steps are also public on their own (:mod:`surface`, :mod:`repair`, :mod:`label`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
import trimesh

from app.errors import MeshError
from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.core import Topology, concatenate
from app.tools.mesh.label import (
    DEFAULT_DEPTH_MM,
    DEFAULT_HEIGHT_MM,
    LabelInfo,
    label_with_pseudonym,
)
from app.tools.mesh.qa import DEFAULT_TOLERANCE_MM, QAReport, qa_report
from app.tools.mesh.quadric import CHILD_FROM_TRIANGLES, start_child, stop_child
from app.tools.mesh.repair import DecimationReport, RepairReport, decimate_mesh, repair_mesh
from app.tools.mesh.stages import StageMeter, stage
from app.tools.mesh.surface import (
    DEFAULT_ITERATIONS,
    DEFAULT_SMOOTHING,
    Extracted,
    MaskCleanReport,
    MaskCrop,
    SmoothingReport,
    extract_surface,
    measure_smoothing,
    query_workers,
    smooth_surface,
)

COARSE_VOXEL_MM = 2.0  # a series with a voxel side above this gets lighter smoothing/decimation
LABEL_MODES = ("emboss", "engrave")


@dataclass(frozen=True)
class MeshSettings:
    """How a segment becomes a part.

    ``smoothing`` 0..1 as 3D Slicer (0.5 = passband 0.01), ``iterations`` of the windowed-sinc
    filter; decimation removes the fraction ``reduction`` of the triangles (0.8 keeps 20 %) or
    keeps ``target_triangles`` (neither: no decimation); ``label`` embosses (or engraves, by
    ``label_mode``) the case pseudonym, letters ``label_height_mm`` high and ``label_depth_mm``
    deep; QA passes a 95th percentile deviation from the
    segmentation surface up to ``tolerance_mm``.
    """

    name: str = "custom"
    smoothing: float = DEFAULT_SMOOTHING
    iterations: int = DEFAULT_ITERATIONS
    reduction: float | None = None
    target_triangles: int | None = None
    label: bool = False
    label_mode: str = "emboss"
    label_height_mm: float = DEFAULT_HEIGHT_MM
    label_depth_mm: float = DEFAULT_DEPTH_MM
    tolerance_mm: float = DEFAULT_TOLERANCE_MM

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing <= 1.0:
            msg = f"smoothing {self.smoothing:g} is outside 0..1; try 0.5"
            raise MeshError(msg)
        if self.reduction is not None and not 0.0 <= self.reduction < 1.0:
            msg = f"decimation {self.reduction:g} is outside 0..1; 0.8 removes 80% of the triangles"
            raise MeshError(msg)
        if self.iterations < 1 or (self.target_triangles is not None and self.target_triangles < 4):
            msg = "iterations and the triangle budget must be positive"
            raise MeshError(msg)
        if self.label_mode not in LABEL_MODES:
            msg = f"label mode {self.label_mode!r} is unknown; use emboss or engrave"
            raise MeshError(msg)
        if self.label_height_mm <= 0 or self.label_depth_mm <= 0:
            msg = "label height and depth must be positive (defaults 7.5 mm and 3 mm)"
            raise MeshError(msg)
        if self.tolerance_mm <= 0:
            msg = "the QA tolerance must be positive; 0.5 mm is the default"
            raise MeshError(msg)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> MeshSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


PRESETS: dict[str, MeshSettings] = {
    "print": MeshSettings("print", smoothing=0.5, reduction=0.8, label=True),
    "review": MeshSettings("review", smoothing=0.5),
}


def settings_for(
    settings: str | MeshSettings, volume: Volume | None = None, **changes: object
) -> MeshSettings:
    """Named settings (or ``settings`` itself) for ``volume``, with explicit ``changes`` last.

    A preset is lightened on a coarse series (a voxel side over 2 mm, like the bundled
    sample's 6 mm slices): smoothing at most 0.2 and decimation at most 0.5, since smoothing a
    coarse staircase moves the surface further than QA's 0.5 mm tolerance.
    """
    if isinstance(settings, MeshSettings):
        chosen = settings
    elif settings in PRESETS:
        chosen = PRESETS[settings]
        if volume is not None and max(volume.spacing) > COARSE_VOXEL_MM:
            reduction = min(chosen.reduction, 0.5) if chosen.reduction else chosen.reduction
            chosen = replace(chosen, smoothing=min(chosen.smoothing, 0.2), reduction=reduction)
    else:
        msg = f"unknown mesh settings {settings!r}; use one of {', '.join(PRESETS)}"
        raise MeshError(msg)
    unknown = sorted(set(changes) - {f.name for f in fields(MeshSettings)})
    if unknown:
        msg = f"mesh settings have no {', '.join(unknown)}"
        raise MeshError(msg)
    return replace(chosen, **changes) if changes else chosen


@dataclass
class MeshBuild:
    """The printable mesh, the raw segmentation surface it is checked against, and the reports."""

    mesh: trimesh.Trimesh
    reference: trimesh.Trimesh
    cleaning: MaskCleanReport
    smoothing: SmoothingReport
    decimation: DecimationReport | None
    repair: RepairReport
    steps: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "cleaning": self.cleaning.to_dict(),
            "smoothing": self.smoothing.to_dict(),
            "decimation": self.decimation.to_dict() if self.decimation else None,
            "repair": self.repair.to_dict(),
            "steps": self.steps,
        }


def build_mesh(
    mask: np.ndarray | MaskCrop | Extracted,
    volume: Volume,
    *,
    smoothing: float = DEFAULT_SMOOTHING,
    iterations: int = DEFAULT_ITERATIONS,
    reduction: float | None = None,
    target_faces: int | None = None,
    method: str = "flying_edges",
    min_island_voxels: int = 64,
    max_cavity_voxels: int = 64,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> MeshBuild:
    """Mask on ``volume``'s grid -> closed 2-manifold surface in LPS mm, with every report.

    Parameters
    ----------
    mask
        On ``volume``'s grid, or a :class:`MaskCrop` of it (only the geometry of ``volume``
        is read, never its pixels), or its surface :class:`Extracted` already.
    smoothing
        0..1, 3D Slicer's factor (0.5 = passband 0.01); 0 keeps the voxel staircase.
    reduction, target_faces
        Decimation: fraction of triangles removed (0.8 keeps 20 %) or a triangle budget;
        neither means no decimation.
    meter
        Books each stage's time and peak memory (``extract``, ``smooth``, ``decimate``,
        ``repair``), when given.
    """
    progress = ensure(progress)
    if isinstance(mask, Extracted):
        reference, cleaning = mask.reference, mask.cleaning
    else:
        with stage(meter, "extract"):
            reference, cleaning = extract_surface(
                mask,
                volume,
                method=method,
                min_island_voxels=min_island_voxels,
                max_cavity_voxels=max_cavity_voxels,
                progress=progress.sub(0.0, 0.15),
                cancel=cancel,
            )
    decimating = bool(reduction or target_faces)
    # a big surface is decimated by a child process: started now, it loads while we smooth
    child = start_child() if decimating and len(reference.faces) >= CHILD_FROM_TRIANGLES else None
    try:
        mesh, smooth_report, decimation = _smooth_and_decimate(
            reference, (smoothing, iterations), (reduction, target_faces), child,
            meter=meter, progress=progress, cancel=cancel,
        )  # fmt: skip
    finally:
        stop_child(child)
    with stage(meter, "repair"):
        mesh, repair = repair_mesh(mesh, progress=progress.sub(0.7, 1.0), cancel=cancel)
    return MeshBuild(
        mesh=mesh,
        reference=reference,
        cleaning=cleaning,
        smoothing=smooth_report,
        decimation=decimation,
        repair=repair,
        steps={"method": method, "smoothing": smoothing, "iterations": iterations,
               "reduction": reduction, "target_faces": target_faces},
    )  # fmt: skip


def _smooth_and_decimate(
    reference: trimesh.Trimesh,
    smoothing: tuple[float, int],
    decimation: tuple[float | None, int | None],
    child: subprocess.Popen | None,
    *,
    meter: StageMeter | None,
    progress: Progress,
    cancel: CancelToken | None,
) -> tuple[trimesh.Trimesh, SmoothingReport, DecimationReport | None]:
    """Smooth (``factor, iterations``), then decimate (``reduction, target_faces``; by
    ``child`` for a big surface) while the smoothing is measured against ``reference``."""
    with stage(meter, "smooth"):
        mesh, smooth_report = smooth_surface(
            reference,
            smoothing[0],
            iterations=smoothing[1],
            measure=False,
            progress=progress.sub(0.15, 0.35),
            cancel=cancel,
        )
    check_cancel(cancel)
    reduction, target_faces = decimation
    report = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        decimating = (
            pool.submit(decimate_mesh, mesh, reduction=reduction, target_faces=target_faces,
                        repair=False, child=child, cancel=cancel)
            if reduction or target_faces
            else None
        )  # fmt: skip
        # one core for the measure: the decimation child (when there is one) has the other
        with stage(meter, "smooth"), query_workers(1 if child is not None else -1):
            progress.update(0.35, "measuring smoothing deviation")
            # the raw surface keeps its nearest-triangle index: QA measures against it again
            smooth_report = measure_smoothing(smooth_report, mesh, reference, cancel=cancel)
        if decimating is not None:
            with stage(meter, "decimate"):
                progress.update(0.45, "decimating")
                mesh, report = decimating.result()
    return mesh, smooth_report, report


@dataclass
class Part:
    """One built part: the printable mesh, its build reports and its label, if any."""

    name: str
    mesh: trimesh.Trimesh
    build: MeshBuild
    label: LabelInfo | None = None

    def to_dict(self) -> dict:
        return self.build.to_dict() | {"label": self.label.to_dict() if self.label else None}


@dataclass
class Built:
    """Parts built together and the one QA report over all of them."""

    parts: list[Part]
    qa: QAReport
    settings: MeshSettings
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def reference(self) -> trimesh.Trimesh:
        """The raw segmentation surfaces the parts were checked against."""
        return concatenate([p.build.reference for p in self.parts])


def build_part(
    mask: np.ndarray | MaskCrop | Extracted,
    volume: Volume,
    settings: MeshSettings,
    *,
    name: str = "part",
    pseudonym: str | None = None,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Part:
    """One mask -> a printable part, labelled with ``pseudonym`` when the settings ask."""
    progress = ensure(progress)
    built = build_mesh(
        mask,
        volume,
        smoothing=settings.smoothing,
        iterations=settings.iterations,
        reduction=settings.reduction,
        target_faces=settings.target_triangles,
        meter=meter,
        progress=progress.sub(0.0, 0.8),
        cancel=cancel,
    )
    if not settings.label:
        return Part(name, built.mesh, built)
    if pseudonym is None:
        msg = "the label is the case pseudonym; build from a case, or turn the label off"
        raise MeshError(msg)
    check_cancel(cancel)
    progress.update(0.8, "embossing the pseudonym")
    with stage(meter, "label"):
        mesh, label = label_with_pseudonym(
            built.mesh,
            pseudonym,
            mode=settings.label_mode,
            height_mm=settings.label_height_mm,
            depth_mm=settings.label_depth_mm,
        )
    return Part(name, mesh, built, label)


def build_parts(
    masks: Mapping[str, np.ndarray | MaskCrop | Extracted],
    volume: Volume,
    settings: MeshSettings,
    *,
    pseudonym: str | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Built:
    """Each mask (part name -> mask on ``volume``'s grid, or a crop of it) -> a part; QA over
    all of them. ``meter`` books each stage's time and peak memory, when given."""
    progress = ensure(progress)
    parts = make_parts(
        masks, volume, settings, pseudonym=pseudonym, meter=meter,
        progress=progress.sub(0.0, 0.75), cancel=cancel,
    )  # fmt: skip
    return check_built(
        parts, settings, build_volume_mm=build_volume_mm, meter=meter,
        progress=progress.sub(0.75, 1.0), cancel=cancel,
    )  # fmt: skip


def make_parts(
    masks: Mapping[str, np.ndarray | MaskCrop | Extracted],
    volume: Volume,
    settings: MeshSettings,
    *,
    pseudonym: str | None = None,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> list[Part]:
    """:func:`build_parts` without its QA: each mask -> a part (give them to
    :func:`check_built`)."""
    if not masks:
        msg = "nothing to build: choose at least one segment"
        raise MeshError(msg)
    progress = ensure(progress)
    share = 1.0 / len(masks)
    return [
        build_part(
            mask,
            volume,
            settings,
            name=name,
            pseudonym=pseudonym,
            meter=meter,
            progress=progress.sub(n * share, (n + 1) * share),
            cancel=cancel,
        )
        for n, (name, mask) in enumerate(masks.items())
    ]


def check_built(
    parts: list[Part],
    settings: MeshSettings,
    *,
    build_volume_mm: tuple[float, float, float] | None = None,
    meter: StageMeter | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> Built:
    """The parts :func:`make_parts` made, with their one QA report (stage ``qa``)."""
    with stage(meter, "qa"):
        qa = check_parts(
            [p.mesh for p in parts],
            references=[p.build.reference for p in parts],
            labels=[p.label for p in parts if p.label is not None],
            build_volume_mm=build_volume_mm,
            tolerance_mm=settings.tolerance_mm,
            known=_known_repair(parts),
            progress=progress,
            cancel=cancel,
        )
    return Built(parts, qa, settings, dict(meter.stages) if meter else {})


def _known_repair(parts: list[Part]) -> RepairReport | None:
    """Repair's report when QA checks exactly the mesh repair returned (one part, no label
    added since): its topology and count of crossing triangles were measured on that very
    mesh. None when QA must measure them itself."""
    if len(parts) != 1 or parts[0].mesh is not parts[0].build.mesh:
        return None
    return parts[0].build.repair


def check_parts(
    meshes: list[trimesh.Trimesh],
    *,
    references: list[trimesh.Trimesh] | None = None,
    labels: list[LabelInfo] | None = None,
    build_volume_mm: tuple[float, float, float] | None = None,
    tolerance_mm: float = DEFAULT_TOLERANCE_MM,
    known: RepairReport | None = None,
    progress: Progress | None = None,
    cancel: CancelToken | None = None,
) -> QAReport:
    """The QA report of a version: all its parts together (as they go on the build plate).
    ``known``: repair's report when it measured exactly these meshes (its topology and
    self-intersection count are then taken, not measured again)."""
    whole = meshes[0] if len(meshes) == 1 else concatenate(meshes)
    reference = None
    if references:
        reference = references[0] if len(references) == 1 else concatenate(references)
    return qa_report(
        whole,
        reference=reference,
        build_volume_mm=build_volume_mm,
        tolerance_mm=tolerance_mm,
        labels=labels or (),
        crossings=known.self_intersections_left if known else None,
        topo=Topology(**known.topology_after()) if known else None,
        progress=progress,
        cancel=cancel,
    )

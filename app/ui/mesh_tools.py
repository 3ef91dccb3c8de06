"""The Mesh panel's Edit and Export sections.

Every edit works on the panel's current mesh (the one shown / stored), runs in the panel's worker
(progress and cancel), and stores its result as a NEW mesh version with a fresh QA report: an
approval of the old version (bound to its hash) does not carry over. The label is always the
case pseudonym, never free text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtWidgets

from app.progress import CancelToken, Progress, check_cancel, ensure

AXES = {"L-R (x)": (1.0, 0.0, 0.0), "P-A (y)": (0.0, 1.0, 0.0), "S-I (z)": (0.0, 0.0, 1.0)}
FORMATS = ("stl", "3mf", "obj", "ply")


@dataclass
class EditJob:
    """One edit of ``mesh`` (``op`` with ``params``), checked and stored in ``case``."""

    op: str
    mesh: Any
    params: dict
    case: Any = None
    part: str = "mesh"
    source: int | None = None  # the stored version edited, if any
    build_volume_mm: tuple[float, float, float] | None = None
    tolerance_mm: float = 0.5
    others: list = field(default_factory=list)  # meshes for booleans / connector


@dataclass
class EditResult:
    mesh: Any
    qa: Any
    info: dict
    stored: str | None
    op: str


def _label(mesh: Any, pseudonym: str, mode: str, height_mm: float, depth_mm: float):
    """The pseudonym at the first automatic site where it fits."""
    from app.tools.mesh.case_mesh import label_with_pseudonym  # noqa: PLC0415

    return label_with_pseudonym(mesh, pseudonym, mode=mode, height_mm=height_mm, depth_mm=depth_mm)


def apply_edit(job: EditJob, *, progress: Progress, cancel: CancelToken | None) -> tuple:
    """(edited mesh, LabelInfo | None) for ``job``; Qt-free."""
    from app.errors import MeshError  # noqa: PLC0415
    from app.tools.mesh import edit  # noqa: PLC0415

    p, mesh = job.params, job.mesh
    if job.op == "cut":
        front, back = edit.plane_cut(mesh, np.asarray(p["point"]), np.asarray(p["normal"]))
        kept = front if p.get("keep", "front") == "front" else back
        if len(kept.faces) == 0:
            msg = "nothing of the model is on that side of the plane; move the plane or keep the other side"
            raise MeshError(msg)
        return kept, None
    if job.op == "mirror":
        return edit.mirror(mesh, np.asarray(p.get("normal", (1.0, 0.0, 0.0)))), None
    if job.op == "scale":
        return edit.scale(mesh, float(p["percent"]) / 100.0), None
    if job.op == "flat_base":
        return edit.flat_base(mesh, thickness_mm=float(p["thickness_mm"])), None
    if job.op == "hollow":
        holes = []
        if p.get("drain", True):
            v = np.asarray(mesh.vertices)
            holes = [(v[int(np.argmin(v[:, 2]))], np.array([0.0, 0.0, -1.0]))]
        hollowed = edit.hollow(
            mesh, float(p["wall_mm"]), drain_holes=holes,
            hole_diameter_mm=float(p["hole_mm"]), progress=progress, cancel=cancel,
        )  # fmt: skip
        return hollowed, None
    if job.op == "label":
        if job.case is None:
            msg = "the label is the case pseudonym; open a case first"
            raise MeshError(msg)
        return _label(mesh, job.case.pseudonym, p["mode"], p["height_mm"], p["depth_mm"])
    if job.op in ("union", "difference"):
        fn = edit.union if job.op == "union" else edit.difference
        return fn(mesh, *job.others), None
    if job.op == "connector":
        a, b = _two_parts(mesh)
        pa, pb = _closest_points(a, b)
        return edit.connector_rod(a, b, pa, pb, diameter_mm=float(p["diameter_mm"])), None
    msg = f"unknown edit {job.op!r}; pick a tool in the Edit section"
    raise MeshError(msg)


def _two_parts(mesh: Any) -> tuple[Any, Any]:
    """The two largest connected components of ``mesh``."""
    from app.errors import MeshError  # noqa: PLC0415
    from app.tools.mesh.core import concatenate  # noqa: PLC0415

    parts = sorted(mesh.split(only_watertight=False), key=lambda m: -len(m.faces))
    if len(parts) < 2:
        msg = "the model is one piece; a connector joins two separate components"
        raise MeshError(msg)
    rest = concatenate(parts[1:]) if len(parts) > 2 else parts[1]
    return parts[0], rest


def _closest_points(a: Any, b: Any) -> tuple[np.ndarray, np.ndarray]:
    """The pair of vertices of ``a`` and ``b`` closest to each other."""
    from scipy.spatial import cKDTree  # noqa: PLC0415

    tree = cKDTree(np.asarray(a.vertices))
    dist, index = tree.query(np.asarray(b.vertices))
    j = int(np.argmin(dist))
    return np.asarray(a.vertices)[index[j]], np.asarray(b.vertices)[j]


def edit_and_check(
    job: EditJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> EditResult:
    """Apply the edit, run the QA report and store a new version; Qt-free."""
    from app.tools.mesh.qa import qa_report  # noqa: PLC0415

    progress = ensure(progress)
    progress.update(0.0, f"{job.op}…")
    mesh, label = apply_edit(job, progress=progress.sub(0.0, 0.7), cancel=cancel)
    check_cancel(cancel)
    qa = qa_report(
        mesh,
        build_volume_mm=job.build_volume_mm,
        tolerance_mm=job.tolerance_mm,
        label=label,
        progress=progress.sub(0.7, 0.97),
        cancel=cancel,
    )
    check_cancel(cancel)
    params = {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
              for k, v in job.params.items()}  # fmt: skip
    info = {
        "part": job.part,
        "edit": {"op": job.op, "from_version": job.source, "params": params},
        "label": label.to_dict() if label is not None else None,
    }
    stored = None
    if job.case is not None:
        from app.tools.mesh.store import save_mesh_version  # noqa: PLC0415

        stored = save_mesh_version(job.case, mesh, qa, info)
    progress.update(1.0, f"{job.op} done")
    return EditResult(mesh, qa, info, stored, job.op)


def _spin(parent, low, high, value, suffix, *, step=1.0, decimals=1) -> QtWidgets.QDoubleSpinBox:
    box = QtWidgets.QDoubleSpinBox(parent)
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


class MeshTools(QtWidgets.QWidget):
    """Edit, measure and export the Mesh panel's current mesh."""

    def __init__(self, panel: Any) -> None:
        super().__init__(panel)
        self.panel = panel
        self._build()
        self._lay_out()
        panel.meshChanged.connect(self.refresh)
        self.refresh()

    # -- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        self.cut_axis = QtWidgets.QComboBox(self)
        self.cut_axis.addItems(list(AXES))
        self.cut_axis.setCurrentText("S-I (z)")
        self.cut_source = QtWidgets.QComboBox(self)
        self.cut_source.addItems(["through the crosshair", "the 3D clip plane"])
        self.cut_keep = QtWidgets.QComboBox(self)
        self.cut_keep.addItems(["front", "back"])
        self.cut_keep.setToolTip("front: the side the axis points to (L, P or S)")
        self.cut_button = QtWidgets.QPushButton("Cut", self)
        self.mirror_button = QtWidgets.QPushButton("Mirror L-R", self)
        self.scale_percent = _spin(self, 10.0, 400.0, 100.0, " %", step=5.0)
        self.scale_button = QtWidgets.QPushButton("Scale", self)
        self.wall = _spin(self, 0.5, 20.0, 2.0, " mm wall", step=0.5)
        self.hole = _spin(self, 0.0, 20.0, 4.0, " mm hole", step=0.5)
        self.hole.setToolTip("drain hole at the lowest point (0 = no hole)")
        self.hollow_button = QtWidgets.QPushButton("Hollow", self)
        self.base_thickness = _spin(self, 0.5, 20.0, 3.0, " mm", step=0.5)
        self.base_button = QtWidgets.QPushButton("Flat base", self)
        self.label_mode = QtWidgets.QComboBox(self)
        self.label_mode.addItems(["emboss", "engrave"])
        self.label_height = _spin(self, 3.0, 30.0, 7.5, " mm high", step=0.5)
        self.label_depth = _spin(self, 0.5, 10.0, 3.0, " mm deep", step=0.5)
        self.label_button = QtWidgets.QPushButton("Label", self)
        self.label_button.setToolTip("emboss/engrave the case pseudonym at an automatic site")
        self.bool_op = QtWidgets.QComboBox(self)
        self.bool_op.addItems(["union", "difference"])
        self.bool_with = QtWidgets.QComboBox(self)
        self.bool_with.setToolTip("the other stored mesh version")
        self.bool_button = QtWidgets.QPushButton("Apply", self)
        self.rod = _spin(self, 1.0, 20.0, 5.0, " mm rod", step=0.5)
        self.rod_button = QtWidgets.QPushButton("Connect parts", self)
        self.rod_button.setToolTip("a rod between the two largest components, at their closest")
        self.point_a_button = QtWidgets.QPushButton("A = crosshair", self)
        self.point_b_button = QtWidgets.QPushButton("B = crosshair", self)
        self.distance = QtWidgets.QLabel("pick two points", self)
        self.points: list[np.ndarray | None] = [None, None]
        self.measurements = QtWidgets.QLabel(self)
        self.measurements.setObjectName("hint")
        self.measurements.setWordWrap(True)
        self.export_format = QtWidgets.QComboBox(self)
        self.export_format.addItems([f.upper() for f in FORMATS])
        self.export_button = QtWidgets.QPushButton("Export…", self)
        self.edit_buttons = [
            self.cut_button, self.mirror_button, self.scale_button, self.hollow_button,
            self.base_button, self.label_button, self.bool_button, self.rod_button,
        ]  # fmt: skip

    def _lay_out(self) -> None:
        def row(*widgets: QtWidgets.QWidget) -> QtWidgets.QHBoxLayout:
            line = QtWidgets.QHBoxLayout()
            for w in widgets:
                line.addWidget(w, 0 if isinstance(w, QtWidgets.QPushButton) else 1)
            return line

        edit = QtWidgets.QGroupBox("Edit", self)
        form = QtWidgets.QFormLayout(edit)
        form.addRow("Plane cut", row(self.cut_axis, self.cut_source))
        form.addRow("", row(self.cut_keep, self.cut_button))
        form.addRow(
            "Mirror / scale", row(self.mirror_button, self.scale_percent, self.scale_button)
        )
        form.addRow("Hollow", row(self.wall, self.hole, self.hollow_button))
        form.addRow("Flat base", row(self.base_thickness, self.base_button))
        form.addRow("Label", row(self.label_mode, self.label_height, self.label_depth))
        form.addRow("", row(self.label_button))
        form.addRow("Boolean", row(self.bool_op, self.bool_with, self.bool_button))
        form.addRow("Connector", row(self.rod, self.rod_button))
        form.addRow("Measure", self.measurements)
        form.addRow("Distance", row(self.point_a_button, self.point_b_button, self.distance))
        export = QtWidgets.QGroupBox("Export", self)
        export.setLayout(row(self.export_format, self.export_button))
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(edit)
        layout.addWidget(export)

        self.cut_button.clicked.connect(self.cut)
        self.mirror_button.clicked.connect(lambda: self.run("mirror", normal=(1.0, 0.0, 0.0)))
        self.scale_button.clicked.connect(
            lambda: self.run("scale", percent=self.scale_percent.value())
        )
        self.hollow_button.clicked.connect(
            lambda: self.run(
                "hollow",
                wall_mm=self.wall.value(),
                hole_mm=self.hole.value() or 4.0,
                drain=self.hole.value() > 0,
            )
        )
        self.base_button.clicked.connect(
            lambda: self.run("flat_base", thickness_mm=self.base_thickness.value())
        )
        self.label_button.clicked.connect(
            lambda: self.run(
                "label",
                mode=self.label_mode.currentText(),
                height_mm=self.label_height.value(),
                depth_mm=self.label_depth.value(),
            )
        )
        self.bool_button.clicked.connect(self.boolean)
        self.rod_button.clicked.connect(lambda: self.run("connector", diameter_mm=self.rod.value()))
        self.export_button.clicked.connect(self._export_dialog)
        self.point_a_button.clicked.connect(lambda: self.pick(0))
        self.point_b_button.clicked.connect(lambda: self.pick(1))

    # -- state --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Enable the tools for the current mesh; show its measurements and the other versions."""
        mesh = self.panel.current_mesh
        idle = not self.panel.worker.busy
        for button in self.edit_buttons:
            button.setEnabled(mesh is not None and idle)
        self.label_button.setEnabled(mesh is not None and idle and self.panel.case is not None)
        self.export_button.setEnabled(mesh is not None and self.panel.case is not None)
        self.bool_with.clear()
        if self.panel.case is not None:
            from app.tools.mesh.store import mesh_versions  # noqa: PLC0415

            current = self.panel.current_version
            self.bool_with.addItems(
                [f"v{n}" for n in reversed(mesh_versions(self.panel.case)) if n != current]
            )
        self.bool_button.setEnabled(self.bool_button.isEnabled() and self.bool_with.count() > 0)
        self.measurements.setText(self.measure_text(mesh) if mesh is not None else "no mesh")

    @staticmethod
    def measure_text(mesh: Any) -> str:
        from app.tools.mesh.edit import measure  # noqa: PLC0415

        m = measure(mesh)
        lo = ", ".join(f"{v:.1f}" for v in m.bbox_min)
        hi = ", ".join(f"{v:.1f}" for v in m.bbox_max)
        size = " × ".join(f"{v:.1f}" for v in m.size_mm)
        return (
            f"volume {m.volume_mm3 / 1000:.2f} ml, area {m.area_mm2 / 100:.1f} cm², "
            f"box {size} mm from ({lo}) to ({hi})"
        )

    def pick(self, which: int) -> None:
        """Take the crosshair as point A (0) or B (1); show the distance once both are set."""
        from app.tools.mesh.edit import distance  # noqa: PLC0415

        cursor = getattr(getattr(self.panel.segments, "state", None), "cursor", None)
        if cursor is None:
            self.distance.setText("no crosshair: load a volume")
            return
        self.points[which] = np.asarray(cursor, dtype=np.float64).copy()
        a, b = self.points
        if a is None or b is None:
            self.distance.setText("now the other point")
            return
        self.distance.setText(f"{distance(a, b):.1f} mm")

    # -- edits --------------------------------------------------------------------------------
    def cut_plane(self) -> tuple[np.ndarray, np.ndarray]:
        """(point, normal) of the chosen cut plane in LPS mm."""
        if self.cut_source.currentIndex() == 1:
            plane = self.panel.view3d.clip_plane()
            if plane is not None:
                return plane
        normal = np.array(AXES[self.cut_axis.currentText()])
        state = getattr(self.panel.segments, "state", None)
        cursor = getattr(state, "cursor", None)
        if cursor is None:
            cursor = self.panel.current_mesh.bounds.mean(axis=0)
        return np.asarray(cursor, dtype=np.float64), normal

    def cut(self) -> None:
        if self.cut_source.currentIndex() == 1 and self.panel.view3d.clip_plane() is None:
            self.panel.message.setText(
                "No clip plane in the 3D view; set one or cut at the crosshair."
            )
            return
        point, normal = self.cut_plane()
        self.run("cut", point=point, normal=normal, keep=self.cut_keep.currentText())

    def boolean(self) -> None:
        from app.tools.mesh.store import load_mesh_version  # noqa: PLC0415

        if self.panel.case is None or not self.bool_with.currentText():
            return
        number = int(self.bool_with.currentText()[1:])
        other, _qa = load_mesh_version(self.panel.case, number)
        self.run(self.bool_op.currentText(), others=[other], **{"with_version": number})

    def run(self, op: str, *, others: list | None = None, **params: Any) -> None:
        """Start ``op`` on the current mesh in the panel's worker."""
        panel = self.panel
        if panel.current_mesh is None:
            panel.message.setText("Build or show a mesh first.")
            return
        job = EditJob(
            op=op,
            mesh=panel.current_mesh,
            params=params,
            case=panel.case,
            part=panel.current_part_name or "mesh",
            source=panel.current_version,
            build_volume_mm=panel.printer_volume,
            tolerance_mm=panel.tolerance.value(),
            others=others or [],
        )
        panel.message.setText(f"{op}…")
        panel.progress.setValue(0)
        panel.cancel_button.setEnabled(True)
        panel.build_button.setEnabled(False)
        for button in self.edit_buttons:
            button.setEnabled(False)
        panel.worker.start(edit_and_check, job, name=f"mesh {op}")

    # -- export -------------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export the mesh to")
        if folder:
            self.export(Path(folder))

    def export(self, folder: Path) -> Path | None:
        """Write the current mesh as ``<pseudonym>_<part>.<ext>`` in ``folder`` (clean)."""
        from app.security.strip import export_name  # noqa: PLC0415
        from app.tools.mesh.export import export_mesh  # noqa: PLC0415
        from app.ui.worker import error_message  # noqa: PLC0415

        panel = self.panel
        if panel.current_mesh is None or panel.case is None:
            panel.message.setText("Open a case and build a mesh before exporting.")
            return None
        fmt = self.export_format.currentText().lower()
        try:
            name = export_name(panel.case.pseudonym, panel.current_part_name or "mesh", fmt)
            path = export_mesh(panel.current_mesh, Path(folder) / name, fmt)
        except Exception as exc:  # one line for the user, whatever failed
            panel.message.setText(error_message(exc, "export"))
            return None
        panel.message.setText(f"Exported {path.name}.")
        return path

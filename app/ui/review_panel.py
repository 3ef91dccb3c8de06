"""The Review panel, for the surgeon: the mesh version shown in the Mesh panel drawn on the
slices, stepping through the scan every few millimetres, two versions compared, and comments
pinned to points of the model.

- Mesh on the scan: the version's cross-section is a contour on the three slice views, in its
  segment's colour or coloured by its distance to the segmentation surface. Sectioning (and
  the distance map) run in the worker; the views then cut one slice at a time
  (:mod:`app.viewers.contours`).
- Step through: Previous / Next move the chosen view by the step in mm (keys ``[`` and ``]``),
  with the segmentation drawn as an outline so image, segmentation and mesh show together.
- Compare: :func:`app.workflow.compare.compare_meshes` in the worker; the two versions as two
  contours (older dashed, newer solid), in 3D the older translucent and the newer coloured by
  its distance to it, and the edits in between (operation, parameters, who, when).
- Comments: :mod:`app.workflow.comments` (list, add at the crosshair, resolve); double-click
  one to move the crosshair to its point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from app.imaging.volume import Volume
from app.progress import CancelToken, Progress, check_cancel, ensure
from app.tools.mesh.meshio import part_name
from app.ui.mesh_panel import MESH_NAME as MESH_SHOWN
from app.ui.worker import Worker, error_message
from app.viewers.contours import ContourLayer, distance_to_mask
from app.viewers.geometry import ORIENTATIONS, SliceGeometry
from app.viewers.state import ViewerState
from app.viewers.view3d import display_surface
from app.workflow import comments
from app.workflow.actor import Actor

DISTANCE_MM = 1.0  # the distance colours run from -this (inside) to +this (outside)
OLDER_COLOUR = (80, 220, 255)
NEWER_COLOUR = (255, 90, 200)
DEFAULT_COLOUR = (255, 210, 80)
COMPARE_OLDER, COMPARE_NEWER = "compare: older", "compare: newer"
COMPARE_SCALARS = "distance to older (mm)"


@dataclass
class ContourJob:
    """Section one mesh for the slice views; with ``seg`` and ``segment``, colour it by its
    distance to that segment's surface."""

    volume: Volume
    mesh: Any
    name: str
    colour: tuple[int, int, int]
    seg: Any = None
    segment: str = ""


def contour_job(
    job: ContourJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> ContourLayer:
    """The mesh's contour layer; Qt-free."""
    progress = ensure(progress)
    values = value_range = None
    if job.seg is not None:
        progress.update(0.1, "measuring the distance to the segmentation")
        with job.seg.lock:
            mask = job.seg.mask(job.segment)
        values = distance_to_mask(job.volume, mask, job.mesh.vertices)
        value_range = (-DISTANCE_MM, DISTANCE_MM)
    check_cancel(cancel)
    progress.update(0.6, "sectioning the mesh for the slice views")
    return ContourLayer.build(
        job.name, job.name, job.colour, job.volume,
        vertices=np.asarray(job.mesh.vertices), faces=np.asarray(job.mesh.faces),
        values=values, value_range=value_range,
    )  # fmt: skip


@dataclass
class CompareJob:
    actor: Actor
    case: Any
    older: int
    newer: int
    volume: Volume


@dataclass
class CompareResult:
    report: dict
    layers: list[ContourLayer]
    surfaces: tuple[Any, Any]  # older, newer (with the distance per vertex)


def compare_job(
    job: CompareJob, *, progress: Progress | None = None, cancel: CancelToken | None = None
) -> CompareResult:
    """workflow.compare.compare_meshes, then both versions sectioned and made displayable."""
    from app.tools.mesh.core import concatenate  # noqa: PLC0415 (heavy: on first use)
    from app.workflow import compare  # noqa: PLC0415

    progress = ensure(progress)
    progress.update(0.05, f"comparing v{job.older} with v{job.newer}")
    found = compare.compare_meshes(job.actor, job.case, job.older, job.newer)
    check_cancel(cancel)
    older, newer = concatenate(list(found.older.values())), concatenate(list(found.newer.values()))
    distances = np.concatenate(
        [found.distances.get(n, np.zeros(len(m.vertices))) for n, m in found.newer.items()]
    )
    progress.update(0.5, "sectioning both versions for the slice views")
    layers = []
    for number, mesh, colour, style in (  # the dashed older on top: the newer shows between
        (job.newer, newer, NEWER_COLOUR, "solid"),
        (job.older, older, OLDER_COLOUR, "dash"),
    ):
        check_cancel(cancel)
        layers.append(
            ContourLayer.build(
                f"v{number}",
                f"v{number}",
                colour,
                job.volume,
                vertices=np.asarray(mesh.vertices),
                faces=np.asarray(mesh.faces),
                style=style,
            )
        )
    progress.update(0.85, "preparing the 3D display")
    surfaces = (
        display_surface(older),
        display_surface(newer, {COMPARE_SCALARS: distances.astype(np.float32)}),
    )
    return CompareResult(found.report, layers, surfaces)


class ReviewPanel(QtWidgets.QWidget):
    """Mesh contours on the slices, stepping, version compare and comments for one case."""

    contoursShown = QtCore.Signal()
    compared = QtCore.Signal(object)  # CompareResult
    commentsChanged = QtCore.Signal()

    def __init__(
        self,
        state: ViewerState,
        mesh_panel: Any,
        view3d: Any,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("reviewPanel")
        self.state = state
        self.mesh_panel = mesh_panel
        self.view3d = view3d
        self.actor: Actor | None = None
        self.case: Any = None
        self.layer: ContourLayer | None = None  # the shown version's contour
        self.comparison: CompareResult | None = None
        self._before_compare: str | None = None  # the 3D view's volume preset, while comparing
        self.notes: list[dict] = []
        self.moved: list[tuple[str, dict]] = []  # (part, region) of the last compare
        self.worker = Worker(self)
        self.worker.error.connect(self._say)
        self.worker.cancelled.connect(lambda: self._say("Cancelled."))
        self._build()
        mesh_panel.meshChanged.connect(self.refresh)
        mesh_panel.versions.model().rowsInserted.connect(lambda *_: self._sync_versions())
        state.volumeChanged.connect(self._forget)

    # -- construction -------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._build_contours())
        layout.addWidget(self._build_steps())
        layout.addWidget(self._build_compare())
        layout.addWidget(self._build_comments(), 1)
        self.message = QtWidgets.QLabel(self)
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    def _build_contours(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Mesh on the slices", self)
        self.version_label = QtWidgets.QLabel("No mesh version shown.", box)
        self.show_contours = QtWidgets.QCheckBox("Draw the mesh version on the slices", box)
        self.show_contours.setChecked(True)
        self.by_distance = QtWidgets.QCheckBox("Colour by distance to the segmentation", box)
        self.by_distance.setToolTip(
            f"blue: inside the segment, white: on its surface, red: outside (±{DISTANCE_MM} mm)"
        )
        form = QtWidgets.QVBoxLayout(box)
        for widget in (self.version_label, self.show_contours, self.by_distance):
            form.addWidget(widget)
        self.show_contours.toggled.connect(lambda _on: self._apply_layers())
        self.by_distance.toggled.connect(lambda _on: self.refresh())
        return box

    def _build_steps(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Step through the scan", self)
        self.orientation = QtWidgets.QComboBox(box)
        self.orientation.addItems(list(ORIENTATIONS))
        self.step_mm = QtWidgets.QDoubleSpinBox(box)
        self.step_mm.setRange(0.5, 50.0)
        self.step_mm.setValue(5.0)
        self.step_mm.setSuffix(" mm")
        self.previous_button = QtWidgets.QPushButton("◀ Previous", box)
        self.next_button = QtWidgets.QPushButton("Next ▶", box)
        self.previous_button.setToolTip("the previous slice at this step ([)")
        self.next_button.setToolTip("the next slice at this step (])")
        self.outline = QtWidgets.QCheckBox("Segmentation as an outline", box)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.orientation)
        row.addWidget(self.step_mm)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button)
        layout = QtWidgets.QVBoxLayout(box)
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addWidget(self.outline)
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(+1))
        self.outline.toggled.connect(lambda on: self.state.set_overlay_style(outline=on))
        context = QtCore.Qt.ShortcutContext.WindowShortcut
        for key, direction in (("[", -1), ("]", +1)):
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self, context=context)
            shortcut.activated.connect(lambda d=direction: self.step(d))
        return box

    def _build_compare(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Compare versions", self)
        self.older = QtWidgets.QComboBox(box)
        self.newer = QtWidgets.QComboBox(box)
        self.compare_button = QtWidgets.QPushButton("Compare", box)
        self.clear_button = QtWidgets.QPushButton("Clear", box)
        self.compare_summary = QtWidgets.QLabel(box)
        self.compare_summary.setWordWrap(True)
        self.history = QtWidgets.QTableWidget(0, 4, box)
        self.history.setHorizontalHeaderLabels(["Version", "Operation", "Parameters", "By, when"])
        self.history.verticalHeader().setVisible(False)
        self.history.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.horizontalHeader().setStretchLastSection(True)
        self.regions = QtWidgets.QTableWidget(0, 3, box)
        self.regions.setHorizontalHeaderLabels(["Moved region", "Max", "Mean"])
        self.regions.verticalHeader().setVisible(False)
        self.regions.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.regions.horizontalHeader().setStretchLastSection(True)
        self.regions.setToolTip("double-click a region to go to its centre")
        row = QtWidgets.QHBoxLayout()
        for label, widget in (("from", self.older), ("to", self.newer)):
            row.addWidget(QtWidgets.QLabel(label, box))
            row.addWidget(widget, 1)
        row.addWidget(self.compare_button)
        row.addWidget(self.clear_button)
        layout = QtWidgets.QVBoxLayout(box)
        layout.addLayout(row)
        layout.addWidget(self.compare_summary)
        self.compare_tabs = QtWidgets.QTabWidget(box)
        self.compare_tabs.addTab(self.history, "Edits between")
        self.compare_tabs.addTab(self.regions, "Moved regions")
        self.compare_tabs.setMaximumHeight(160)
        layout.addWidget(self.compare_tabs)
        self.compare_button.clicked.connect(self.compare)
        self.clear_button.clicked.connect(self.clear_compare)
        self.regions.cellDoubleClicked.connect(lambda row, _col: self.go_to_region(row))
        return box

    def _build_comments(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Comments on this version", self)
        self.comment_table = QtWidgets.QTableWidget(0, 4, box)
        self.comment_table.setHorizontalHeaderLabels(["Comment", "By", "When", "Resolved"])
        self.comment_table.verticalHeader().setVisible(False)
        self.comment_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.comment_table.setSelectionBehavior(
            QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.comment_table.horizontalHeader().setStretchLastSection(True)
        self.comment_table.setToolTip("double-click a comment to go to its point")
        self.comment_text = QtWidgets.QLineEdit(box)
        self.comment_text.setPlaceholderText("A remark pinned at the crosshair")
        self.add_button = QtWidgets.QPushButton("Add comment", box)
        self.resolve_button = QtWidgets.QPushButton("Resolve", box)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.comment_text, 1)
        row.addWidget(self.add_button)
        layout = QtWidgets.QVBoxLayout(box)
        layout.addWidget(self.comment_table, 1)
        layout.addLayout(row)
        layout.addWidget(self.resolve_button)
        self.add_button.clicked.connect(self.add_comment)
        self.comment_text.returnPressed.connect(self.add_comment)
        self.resolve_button.clicked.connect(self.resolve_selected)
        self.comment_table.cellDoubleClicked.connect(lambda row, _col: self.go_to_comment(row))
        return box

    # -- inputs -------------------------------------------------------------------------------
    def set_actor(self, actor: Actor) -> None:
        self.actor = actor

    def set_case(self, case: Any) -> None:
        self.case = case
        self.clear_compare()
        self._sync_versions()
        self.refresh()

    @property
    def version(self) -> int | None:
        """The stored version the Mesh panel shows (comments and compare act on it)."""
        return self.mesh_panel.current_version

    def _sync_versions(self) -> None:
        """The versions to compare; a pick still listed stays, else the two newest."""
        numbers = [v.number for v in self.mesh_panel.stored]
        for combo, pick in ((self.older, -2), (self.newer, -1)):
            kept = combo.currentData()
            combo.clear()
            for number in numbers:
                combo.addItem(f"v{number}", number)
            if kept in numbers:
                combo.setCurrentIndex(numbers.index(kept))
            elif numbers:
                combo.setCurrentIndex(max(len(numbers) + pick, 0))
        self.compare_button.setEnabled(len(numbers) >= 2)

    def _forget(self) -> None:
        """A new volume: the old sections no longer fit its grid."""
        self.layer = None
        self.comparison = None

    # -- mesh on the slices -------------------------------------------------------------------
    def refresh(self) -> None:
        """Section the Mesh panel's current mesh (in the worker) and list its comments."""
        self._sync_versions()
        self._list_comments()
        mesh, volume = self.mesh_panel.current_mesh, self.state.volume
        if mesh is None or volume is None:
            self.layer = None
            self.version_label.setText("No mesh version shown.")
            self._apply_layers()
            return
        name = self.mesh_panel.current_part or "mesh"
        segment = self._segment_of(self.mesh_panel.current_part_name)
        job = ContourJob(volume, mesh, name, self._colour_of(segment))
        if self.by_distance.isChecked() and segment is not None:
            job.seg, job.segment = self.mesh_panel.segments.seg, segment.name
        self.version_label.setText(f"Sectioning {name}…")
        self.worker.start(contour_job, job, name=f"sectioning {name}", on_done=self._sectioned)

    def _segment_of(self, part: str) -> Any:
        seg = self.mesh_panel.segments.seg
        if seg is None:
            return None
        return next((s for s in seg.segments if part_name(s.name) == part), None)

    @staticmethod
    def _colour_of(segment: Any) -> tuple[int, int, int]:
        if segment is None:
            return DEFAULT_COLOUR
        return tuple(round(float(c) * 255) for c in segment.color)

    def _sectioned(self, layer: ContourLayer) -> None:
        self.layer = layer
        triangles = len(next(iter(layer.sections.values())).faces)
        self.version_label.setText(f"{layer.label}: {triangles} triangles on the slices")
        self._apply_layers()
        self.contoursShown.emit()

    def _apply_layers(self) -> None:
        if self.comparison is not None:
            layers = self.comparison.layers
        elif self.layer is not None and self.show_contours.isChecked():
            layers = [self.layer]
        else:
            layers = []
        self.state.set_mesh_contours(layers)

    # -- stepping -----------------------------------------------------------------------------
    def step(self, direction: int) -> None:
        """Move the chosen view ``direction`` steps of :attr:`step_mm` (at least one slice)."""
        volume = self.state.volume
        if volume is None:
            return
        geometry = SliceGeometry.for_volume(volume, self.orientation.currentText())
        slices = max(1, round(self.step_mm.value() / volume.spacing[geometry.n_axis]))
        ijk = geometry.lps_to_index(self.state.cursor)
        current = geometry.slice_index_of(self.state.cursor)
        ijk[geometry.n_axis] = int(np.clip(current + direction * slices, 0, geometry.n_slices - 1))
        self.state.set_cursor(geometry.index_to_lps(ijk))

    # -- compare ------------------------------------------------------------------------------
    def compare(self) -> None:
        older, newer = self.older.currentData(), self.newer.currentData()
        if self.case is None or self.actor is None or self.state.volume is None:
            self._say("Open a case with two mesh versions first.")
            return
        if older is None or newer is None or older == newer:
            self._say("Pick two different versions to compare.")
            return
        job = CompareJob(self.actor, self.case, int(older), int(newer), self.state.volume)
        self._say(f"Comparing v{older} with v{newer}…")
        self.worker.start(compare_job, job, name="comparing versions", on_done=self._compared)

    def _compared(self, result: CompareResult) -> None:
        self.comparison = result
        self._apply_layers()
        self._show_compare_3d(*result.surfaces)
        report = result.report
        parts = "; ".join(
            f"{name}: max {p['max_mm']:.2f} mm, mean {p['mean_mm']:.2f} mm, "
            f"{len(p['regions'])} region(s) moved"
            for name, p in report["parts"].items()
        )
        extra = "" if report["related"] else " (not one lineage: all edits up to the newer)"
        self.compare_summary.setText(
            f"v{report['from']} (dashed) → v{report['to']} (solid): {parts or 'no common part'}"
            f"{extra}"
        )
        self._fill_history(report["history"])
        self._fill_regions(report["parts"])
        self._say("")
        self.compared.emit(result)

    def _show_compare_3d(self, older: Any, newer: Any) -> None:
        """The older version translucent, the newer coloured by its distance to it; the
        volume rendering and the shown version step aside until the compare is cleared."""
        if self._before_compare is None:
            self._before_compare = self.view3d.preset
        self.view3d.set_preset("off", render=False)
        if MESH_SHOWN in self.view3d.mesh_names():
            self.view3d.set_mesh_style(MESH_SHOWN, visible=False)
        self.view3d.add_mesh(COMPARE_OLDER, older, color=(0.3, 0.85, 1.0), opacity=0.35)
        self.view3d.add_mesh(COMPARE_NEWER, newer, scalars=COMPARE_SCALARS)
        self.view3d.frame_mesh(COMPARE_NEWER)

    def _fill_history(self, steps: list[dict]) -> None:
        self.history.setRowCount(len(steps))
        for row, step in enumerate(steps):
            params = ", ".join(f"{k}={v}" for k, v in (step.get("params") or {}).items())
            cells = [
                f"v{step['version']}",
                str(step.get("operation") or ""),
                params,
                f"{step.get('author') or '?'}, {step.get('time_utc') or '?'}",
            ]
            for column, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                self.history.setItem(row, column, item)
        self.history.resizeColumnsToContents()

    def _fill_regions(self, parts: dict) -> None:
        """The moved regions of every part, largest first: the places to look at."""
        self.moved = [(name, region) for name, part in parts.items() for region in part["regions"]]
        self.regions.setRowCount(len(self.moved))
        for row, (name, region) in enumerate(self.moved):
            cells = [
                f"{name}: {region['vertices']} vertices",
                f"{region['max_mm']:.2f} mm",
                f"{region['mean_mm']:.2f} mm",
            ]
            for column, text in enumerate(cells):
                self.regions.setItem(row, column, QtWidgets.QTableWidgetItem(text))
        self.regions.resizeColumnsToContents()

    def go_to_region(self, row: int) -> None:
        """Move the crosshair (all views) to a moved region's centre."""
        if 0 <= row < len(self.moved):
            self.state.set_cursor(np.array(self.moved[row][1]["centre_lps_mm"], dtype=float))

    def clear_compare(self) -> None:
        if self.comparison is not None:
            for name in (COMPARE_OLDER, COMPARE_NEWER):
                if name in self.view3d.mesh_names():
                    self.view3d.remove_mesh(name)
            if MESH_SHOWN in self.view3d.mesh_names():
                self.view3d.set_mesh_style(MESH_SHOWN, visible=True)
        if self._before_compare is not None:
            self.view3d.set_preset(self._before_compare)
            self._before_compare = None
        self.comparison = None
        self.compare_summary.clear()
        self.history.setRowCount(0)
        self.moved = []
        self.regions.setRowCount(0)
        self._apply_layers()

    # -- comments -----------------------------------------------------------------------------
    def _list_comments(self) -> None:
        self.notes = []
        version = self.version
        if self.case is not None and self.actor is not None and version is not None:
            try:
                self.notes = comments.listed(self.actor, self.case, version)
            except Exception as exc:  # one line for the user, whatever failed
                self._say(error_message(exc, "listing the comments"))
        self.comment_table.setRowCount(len(self.notes))
        for row, note in enumerate(self.notes):
            done = note.get("resolved") or {}
            x, y, z = note["at_lps_mm"]
            cells = [
                f"#{row + 1} {note['text']}",
                note.get("author") or "?",
                note.get("time_utc") or "",
                f"{done.get('by')}, {done.get('time_utc')}" if done else "",
            ]
            for column, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(f"at ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS")
                self.comment_table.setItem(row, column, item)
        self.comment_table.resizeColumnsToContents()
        self.state.set_markers(
            [
                (n["at_lps_mm"], f"#{row + 1}")
                for row, n in enumerate(self.notes)
                if not n.get("resolved")
            ]
        )
        ready = version is not None and self.actor is not None
        self.add_button.setEnabled(ready)
        self.resolve_button.setEnabled(ready and bool(self.notes))
        self.commentsChanged.emit()

    def add_comment(self) -> None:
        """Pin the typed text to the crosshair point of the shown version."""
        text = self.comment_text.text().strip()
        if self.case is None or self.actor is None or self.version is None:
            self._say("Show a stored mesh version of a case first.")
            return
        try:
            comments.add(self.actor, self.case, self.version, at=self.state.cursor, text=text)
        except Exception as exc:  # one line for the user, whatever failed
            self._say(error_message(exc, "adding the comment"))
            return
        self.comment_text.clear()
        self._list_comments()
        self._say("Comment added.")

    def resolve_selected(self) -> None:
        row = self.comment_table.currentRow()
        if not 0 <= row < len(self.notes) or self.case is None or self.actor is None:
            self._say("Select a comment to resolve.")
            return
        try:
            comments.resolve(self.actor, self.case, self.notes[row]["id"])
        except Exception as exc:  # one line for the user, whatever failed
            self._say(error_message(exc, "resolving the comment"))
            return
        self._list_comments()
        self._say("Comment resolved.")

    def go_to_comment(self, row: int) -> None:
        """Move the crosshair (all views) to the comment's point."""
        if 0 <= row < len(self.notes):
            self.state.set_cursor(np.array(self.notes[row]["at_lps_mm"], dtype=float))

    def _say(self, text: str) -> None:
        self.message.setText(text)

"""The main window: case browser, the four-up views, docked stage panels, menus and shortcuts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from app import __version__
from app.case import Case
from app.errors import MedPrintError
from app.imaging.volume import Volume
from app.settings import Paths, Settings, resolve_paths
from app.ui.case_browser import CaseBrowser
from app.ui.deferred import mesh_stack, when_exposed
from app.ui.import_dialog import ImportDialog
from app.ui.mesh_panel import MeshPanel
from app.ui.messages import show_error, show_info
from app.ui.package_panel import PackagePanel
from app.ui.panels import AuditPanel, DisplayPanel
from app.ui.print_job import ACTIVE_JOBS
from app.ui.print_panel import PrintPanel
from app.ui.progress_bar import ProgressBar
from app.ui.record_panel import RecordPanel
from app.ui.review_panel import ReviewPanel
from app.ui.segment_panel import SegmentPanel
from app.ui.settings_dialog import DATA_DIR_KEY, SettingsDialog, qt_settings
from app.ui.worker import Worker
from app.viewers.layout import LAYOUTS, ViewArea
from app.viewers.windowing import PRESET_NAMES
from app.workflow import intake, users
from app.workflow.actor import Actor

log = logging.getLogger(__name__)

MAX_RECENT = 10

SHORTCUTS_HELP = """
<table>
<tr><td><b>Left click / drag</b></td><td>move the crosshair (all views follow)</td></tr>
<tr><td><b>Right drag</b></td><td>window (left-right) and level (up-down)</td></tr>
<tr><td><b>Middle drag, Shift+left drag</b></td><td>pan</td></tr>
<tr><td><b>Wheel, Up/Down, PgUp/PgDn</b></td><td>previous / next slice (PgUp/PgDn: 10)</td></tr>
<tr><td><b>Ctrl+wheel, +/-</b></td><td>zoom; R resets the view</td></tr>
<tr><td><b>Ctrl+1 … Ctrl+5</b></td><td>four-up, axial, coronal, sagittal, 3D layout</td></tr>
<tr><td><b>F11</b></td><td>full screen</td></tr>
<tr><td><b>M / A / N</b></td><td>ruler, angle, navigate tool</td></tr>
<tr><td><b>Alt+1 … Alt+5</b></td><td>bone, soft tissue, lung, brain, auto window</td></tr>
<tr><td><b>Double-click a slice view</b></td><td>that view alone, and back to four-up</td></tr>
<tr><td><b>Ctrl+Shift+R</b></td><td>review mode</td></tr>
<tr><td><b>[ / ]</b></td><td>review: previous / next step through the scan</td></tr>
</table>
"""


class PreviewHandover(QtCore.QObject):
    """Brings a case's preview from the loading thread to the window (a queued signal)."""

    ready = QtCore.Signal(str, object)


class JobBar(QtWidgets.QWidget):
    """Progress bar, message and Cancel for whichever tracked worker is running."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel(self)
        self.bar = ProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(False)
        self.cancel_button = QtWidgets.QToolButton(self)
        self.cancel_button.setText("Cancel")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._worker: Worker | None = None
        self.cancel_button.clicked.connect(self._cancel)
        self.setVisible(False)

    def track(self, worker: Worker) -> None:
        worker.started.connect(lambda name, w=worker: self._started(w, name))
        worker.progress.connect(lambda f, m, w=worker: self._progress(w, f, m))
        worker.finished.connect(lambda w=worker: self._finished(w))

    def _started(self, worker: Worker, name: str) -> None:
        self._worker = worker
        self.label.setText(name[:1].upper() + name[1:] + "…" if name else "Working…")
        self.bar.setValue(0)
        self.setVisible(True)

    def _progress(self, worker: Worker, fraction: float, message: str) -> None:
        if worker is self._worker:
            self.bar.setValue(int(fraction * 1000))
            if message:
                self.label.setText(message[:1].upper() + message[1:])

    def _finished(self, worker: Worker) -> None:
        if worker is self._worker:
            self._worker = None
            self.setVisible(False)

    def _cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


class MainWindow(QtWidgets.QMainWindow):
    """The workstation window. ``startup()`` opens the vault and, on a first start, the sample.

    ``actor`` is the person at the workstation (the OS account) in the data folder ``paths``;
    every button calls a workflow function with it.
    """

    caseOpened = QtCore.Signal(str)
    volumeShown = QtCore.Signal()
    previewShown = QtCore.Signal()  # a case's reduced image, while the full one loads

    def __init__(self, paths: Paths | None = None, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.paths = (paths or resolve_paths()).ensure()
        self.actor = Actor.current(self.paths)
        self.vault_ready = False
        self.settings = self._load_settings()
        self.case: Any = None
        self.case_title = ""
        self.edit_target: Any = None  # an object with undo()/redo()/can_undo()/can_redo()
        self.setWindowTitle("MedPrint")
        self.setObjectName("mainWindow")
        self.resize(1440, 900)
        self.setDockNestingEnabled(True)

        self.area = ViewArea(parent=self)
        self.state = self.area.state
        self.setCentralWidget(self.area)
        self.jobs = Worker(self)  # case loading, sample loading
        self.jobs.error.connect(lambda m: self.report_error("Could not open", m))
        self._opening = self._previewed = ""  # the case being opened; whose preview is shown
        self.previews = PreviewHandover(self)
        self.previews.ready.connect(self._show_preview)
        self.job_bar = JobBar(self)
        self.job_bar.track(self.jobs)
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_status()
        for view in self.area.slice_views.values():
            view.readoutChanged.connect(self._readout.setText)
            view.units = self.settings.units
        self._sync_edit_actions()

    # -- construction -------------------------------------------------------------------------
    def _load_settings(self) -> Settings:
        try:
            return Settings.load(self.paths)
        except MedPrintError as exc:
            log.warning("settings ignored: %s", exc)
            return Settings()

    def _dock(
        self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea
    ) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")
        dock.setWidget(widget)
        dock.setFeatures(
            QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        left = QtCore.Qt.DockWidgetArea.LeftDockWidgetArea
        right = QtCore.Qt.DockWidgetArea.RightDockWidgetArea
        self.browser = CaseBrowser(self)
        self.browser.openRequested.connect(self.open_case)
        self.browser.importRequested.connect(self.import_dicom)
        self.browser.refreshRequested.connect(self.refresh_cases)
        self.browser.identityToggled.connect(self._identity_toggled)
        self.browser.searchChanged.connect(self._search_cases)
        self.cases_dock = self._dock("Cases", self.browser, left)
        self.display = DisplayPanel(self.area, self)
        self.display_dock = self._dock("Display", self.display, left)
        self.stage_panels = self._build_stage_panels()
        self.stage_docks: dict[str, QtWidgets.QDockWidget] = {}
        previous = None
        for title, panel in self.stage_panels.items():
            dock = self._dock(title, panel, right)
            if previous is not None:
                self.tabifyDockWidget(previous, dock)
            self.stage_docks[title] = dock
            previous = dock
            self._give_actor(panel)
        self.audit_panel = AuditPanel(self.actor, self)
        self.audit_dock = self._dock("Audit", self.audit_panel, right)
        self.tabifyDockWidget(previous, self.audit_dock)
        self.stage_docks["Segment"].raise_()
        self.resizeDocks(
            [self.cases_dock, self.stage_docks["Segment"]],
            [330, 320],
            QtCore.Qt.Orientation.Horizontal,
        )
        self.audit_dock.visibilityChanged.connect(
            lambda shown: shown and self.audit_panel.refresh()
        )

    def _give_actor(self, panel: QtWidgets.QWidget) -> None:
        """Panels that act on cases do so as the window's actor."""
        set_actor = getattr(panel, "set_actor", None)
        if callable(set_actor):
            set_actor(self.actor)

    def _build_stage_panels(self) -> dict[str, QtWidgets.QWidget]:
        """Segment, Mesh, Print and Package, each fed by the one before it."""
        self.segment_panel = SegmentPanel(self.state, self, view3d=self.area.view3d)
        self.segment_panel.default_threshold_preset = self.settings.default_threshold_preset
        self.segment_panel.connect_views(list(self.area.slice_views.values()))
        self.segment_panel.historyChanged.connect(self._sync_edit_actions)
        self.edit_target = self.segment_panel
        self.mesh_panel = MeshPanel(self.segment_panel, self.area.view3d, self)
        self.print_panel = PrintPanel(self.mesh_panel, self)
        self.print_panel.load_profiles(self.paths, self.settings.default_printer)
        self.package_panel = PackagePanel(self)
        self.record_panel = RecordPanel(self.area.view3d, self)
        self.track(self.record_panel.worker)
        self.review_panel = ReviewPanel(self.state, self.mesh_panel, self.area.view3d, self)
        self.mesh_panel.meshBuilt.connect(lambda _r: self.package_panel.refresh_versions())
        self.mesh_panel.meshEdited.connect(lambda _v: self.package_panel.refresh_versions())
        for panel in (self.mesh_panel, self.print_panel, self.package_panel, self.review_panel):
            self.track(panel.worker)
        return {
            "Segment": self.segment_panel,
            "Mesh": self.mesh_panel,
            "Print": self.print_panel,
            "Package": self.package_panel,
            "Record": self.record_panel,
            "Review": self.review_panel,
        }

    def _action(
        self, text: str, slot: Any, shortcut: Any = None, tip: str = "", checkable: bool = False
    ) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({action.shortcut().toString()})" if shortcut else tip)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        keys = QtGui.QKeySequence.StandardKey
        self.act_import = self._action(
            "&Import DICOM…", self.import_dicom, "Ctrl+I", "Import a DICOM folder or zip"
        )
        self.act_pacs = self._action(
            "Import from &PACS…", self.import_pacs, "Ctrl+Shift+I", "Query and retrieve from a PACS"
        )
        self.act_open = self._action(
            "&Open case…", self._focus_cases, keys.Open, "Pick a case from the vault"
        )
        self.act_save = self._action(
            "&Save", self.save, keys.Save, "Save the case's view state to the vault"
        )
        self.act_screenshot = self._action(
            "Save s&creenshot…", self.screenshot_dialog, "Ctrl+Shift+S", "Save a PNG of the views"
        )
        self.act_screenshot3d = self._action(
            "Save &3D screenshot…", self.screenshot3d_dialog, None, "Save a PNG of the 3D view"
        )
        self.act_settings = self._action(
            "Se&ttings…", self.settings_dialog, keys.Preferences, "Data folder, presets, units"
        )
        self.act_quit = self._action("&Quit", self.close, keys.Quit)
        self.act_undo = self._action("&Undo", self.undo, keys.Undo, "Undo the last edit")
        self.act_redo = self._action("&Redo", self.redo, keys.Redo, "Redo the edit undone last")
        self.act_full = self._action(
            "&Full screen", self.toggle_full_screen, "F11", "Full screen", checkable=True
        )
        self.act_review = self._action(
            "Re&view mode",
            self.set_review_mode,
            "Ctrl+Shift+R",
            "For the surgeon: the latest mesh version in 3D over the slices, its QA report, "
            "measuring tools, Approve / Reject",
            checkable=True,
        )
        self.act_reset = self._action(
            "&Reset views", self.area.reset_views, "Ctrl+R", "Fit the slices, reset the 3D camera"
        )
        self.layout_actions = {}
        group = QtGui.QActionGroup(self)
        titles = {
            "four-up": "&Four-up",
            "axial": "&Axial",
            "coronal": "&Coronal",
            "sagittal": "Sa&gittal",
            "3d": "&3D",
        }
        for n, name in enumerate(LAYOUTS, start=1):
            act = self._action(
                titles[name],
                lambda _=False, v=name: self.set_layout(v),
                f"Ctrl+{n}",
                f"{name} layout",
                checkable=True,
            )
            group.addAction(act)
            self.layout_actions[name] = act
        self.layout_actions["four-up"].setChecked(True)
        self.area.layoutChanged.connect(lambda name: self.layout_actions[name].setChecked(True))
        self.tool_actions = {}
        tool_group = QtGui.QActionGroup(self)
        for name, key in zip(("navigate", "ruler", "angle"), ("N", "M", "A"), strict=True):
            act = self._action(
                name.capitalize(),
                lambda _=False, v=name: self.area.set_tool(v),
                key,
                f"{name} tool",
                checkable=True,
            )
            tool_group.addAction(act)
            self.tool_actions[name] = act
        self.tool_actions["navigate"].setChecked(True)
        self.act_clear_measure = self._action(
            "Clear measurements", self.area.clear_measurements, None, "Remove rulers and angles"
        )
        self.preset_actions = {
            p: self._action(
                p.title() if p != "auto" else "Auto",
                lambda _=False, v=p: self.state.apply_preset(v),
                f"Alt+{n}",
                f"{p} window",
            )
            for n, p in enumerate(PRESET_NAMES, start=1)
        }
        self.act_about = self._action("&About MedPrint", self.about)
        self.act_shortcuts = self._action("&Mouse and keys", self.shortcuts_help, keys.HelpContents)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.act_import, self.act_pacs, self.act_open])
        self.recent_menu = file_menu.addMenu("Recent cases")
        self._rebuild_recent()
        file_menu.addSeparator()
        file_menu.addActions([self.act_save, self.act_screenshot, self.act_screenshot3d])
        file_menu.addSeparator()
        file_menu.addActions([self.act_settings, self.act_quit])
        edit = bar.addMenu("&Edit")
        edit.addActions([self.act_undo, self.act_redo])
        view = bar.addMenu("&View")
        layouts = view.addMenu("Layout")
        layouts.addActions(list(self.layout_actions.values()))
        presets = view.addMenu("Window preset")
        presets.addActions(list(self.preset_actions.values()))
        view.addActions([self.act_reset, self.act_full, self.act_review])
        view.addSeparator()
        panels = view.addMenu("Panels")
        for dock in [
            self.cases_dock,
            self.display_dock,
            *self.stage_docks.values(),
            self.audit_dock,
        ]:
            panels.addAction(dock.toggleViewAction())
        tools = bar.addMenu("&Tools")
        tools.addActions(list(self.tool_actions.values()))
        tools.addAction(self.act_clear_measure)
        help_menu = bar.addMenu("&Help")
        help_menu.addActions([self.act_shortcuts, self.act_about])

    def _build_toolbar(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.addActions([self.act_import, self.act_pacs, self.act_save, self.act_screenshot])
        toolbar.addSeparator()
        toolbar.addActions([self.act_undo, self.act_redo])
        toolbar.addSeparator()
        toolbar.addActions(list(self.layout_actions.values()))
        toolbar.addSeparator()
        toolbar.addActions(list(self.tool_actions.values()))
        toolbar.addSeparator()
        toolbar.addActions(list(self.preset_actions.values()))

    def _build_status(self) -> None:
        status = self.statusBar()
        self._readout = QtWidgets.QLabel(self)
        self._readout.setObjectName("readout")
        status.addWidget(self._readout, 1)
        status.addPermanentWidget(self.job_bar)

    # -- start-up and cases ---------------------------------------------------------------------
    def showEvent(self, event: QtGui.QShowEvent) -> None:
        super().showEvent(event)
        if not getattr(self, "_shown_once", False):
            self._shown_once = True
            # VTK and the mesh pipeline load in the background once the window is on screen
            # (their imports hold the GIL: not while the window is first painted); the panels
            # wait for them through app.ui.deferred.
            when_exposed(self, self.area.view3d.prewarm)
            when_exposed(self, lambda: QtCore.QTimer.singleShot(200, mesh_stack().start))

    def startup(self, open_sample: bool = True) -> None:
        """Open (or create) the vault, list the cases; with none, show the bundled sample."""
        entries = self.refresh_cases()
        self.package_panel.show_user()
        if open_sample and not entries and self.vault_ready:
            if intake.sample_available():
                self.open_sample()
            else:
                self.statusBar().showMessage(
                    "No cases yet: import a DICOM folder (Ctrl+I) to start."
                )

    def _ensure_vault(self) -> None:
        """Open the vault; on a first start create it (this account becomes administrator)."""
        if not self.actor.has_vault():
            recovery = users.init_vault(self.actor)
            show_info(
                self,
                "Vault created",
                "MedPrint created an encrypted vault for your cases; you are its administrator."
                "\n\nRecovery key (write it down and keep it safe; it is shown only now):"
                f"\n\n{recovery}",
            )
        self.actor.vault  # noqa: B018 (opens it: a missing key is reported here)
        self.vault_ready = True

    def refresh_cases(self) -> list[Any]:
        shown = self.browser.show_identity.isChecked()
        try:
            self._ensure_vault()
            entries = intake.list_cases(self.actor, with_identity=shown)
        except MedPrintError as exc:
            self.browser.set_unavailable(f"Cases unavailable: {exc}")
            self.statusBar().showMessage(f"Cases unavailable: {exc}", 8000)
            return []
        self.browser.set_entries(entries)
        self._search_cases(self.browser.search.text())
        return entries

    def _search_cases(self, text: str) -> None:
        """Match the search text against pseudonyms and patient fields, inside the vault."""
        if not text.strip() or not self.vault_ready:
            self.browser.set_matches(None)
            return
        try:
            found = intake.list_cases(self.actor, text.strip())
        except MedPrintError as exc:
            self.statusBar().showMessage(f"Search failed: {exc}", 8000)
            return
        self.browser.set_matches({e.pseudonym for e in found})

    def _start_load(self, job: Any, inputs: Any, name: str, title: str = "{}") -> None:
        """Run a loading use case (``job(inputs, progress=, cancel=)``) off the GUI thread."""
        try:
            self._ensure_vault()
        except MedPrintError as exc:
            self.report_error("Could not open the vault", str(exc))
            return
        done = partial(self._on_loaded, title=title)
        self.jobs.start(job, inputs, name=name, on_done=done)

    def open_case(self, pseudonym: str) -> None:
        self._opening = pseudonym
        preview = partial(self.previews.ready.emit, pseudonym)
        job = partial(intake.load_case, self.actor, preview=preview)
        self._start_load(job, pseudonym, f"opening case {pseudonym}")

    def _show_preview(self, pseudonym: str, volume: Volume) -> None:
        """A case's reduced image while the full one loads: to look at, with the tools off."""
        if pseudonym != self._opening:
            return  # another case was opened meanwhile
        self.case = None
        self.segment_panel.detach()
        self.setWindowTitle(f"MedPrint — {pseudonym} (loading)")
        self._previewed = pseudonym
        self.show_volume(volume, preview=True)

    def open_sample(self) -> None:
        """Open the bundled sample case (imported into the vault on first use)."""
        self._start_load(intake.load_sample, self.actor, "opening the sample case", "{} (sample)")

    def _on_loaded(self, loaded: intake.LoadedCase, title: str = "{}") -> None:
        case = loaded.case
        self.case = case
        self.case_title = title.format(case.pseudonym)
        self.setWindowTitle(f"MedPrint — {self.case_title}")
        cursor = self.state.cursor if self._previewed == case.pseudonym else None
        self._opening = self._previewed = ""
        self.show_volume(loaded.volume)
        if cursor is not None:
            self.state.set_cursor(cursor)  # where the user went on the preview
        # The slices paint first; the panels (segment table, mesh versions, G-codes) follow.
        QtCore.QTimer.singleShot(30, partial(self._attach_case, loaded))

    def _attach_case(self, loaded: intake.LoadedCase) -> None:
        """Give the case to the panels, one panel per turn of the event loop: each reads what
        it lists from the vault, and all in one go kept the window from repainting for their
        sum."""
        case = loaded.case
        steps = [
            partial(self.segment_panel.attach, loaded.volume, loaded.segmentation, case),
            lambda: self.mesh_panel.set_case(case, self._printer_volume()),
            partial(self.print_panel.set_case, case),
            partial(self.package_panel.set_case, case),
            partial(self.record_panel.set_case, case),
            partial(self.review_panel.set_case, case),
            partial(self._case_attached, case),
        ]
        self._attach_step(case, steps)

    def _attach_step(self, case: Case, steps: list[Callable[[], None]]) -> None:
        if self.case is not case:
            return  # another case was opened meanwhile
        steps[0]()
        if len(steps) > 1:
            QtCore.QTimer.singleShot(0, partial(self._attach_step, case, steps[1:]))

    def _case_attached(self, case: Case) -> None:
        if case.pseudonym not in {e.pseudonym for e in self.browser.entries}:
            self.refresh_cases()  # a case the job created (the sample on first start)
        self._push_recent(case.pseudonym)
        self.browser.select(case.pseudonym)
        self.caseOpened.emit(case.pseudonym)
        self._sync_edit_actions()

    def _printer_volume(self) -> tuple[float, float, float] | None:
        """Build volume of the default printer, for the mesh QA's fit check."""
        try:
            from app.printing.profiles import get_printer  # noqa: PLC0415

            return tuple(get_printer(self.settings.default_printer, self.paths).build_volume)
        except Exception:  # no profile: the QA report just skips the fit check
            return None

    def show_volume(
        self, volume: Volume, window_preset: str | None = None, preview: bool = False
    ) -> None:
        preset = window_preset or self.settings.default_window_preset
        if preset not in PRESET_NAMES:
            preset = "auto"
        self.area.show_volume(volume, preset, preview=preview)
        for warning in volume.warnings:
            self.statusBar().showMessage(warning, 10000)
        (self.previewShown if preview else self.volumeShown).emit()

    def import_dicom(self) -> None:
        try:
            self._ensure_vault()
        except MedPrintError as exc:
            self.report_error("Could not open the vault", str(exc))
            return
        dialog = ImportDialog(self.actor, self)
        dialog.imported.connect(self._on_imported)
        self.import_dialog = dialog
        dialog.open()

    def import_pacs(self) -> None:
        """The PACS dialog (pynetdicom is imported on first use)."""
        try:
            self._ensure_vault()
        except MedPrintError as exc:
            self.report_error("Could not open the vault", str(exc))
            return
        from app.ui.pacs_dialog import PacsDialog  # noqa: PLC0415

        dialog = PacsDialog(self.actor, self)
        dialog.retrieved.connect(self._on_imported)
        self.pacs_dialog = dialog
        dialog.open()

    def _on_imported(self, pseudonym: str) -> None:
        self.refresh_cases()
        self.open_case(pseudonym)

    def _identity_toggled(self, shown: bool) -> None:
        """Patient fields come from the vault only while shown (each showing is audited)."""
        try:
            entries = intake.list_cases(self.actor, with_identity=shown)
        except MedPrintError as exc:
            self.browser.show_identity.setChecked(False)
            self.report_error("Identity stays hidden", str(exc))
            return
        self.browser.set_entries(entries)

    def _focus_cases(self) -> None:
        self.cases_dock.show()
        self.cases_dock.raise_()
        self.browser.search.setFocus()

    def _push_recent(self, pseudonym: str) -> None:
        recent = [pseudonym, *[p for p in self.settings.recent_cases if p != pseudonym]][
            :MAX_RECENT
        ]
        self.settings.recent_cases = recent
        try:
            self.settings.save(self.paths)
        except (OSError, MedPrintError) as exc:
            log.warning("recent cases not saved: %s", exc.__class__.__name__)
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for pseudonym in self.settings.recent_cases:
            self.recent_menu.addAction(pseudonym, lambda p=pseudonym: self.open_case(p))
        self.recent_menu.setEnabled(bool(self.settings.recent_cases))

    # -- commands -------------------------------------------------------------------------------
    def save(self) -> None:
        if self.case is None:
            self.statusBar().showMessage("Nothing to save: open a case from the vault first.", 5000)
            return
        width, level = self.state.window
        state = {
            "window": [width, level],
            "window_preset": self.state.window_preset,
            "layout": self.area.layout_name,
            "cursor_lps": [float(v) for v in self.state.cursor],
        }
        try:
            intake.save_view(self.actor, self.case, state)
            for panel in self.stage_panels.values():
                saver = getattr(panel, "save", None)
                if callable(saver):
                    saver(self.case)
        except MedPrintError as exc:
            self.report_error("Could not save", str(exc))
            return
        self.statusBar().showMessage(f"Saved case {self.case.pseudonym}.", 4000)

    def undo(self) -> None:
        if self.edit_target is not None and self.edit_target.can_undo():
            self.edit_target.undo()
        self._sync_edit_actions()

    def redo(self) -> None:
        if self.edit_target is not None and self.edit_target.can_redo():
            self.edit_target.redo()
        self._sync_edit_actions()

    def set_edit_target(self, target: Any) -> None:
        """Route Undo/Redo to ``target`` (a panel's history); None disables them."""
        self.edit_target = target
        self._sync_edit_actions()

    def _sync_edit_actions(self) -> None:
        target = self.edit_target
        self.act_undo.setEnabled(bool(target is not None and target.can_undo()))
        self.act_redo.setEnabled(bool(target is not None and target.can_redo()))
        self.act_save.setEnabled(self.case is not None)

    def set_layout(self, name: str) -> None:
        self.area.set_layout(name)
        self.layout_actions[name].setChecked(True)

    def set_review_mode(self, on: bool) -> None:
        """Review layout: Mesh (QA), Package (approve/reject) and Review (contours, steps,
        compare, comments) docks, the latest stored mesh version in the 3D view and on the
        slices; the editing docks are hidden until review mode ends."""
        self.act_review.setChecked(on)
        editing = [self.stage_docks[t] for t in ("Segment", "Print") if t in self.stage_docks]
        for dock in editing:
            dock.setVisible(not on)
        if not on:
            self.statusBar().showMessage("Review mode ended.", 4000)
            return
        self.set_layout("four-up")
        self.area.set_tool("navigate")
        for title in ("Mesh", "Package", "Review"):
            if title in self.stage_docks:
                self.stage_docks[title].show()
        if "Review" in self.stage_docks:
            self.stage_docks["Review"].raise_()
        self.review_panel.outline.setChecked(True)  # image, segmentation and mesh together
        panel = self.mesh_panel
        if panel is not None and panel.versions.count():
            panel.versions.setCurrentIndex(0)  # the newest version
            panel._show_stored()
            self.statusBar().showMessage(
                f"Review mode: mesh {panel.versions.currentText()} of {self.case_title}. "
                "Measure with the ruler (M) and angle (A) tools.",
                8000,
            )
        else:
            self.statusBar().showMessage(
                "Review mode: this case has no stored mesh version yet.", 8000
            )

    def toggle_full_screen(self) -> None:
        if self.isFullScreen():
            self.showNormal()
        else:
            self.showFullScreen()
        self.act_full.setChecked(self.isFullScreen())

    def save_screenshot(self, path: str | Path, whole_window: bool = False) -> Path:
        """Save a PNG of the view area (or the whole window); returns the path."""
        path = Path(path)
        widget = self if whole_window else self.area
        if not self.area.snapshot(widget).save(str(path), "PNG"):
            msg = f"could not write {path.name}; choose another folder"
            raise MedPrintError(msg)
        return path

    def screenshot_dialog(self) -> None:
        name = f"{self.case.pseudonym if self.case else 'medprint'}-views.png"
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save screenshot", name, "PNG image (*.png)"
        )
        if chosen:
            try:
                self.save_screenshot(chosen)
            except MedPrintError as exc:
                self.report_error("Screenshot not saved", str(exc))

    def screenshot3d_dialog(self) -> None:
        name = f"{self.case.pseudonym if self.case else 'medprint'}-3d.png"
        chosen, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save 3D screenshot", name, "PNG image (*.png)"
        )
        if chosen:
            self.area.view3d.screenshot(chosen)

    def settings_dialog(self) -> None:
        dialog = SettingsDialog(self.settings, self.paths, self)
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return
        self.apply_settings(dialog.result_settings(), dialog.chosen_data_dir())

    def apply_settings(self, settings: Settings, data_dir: str | None = None) -> None:
        try:
            settings.save(self.paths)
        except MedPrintError as exc:
            self.report_error("Settings not saved", str(exc))
            return
        self.settings = settings
        self.area.set_units(settings.units)
        self.segment_panel.default_threshold_preset = settings.default_threshold_preset
        if data_dir and Path(data_dir).expanduser().resolve() != self.paths.root:
            qt_settings().setValue(DATA_DIR_KEY, data_dir)
            self.statusBar().showMessage("The new data folder is used from the next start.", 8000)

    def about(self) -> None:
        QtWidgets.QMessageBox.about(
            self,
            "About MedPrint",
            f"<b>MedPrint {__version__}</b><p>Medical 3D printing workstation: CT/MR DICOM to a "
            "verified, de-identified print.</p><p>Not a diagnostic device.</p>",
        )

    def shortcuts_help(self) -> None:
        show_info(self, "Mouse and keys", SHORTCUTS_HELP)

    def report_error(self, title: str, message: str) -> None:
        """The one place the window shows an error: status bar plus a non-blocking box."""
        self.statusBar().showMessage(f"{title}: {message}", 10000)
        self.last_error = message
        show_error(self, title, message)

    def track(self, worker: Worker) -> None:
        """Show a panel's worker in the status-bar progress area."""
        self.job_bar.track(worker)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self._may_close_with_prints_running():
            event.ignore()
            return
        workers = [self.jobs, self.audit_panel.worker]
        workers += [panel.worker for panel in self.stage_panels.values()]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            worker.wait(3.0)
        self.area.view3d.close()
        super().closeEvent(event)

    def _may_close_with_prints_running(self) -> bool:
        """Closing the app stops feeding a USB print: ask first while a job runs."""
        running = [job for job in ACTIVE_JOBS if job.state.active]
        if not running:
            return True
        answer = QtWidgets.QMessageBox.warning(
            self,
            "A print is running",
            "Closing MedPrint stops sending G-code to the printer and ruins the running print.\n"
            "Close anyway?",
            QtWidgets.QMessageBox.StandardButton.Close
            | QtWidgets.QMessageBox.StandardButton.Cancel,
            QtWidgets.QMessageBox.StandardButton.Cancel,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Close

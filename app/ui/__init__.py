"""The workstation GUI (PySide6). Qt lives here and in :mod:`app.viewers` only.

Entry point: :func:`app.ui.app.run_gui` (the ``medprint`` command without a sub-command).

For panel authors:

- :class:`app.ui.worker.Worker` — the one worker adapter. ``worker.start(fn, inputs, name=...)``
  runs ``fn(inputs, *, progress, cancel)`` in a thread pool; ``progress``, ``done``, ``error``
  (one readable line), ``cancelled`` and ``finished`` arrive on the GUI thread. A new job
  cancels the running one. Show it in the status bar with ``MainWindow.track(worker)``.
- The window holds one :class:`app.workflow.actor.Actor` (``MainWindow.actor``: the OS account
  in this data folder); a panel with ``set_actor(actor)`` gets it at construction, and every
  button calls one :mod:`app.workflow` function with it (never the vault, access or audit).
- ``MainWindow.set_edit_target(obj)`` routes Edit ▸ Undo/Redo to ``obj.undo()/redo()`` (with
  ``can_undo()/can_redo()``); ``MainWindow.report_error(title, message)`` shows a message.
- Panels: :mod:`.segment_panel`, :mod:`.mesh_panel`, :mod:`.print_panel`,
  :mod:`.package_panel` (with review mode in :mod:`.main_window`), :mod:`.panels` (Display,
  Audit).
"""

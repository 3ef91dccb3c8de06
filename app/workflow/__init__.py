"""Use cases: one function per thing a user does, shared by the CLI, the GUI and the demo.

Each takes the :class:`~app.workflow.actor.Actor` (who acts, in which data folder) and plain
arguments; it checks the permission (:mod:`.policy`), does the work through the domain packages,
stores through :class:`app.case.Case`, and writes the audit record, including for a refusal.
This package is the only place that decides, stores or audits.

Modules: ``actor`` and ``policy`` (who may do what), ``users`` (set-up, vault, roles),
``migration`` (an old-format vault, on its founder's first open),
``keys`` (signing key, trust, recipients), ``intake`` (scan, import, de-identify, cases),
``segment``, ``mesh`` (build, edit, export), ``mesh_source`` (a file build's surface, started
early),
``review`` (approve, reject, override, release), ``slice``, ``printing`` (start, pause, resume,
cancel, recover), ``package`` (build, verify, extract), ``records`` (the audit log), ``demo``.
"""

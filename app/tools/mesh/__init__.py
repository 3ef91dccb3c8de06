"""Mesh tools: segment mask -> printable, checked, clean surface in patient LPS millimetres.

Modules (each Qt-free and pure: no case, vault, permission or audit; long work takes
``progress`` / ``cancel``):

* :mod:`~app.tools.mesh.pipeline` named settings (``print``, ``review``) and
  ``build_parts(masks, volume, settings)``: the whole chain with its QA report;
* :mod:`~app.tools.mesh.surface` extraction, windowed-sinc smoothing, deviation measures;
* :mod:`~app.tools.mesh.repair` repair to a closed 2-manifold, decimation, self-intersections;
* :mod:`~app.tools.mesh.edit` cut, booleans, hollow, mirror, scale, base, rods, measurements;
* :mod:`~app.tools.mesh.operations` those edits by name with plain parameters;
* :mod:`~app.tools.mesh.label` the pseudonym embossed/engraved as 3D text;
* :mod:`~app.tools.mesh.qa` the QA report, :mod:`~app.tools.mesh.report` as HTML;
* :mod:`~app.tools.mesh.meshio` clean mesh files (STL, 3MF, OBJ, PLY) in and out, and
  :mod:`~app.tools.mesh.export` named by pseudonym and part;
* :mod:`~app.tools.mesh.core` VTK/numpy plumbing and topology checks (as an STL reader sees
  the mesh).

Storing a version in a case, permissions and audit are :mod:`app.workflow.mesh`'s.
"""

"""Mesh tools: segment mask -> printable, checked, clean surface in patient LPS millimetres.

Modules (each Qt-free; long work takes ``progress`` / ``cancel``):

* :mod:`~app.tools.mesh.pipeline` ``build_mesh(mask, volume, ...)``: the whole chain;
* :mod:`~app.tools.mesh.surface` extraction, windowed-sinc smoothing, deviation measures;
* :mod:`~app.tools.mesh.repair` repair to a closed 2-manifold, decimation, self-intersections;
* :mod:`~app.tools.mesh.edit` cut, booleans, hollow, mirror, scale, base, rods, measurements;
* :mod:`~app.tools.mesh.label` the pseudonym embossed/engraved as 3D text;
* :mod:`~app.tools.mesh.qa` the QA report; :mod:`~app.tools.mesh.export` clean files;
* :mod:`~app.tools.mesh.store` mesh versions inside a case; :mod:`~app.tools.mesh.core`
  VTK/numpy plumbing and topology checks (as an STL reader sees the mesh).
"""

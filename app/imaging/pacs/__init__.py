"""PACS client and storage SCP: DIMSE (C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE) and DICOMweb.

Pure domain code: nodes, queries, retrieved instances (kept in memory, never on disk) and the
Encapsulated 3D model objects. Who may query, retrieve or store, and the audit of each act, live
in :mod:`app.workflow.pacs`.

Modules: ``nodes`` (configured archives), ``query`` (query keys and matches), ``dimse``
(pynetdicom SCU and our storage SCP), ``dicomweb`` (QIDO-RS, WADO-RS), ``received``
(instances in an anonymous memory file), ``model3d`` (Encapsulated STL objects).
"""

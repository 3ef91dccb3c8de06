"""Signed print packages: build one atomically on a drive, verify one before anything is used.

Modules by responsibility:

- :mod:`.format`: file names, problem codes, canonical JSON, the manifest and signature, the
  records a package carries, zip entries, the encrypted ``.mpkg`` stream;
- :mod:`.binding`: what the records must bind (the approval names the packaged mesh, the
  overrides it rests on travel with it, each G-code names that mesh);
- :mod:`.container`: one read-only view over a package folder or zip;
- :mod:`.build`: writing a package atomically, read back and verified;
- :mod:`.verify`: every check, in order, each failure with its own code and message;
- :mod:`.extract`: extracting (verified first) and decrypting.

Nothing here decides who may build or audits anything: :mod:`app.workflow.package` does.
"""

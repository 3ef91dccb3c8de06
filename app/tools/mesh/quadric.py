"""Quadric decimation (fast-simplification), in a short-lived child process for big meshes.

fast-simplification keeps its working arrays (about 250 bytes a triangle of the input) in
global C++ vectors that are cleared but never shrunk, so after one call on a 2.5-million
triangle surface the process holds ~600 MiB until it exits; and it holds the GIL for its
whole run (~1 ms per 1,000 triangles), which freezes a window whose worker decimates. A mesh
of more than a few ten thousand triangles is therefore decimated by a child Python that
imports only numpy and fast-simplification (arrays in and out over its standard streams; a
frozen build starts itself with :data:`CHILD_FLAG`). A small mesh, or a child that fails, is
decimated in this process.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
from numpy.lib.format import read_array, write_array

CHILD_FROM_TRIANGLES = 60_000  # below: < 60 ms holding the GIL, < 15 MiB kept; a child costs ~0.2 s
CHILD_FLAG = "--medprint-decimation-child"  # the frozen launcher's way to run serve()


def simplify(
    points: np.ndarray, faces: np.ndarray, reduction: float, aggressiveness: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(points, faces)`` with the fraction ``reduction`` of the triangles collapsed."""
    if len(faces) >= CHILD_FROM_TRIANGLES:
        out = _in_child(points, faces, reduction, aggressiveness)
        if out is not None:
            return out
    return _simplify(points, faces, reduction, aggressiveness)


def _in_child(
    points: np.ndarray, faces: np.ndarray, reduction: float, aggressiveness: float
) -> tuple[np.ndarray, np.ndarray] | None:
    request = io.BytesIO()
    for array in (points, faces, np.array([reduction, aggressiveness])):
        write_array(request, array, allow_pickle=False)
    done = subprocess.run(
        _child_command(), input=request.getbuffer(), capture_output=True, check=False
    )
    del request
    if done.returncode != 0:
        return None
    reply = io.BytesIO(done.stdout)
    return read_array(reply), read_array(reply)


def _child_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG]
    return [sys.executable, "-c", "from app.tools.mesh.quadric import serve; serve()"]


def serve() -> None:
    """The child's side: arrays and settings from standard input, the result to standard out."""
    source = io.BytesIO(sys.stdin.buffer.read())  # numpy reads a pipe only through memory
    points, faces = read_array(source), read_array(source)
    reduction, aggressiveness = read_array(source).tolist()
    points, faces = _simplify(points, faces, reduction, aggressiveness)
    reply = io.BytesIO()
    for array in (points, faces):
        write_array(reply, array, allow_pickle=False)
    sys.stdout.buffer.write(reply.getbuffer())
    sys.stdout.buffer.flush()


def _simplify(
    points: np.ndarray, faces: np.ndarray, reduction: float, aggressiveness: float
) -> tuple[np.ndarray, np.ndarray]:
    import fast_simplification  # noqa: PLC0415  (the child imports nothing else)

    return fast_simplification.simplify(
        points, faces, target_reduction=float(reduction), agg=float(aggressiveness)
    )

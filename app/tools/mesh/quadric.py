"""Quadric decimation (fast-simplification), in a short-lived child process for big meshes.

fast-simplification keeps its working arrays (about 250 bytes a triangle of the input) in
global C++ vectors that are cleared but never shrunk, so after one call on a 2.5-million
triangle surface the process holds ~600 MiB until it exits; and it holds the GIL for its
whole run (~1 ms per 1,000 triangles), which freezes a window whose worker decimates. A mesh
of more than a few ten thousand triangles is therefore decimated by a child Python that
imports only numpy and fast-simplification (arrays in and out over its standard streams; a
frozen build starts itself with :data:`CHILD_FLAG`). A small mesh, or a child that fails, is
decimated in this process. A build starts its child ahead (:func:`start_child`): the child
loads its libraries (~0.2-0.4 s) while this process still smooths the surface.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
from numpy.lib.format import read_array, write_array

CHILD_FROM_TRIANGLES = 60_000  # below: < 60 ms holding the GIL, < 15 MiB kept; a child costs ~0.2 s
CHILD_FLAG = "--medprint-decimation-child"  # the frozen launcher's way to run serve()


def start_child() -> subprocess.Popen | None:
    """A decimation child, started ahead of :func:`simplify` (give it there), or None when
    none can start; whoever starts one ends it with :func:`stop_child` if it may not have
    reached :func:`simplify`."""
    try:
        return subprocess.Popen(
            _child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    except OSError:
        return None


def stop_child(child: subprocess.Popen | None) -> None:
    """End ``child`` if it still runs (a build that failed or did not decimate)."""
    if child is not None and child.poll() is None:
        child.kill()
        child.communicate()


def simplify(
    points: np.ndarray,
    faces: np.ndarray,
    reduction: float,
    aggressiveness: float,
    *,
    child: subprocess.Popen | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(points, faces)`` with the fraction ``reduction`` of the triangles collapsed (by
    ``child``, started ahead, or a new child when the mesh is big)."""
    if len(faces) >= CHILD_FROM_TRIANGLES:
        out = _in_child(points, faces, (reduction, aggressiveness), child)
        if out is not None:
            return out
    stop_child(child)
    return _simplify(points, faces, reduction, aggressiveness)


def _in_child(
    points: np.ndarray,
    faces: np.ndarray,
    settings: tuple[float, float],
    child: subprocess.Popen | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    request = io.BytesIO()
    for array in (points, faces, np.array(settings)):
        write_array(request, array, allow_pickle=False)
    child = child if child is not None and child.poll() is None else start_child()
    if child is None:
        return None
    try:
        out, _ = child.communicate(request.getbuffer())
    except OSError:  # the child died before reading
        stop_child(child)
        return None
    del request
    if child.returncode != 0:
        return None
    reply = io.BytesIO(out)
    return read_array(reply), read_array(reply)


def _child_command() -> list[str]:
    if getattr(sys, "frozen", False):
        return [sys.executable, CHILD_FLAG]
    return [sys.executable, "-c", "from app.tools.mesh.quadric import serve; serve()"]


def serve() -> None:
    """The child's side: arrays and settings from standard input, the result to standard out."""
    import fast_simplification  # noqa: F401, PLC0415  (loaded while the parent still smooths)

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

"""Resin print checks on a voxel grid of the model in its print orientation (z up from the build
plate): suction cups and walls or features too thin for the resin.

Suction cup
    A bottom-up resin printer cures each layer against the vat's film, then peels it off. A hole
    in a layer (empty, ringed by material) whose empty space behind it, within the layers printed
    so far, does not reach the outside is sealed against the film: a cup that sucks on every peel.
    :func:`suction_cups` follows the empty space layer by layer (2D components joined to the
    components under them, union-find), so each layer sees exactly what was printed before it.
    A space that never opens (and does not rest on the plate) is a closed cavity, not a cup.
Thickness
    The distance transform of the solid; on its ridge (voxels not lower than any neighbour) twice
    the distance is the local thickness. Ridge regions thinner than the resin's minimum wall or
    feature size are reported as regions (26-neighbour components), with the thinnest value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Cups:
    """Suction cups found: how many, and the largest sealed hole's area in mm²."""

    count: int
    largest_mm2: float


def suction_cups(solid: np.ndarray, pitch: float, on_plate: bool = False) -> Cups:
    """Cups in ``solid`` (``[z, y, x]``, z from the plate; a pad of empty voxels around it).

    ``on_plate``: the part stands on the plate (no supports), so the space under its first
    layer is sealed by the plate; otherwise supports lift it and that space is open.
    """
    if on_plate:
        solid = solid[int(np.argmax(solid.any(axis=(1, 2)))) :]  # the first layer on the plate
    parent: list[int] = []
    opened: list[bool] = []  # per component: reaches the outside (merged into the root)
    grounded: list[bool] = []  # per component: has a part in the first layer
    holes: dict[int, float] = {}  # a component sealed when its layer was cured: its largest area
    below = np.zeros(solid.shape[1:], dtype=np.int64)  # the layer under's ids (0: solid)
    for index, layer in enumerate(solid):
        labels, count = ndimage.label(~layer)
        ids = np.arange(len(parent) + 1, len(parent) + count + 1)
        parent.extend(ids.tolist())
        opened.extend(_touches_border(labels, count).tolist())
        grounded.extend([index == 0] * count)
        _join(parent, [opened, grounded], labels, below, ids)
        areas = np.bincount(labels.ravel(), minlength=count + 1) * pitch * pitch
        for comp in np.flatnonzero(~_touches_border(labels, count)) + 1:
            node = int(ids[comp - 1])
            if not opened[_find(parent, node) - 1]:
                holes[node] = float(areas[comp])
        below = np.concatenate([[0], ids])[labels]
    cups: dict[int, float] = {}
    for node, area in holes.items():
        root = _find(parent, node)
        if opened[root - 1] or grounded[root - 1]:  # else a closed cavity, reported as such
            cups[root] = max(cups.get(root, 0.0), area)
    return Cups(len(cups), round(max(cups.values(), default=0.0), 2))


def _touches_border(labels: np.ndarray, count: int) -> np.ndarray:
    edge = np.concatenate([labels[[0, -1]].ravel(), labels[:, [0, -1]].ravel()])
    flags = np.zeros(count + 1, dtype=bool)
    flags[edge] = True
    return flags[1:]


def _join(
    parent: list[int],
    flags: list[list[bool]],
    labels: np.ndarray,
    below: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Union each component of this layer with the empty components under it (flags: or)."""
    both = (labels > 0) & (below > 0)
    pairs = np.unique((labels[both].astype(np.int64) << 32) | below[both])  # 1D: fast
    for pair in pairs.tolist():
        comp, under = pair >> 32, pair & 0xFFFFFFFF
        a, b = _find(parent, int(ids[comp - 1])), _find(parent, under)
        if a != b:
            parent[a - 1] = b
            for flag in flags:
                flag[b - 1] = flag[a - 1] or flag[b - 1]


def _find(parent: list[int], node: int) -> int:
    while parent[node - 1] != node:
        parent[node - 1] = parent[parent[node - 1] - 1]
        node = parent[node - 1]
    return node


@dataclass(frozen=True)
class Thin:
    """Ridge regions thinner than a limit: how many, and the thinnest thickness (mm)."""

    regions: int
    thinnest_mm: float


def thickness_ridge(solid: np.ndarray, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge voxels of ``solid`` (bool mask) and the local thickness (mm) at each of them."""
    depth = ndimage.distance_transform_edt(solid)
    ridge = solid & (depth >= ndimage.maximum_filter(depth, size=3))
    return ridge, np.maximum(2.0 * depth - 1.0, 1.0) * pitch


def thin_regions(ridge: np.ndarray, thickness: np.ndarray, limit_mm: float) -> Thin:
    """Regions of the ridge thinner than ``limit_mm``."""
    thin = ridge & (thickness < limit_mm)
    _, count = ndimage.label(thin, structure=np.ones((3, 3, 3), dtype=bool))
    thinnest = float(thickness[ridge].min()) if ridge.any() else 0.0
    return Thin(int(count), round(thinnest, 3))

"""Undo/redo for a segmentation: sparse, compressed diffs of the label array.

A :class:`LabelDiff` keeps, for one box of the label array, which voxels changed (a bit mask)
and their old and new values, all zlib-compressed: a 10 mm brush dab costs a few hundred bytes,
a whole-volume threshold a few hundred KiB, never a full copy. One user action (a tool run or a
whole brush stroke) is one :class:`Change`; the :class:`History` drops the oldest changes once
their total size passes its bound (the newest change is always kept so it can be undone).
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app.tools.segmentation.grid import Box, box_shape, box_union, relative

_LEVEL = 1  # zlib level: label data compresses well even at the fastest level
_LATER = 1 << 20  # packed planes above this are compressed off the caller's thread
_COMPRESSOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="undo-compress")


def _pack(packed: np.ndarray) -> bytes | np.ndarray:
    """Compressed bytes now, or (for big planes) the packed array, compressed in the background."""
    return zlib.compress(packed, _LEVEL) if packed.nbytes <= _LATER else packed


@dataclass
class LabelDiff:
    """Changed bits of one box of the label field, one packed bit plane per segment bit.

    The label array is a bit field (see the model), so a change is its XOR with the old values;
    applying the same XOR again undoes it. Each bit that changed anywhere in the box is stored as
    a zlib-compressed packed bit plane: a brush dab costs a few hundred bytes, a whole-volume
    threshold a few hundred KiB, and no values are gathered or copied.
    """

    box: Box
    count: int
    planes: dict[int, bytes | np.ndarray]  # compressed, or packed bits awaiting compression

    def __post_init__(self) -> None:
        for bit, plane in self.planes.items():
            if isinstance(plane, np.ndarray):
                _COMPRESSOR.submit(self._compress, bit, plane)

    def _compress(self, bit: int, plane: np.ndarray) -> None:
        self.planes[bit] = zlib.compress(plane, _LEVEL)  # one atomic dict store

    @classmethod
    def between(
        cls, box: Box, old: np.ndarray, new: np.ndarray, bits: tuple[int, ...] | None = None
    ) -> LabelDiff | None:
        """Diff of two crops of the label array at ``box``; None when they are equal.

        ``bits`` may name the only bits that can differ (saves a pass over the crop).
        """
        xor = np.bitwise_xor(old, new)
        if bits is None:
            bits = _bits_set(int(np.bitwise_or.reduce(xor, axis=None)))
        planes = {}
        count = 0
        for bit in bits:
            if bits == (0,) and xor.dtype == np.uint8:
                plane = xor.view(bool)  # only bit 0 can differ: the XOR is 0 or 1
            else:
                plane = (xor & xor.dtype.type(1 << bit)) != 0
            packed = np.packbits(plane)
            if not packed.any():
                continue
            planes[bit] = _pack(packed)
            if len(bits) == 1:
                count = int(np.count_nonzero(plane))
        if not planes:
            return None
        if len(bits) > 1:
            count = int(np.count_nonzero(xor))
        return cls(box=box, count=count, planes=planes)

    @classmethod
    def of_plane(cls, box: Box, bit: int, flips: np.ndarray) -> LabelDiff | None:
        """The diff that flips ``bit`` wherever ``flips`` (bool, shape of ``box``) is set."""
        return cls.of_packed(box, bit, np.packbits(flips))

    @classmethod
    def of_packed(
        cls, box: Box, bit: int, packed: np.ndarray, count: int | None = None
    ) -> LabelDiff | None:
        """The diff that flips ``bit`` where the C-ordered bits ``packed`` (of ``box``) are set.

        ``count`` is the number of set bits when the caller already knows it.
        """
        if count is None:
            count = int(np.bitwise_count(packed).sum(dtype=np.int64))
        if count == 0:
            return None
        return cls(box=box, count=count, planes={bit: _pack(packed)})

    @property
    def nbytes(self) -> int:
        return (
            sum(p.nbytes if isinstance(p, np.ndarray) else len(p) for p in self.planes.values())
            + 200
        )

    def _plane(self, bit: int) -> np.ndarray:
        shape = box_shape(self.box)
        plane = self.planes[bit]
        packed = (
            plane
            if isinstance(plane, np.ndarray)
            else np.frombuffer(zlib.decompress(plane), dtype=np.uint8)
        )
        return np.unpackbits(packed, count=int(np.prod(shape))).reshape(shape)

    def apply_to(self, labels: np.ndarray, forward: bool = True, within: Box | None = None) -> None:
        """Apply (or, the same XOR, revert) this diff on ``labels``.

        ``labels`` is the whole label array, or a crop of it at ``within``. ``forward`` is kept
        for readability at the call sites: undo and redo are the same operation.
        """
        where = self.box if within is None else relative(self.box, within)
        target = labels[where]
        for bit in self.planes:
            plane = self._plane(bit)
            if bit:
                plane = plane.astype(labels.dtype) << labels.dtype.type(bit)
            np.bitwise_xor(target, plane, out=target, casting="unsafe")


def _bits_set(value: int) -> tuple[int, ...]:
    return tuple(b for b in range(value.bit_length()) if value >> b & 1)


@dataclass
class Change:
    """One undoable user action: label diffs plus the segment list before and after."""

    description: str
    diffs: list[LabelDiff] = field(default_factory=list)
    segments_before: list[dict] | None = None
    segments_after: list[dict] | None = None

    @property
    def nbytes(self) -> int:
        meta = 0 if self.segments_before is None else 300 * (len(self.segments_before) + 1)
        return sum(d.nbytes for d in self.diffs) + meta + 200

    @property
    def box(self) -> Box | None:
        out = None
        for diff in self.diffs:
            out = box_union(out, diff.box)
        return out

    def merged(self, labels: np.ndarray) -> Change:
        """The same change with all its diffs folded into one (``labels`` is the current array)."""
        if len(self.diffs) < 2:
            return self
        union = self.box
        assert union is not None
        current = labels[union]
        before = current.copy()
        for diff in reversed(self.diffs):
            diff.apply_to(before, forward=False, within=union)
        diff = LabelDiff.between(union, before, current)
        return Change(
            self.description,
            [] if diff is None else [diff],
            self.segments_before,
            self.segments_after,
        )


class History:
    """Undo and redo stacks of :class:`Change` with a memory bound in bytes."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = int(max_bytes)
        self.undo_stack: list[Change] = []
        self.redo_stack: list[Change] = []
        self.dropped = 0

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.undo_stack) + sum(c.nbytes for c in self.redo_stack)

    def push(self, change: Change) -> None:
        self.undo_stack.append(change)
        self.redo_stack.clear()
        self._trim()

    def _trim(self) -> None:
        total = self.nbytes
        while total > self.max_bytes and len(self.undo_stack) > 1:
            total -= self.undo_stack.pop(0).nbytes
            self.dropped += 1

    def clear(self) -> None:
        self.undo_stack.clear()
        self.redo_stack.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    @property
    def undo_description(self) -> str | None:
        return self.undo_stack[-1].description if self.undo_stack else None

    @property
    def redo_description(self) -> str | None:
        return self.redo_stack[-1].description if self.redo_stack else None

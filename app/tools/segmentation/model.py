"""The segmentation model: named segments over one label array on a volume's grid.

Storage
    One integer array ``labels[k, j, i]`` on the volume's grid used as a **bit field**: segment
    ``s`` owns bit ``s.bit``, so a voxel may belong to several segments (overlap is allowed, as
    in 3D Slicer's layered segmentations) and logical operations between segments are
    meaningful. The array is uint8 up to 8 segments and widens to uint16/uint32/uint64 as
    segments are added (at most 64). ``overwrite_other_segments`` makes edits exclusive instead:
    voxels added to one segment are then taken away from the other (unlocked) segments.

Edits
    Every change of voxels goes through :meth:`Segmentation.modify` (or
    :meth:`Segmentation.write_masks` for several segments at once), which refuses locked
    segments, records a sparse diff for undo and tells the listeners which box changed. Tools
    compute their whole result first and commit it in one call, so an error or a cancel leaves
    the segmentation untouched.

Events and threads
    ``subscribe(callback)`` registers ``callback(event: SegmentationEvent)``; it runs on the thread
    that made the change (a GUI must hand it over to its own thread). Tools may run in a worker
    thread: label writes happen under ``seg.lock``, so a view that copies a slice under
    ``with seg.lock:`` never sees half an edit. Run one tool at a time per segmentation.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from app.errors import SegmentationError
from app.tools.segmentation.grid import (
    Box,
    Grid,
    box_contains,
    box_pad,
    box_union,
    mask_box,
    relative,
)
from app.tools.segmentation.history import Change, History, LabelDiff
from app.tools.segmentation.stats import SegmentStatistics, segment_statistics

MAX_SEGMENTS = 64
Mode = Literal["set", "add", "remove"]
_SLAB_VOXELS = 1 << 19  # slab size of modify_slabs: its temporaries stay in a 2 MiB L2 cache

# Colours for new segments (0..1 RGB), starting with bone.
PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.945, 0.839, 0.569),
    (0.847, 0.396, 0.310),
    (0.502, 0.682, 0.502),
    (0.694, 0.478, 0.396),
    (0.435, 0.722, 0.824),
    (0.863, 0.961, 0.078),
    (0.565, 0.933, 0.565),
    (0.667, 0.490, 0.761),
    (0.980, 0.980, 0.824),
    (0.275, 0.510, 0.706),
)


@dataclass
class Segment:
    """One named segment: an id that never changes, its bit in the label field, display state."""

    id: str
    name: str
    bit: int
    color: tuple[float, float, float] = PALETTE[0]
    visible: bool = True
    locked: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Segment:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            bit=int(data["bit"]),
            color=tuple(float(c) for c in data.get("color", PALETTE[0])),  # type: ignore[arg-type]
            visible=bool(data.get("visible", True)),
            locked=bool(data.get("locked", False)),
        )


@dataclass(frozen=True)
class SegmentationEvent:
    """What changed: ``kind`` is "labels" (voxels in ``box``), "segments" or "history"."""

    kind: str
    segment_ids: tuple[str, ...] = ()
    box: Box | None = None


def _dtype_for(bits_needed: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits_needed <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    msg = f"a segmentation holds at most {MAX_SEGMENTS} segments; remove one before adding another"
    raise SegmentationError(msg)


class Segmentation:
    """Segments of one volume; see the module docstring for storage, edits and events."""

    def __init__(self, grid: Any, *, history_mib: float = 256.0) -> None:
        self.grid = Grid.of(grid)
        self.labels = np.zeros(self.grid.shape, dtype=np.uint8)
        self.history = History(int(history_mib * (1 << 20)))
        self.overwrite_other_segments = False
        self._segments: list[Segment] = []
        self._boxes: dict[str, Box | None] = {}  # a box holding each segment's voxels
        self._exact: set[str] = set()  # segments whose box above is tight
        self._next_id = 1
        self._listeners: list[Callable[[SegmentationEvent], None]] = []
        self._open: Change | None = None
        self._depth = 0
        self.lock = threading.RLock()
        """Held while labels are written; a view on another thread reads under ``with seg.lock``."""

    # ----------------------------------------------------------------- events
    def subscribe(self, callback: Callable[[SegmentationEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every change; returns a function that unsubscribes."""
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _emit(self, kind: str, ids: tuple[str, ...] = (), box: Box | None = None) -> None:
        event = SegmentationEvent(kind, ids, box)
        for callback in list(self._listeners):
            callback(event)

    # --------------------------------------------------------------- segments
    @property
    def segments(self) -> list[Segment]:
        """The segments in display order (do not edit them directly; use update_segment)."""
        return list(self._segments)

    def segment(self, key: str | Segment) -> Segment:
        """The segment with this id or name; SegmentationError when there is none."""
        if isinstance(key, Segment):
            key = key.id
        for seg in self._segments:
            if seg.id == key:
                return seg
        for seg in self._segments:
            if seg.name == key:
                return seg
        names = ", ".join(s.name for s in self._segments) or "none yet"
        msg = f"no segment named {key!r}; segments: {names}"
        raise SegmentationError(msg)

    def has_segment(self, key: str) -> bool:
        return any(key in (s.id, s.name) for s in self._segments)

    def add_segment(
        self, name: str | None = None, color: tuple[float, float, float] | None = None
    ) -> Segment:
        """Add an empty segment (undoable); the name defaults to "Segment N"."""
        if len(self._segments) >= MAX_SEGMENTS:
            msg = f"a segmentation holds at most {MAX_SEGMENTS} segments; remove one first"
            raise SegmentationError(msg)
        used = {s.bit for s in self._segments}
        bit = next(b for b in range(MAX_SEGMENTS) if b not in used)
        with self.group(f"add segment {name or ''}".strip()):
            self._snapshot_segments()
            self._ensure_bits(bit + 1)
            seg_id = f"Segment_{self._next_id}"
            self._next_id += 1
            name = name or f"Segment {self._next_id - 1}"
            color = (
                tuple(color) if color is not None else PALETTE[len(self._segments) % len(PALETTE)]
            )
            segment = Segment(seg_id, self._unique_name(name), bit, color)  # type: ignore[arg-type]
            self._segments.append(segment)
            self._boxes[seg_id] = None
            self._exact.add(seg_id)
        self._emit("segments", (seg_id,))
        return segment

    def _unique_name(self, name: str) -> str:
        taken = {s.name for s in self._segments}
        if name not in taken:
            return name
        n = 2
        while f"{name} {n}" in taken:
            n += 1
        return f"{name} {n}"

    def remove_segment(self, key: str | Segment) -> None:
        """Remove a segment and clear its voxels (undoable)."""
        seg = self.segment(key)
        self._refuse_locked(seg)
        with self.group(f"remove segment {seg.name}"):
            self._snapshot_segments()
            box = self.bbox(seg)
            if box is not None:
                old = self.labels[box]
                new = old & ~self._bit_value(seg)
                self._commit(box, new, (seg.id,), (seg.bit,))
            self._segments.remove(seg)
            self._boxes.pop(seg.id, None)
            self._exact.discard(seg.id)
        self._emit("segments", (seg.id,))

    def update_segment(
        self,
        key: str | Segment,
        *,
        name: str | None = None,
        color: tuple[float, float, float] | None = None,
        visible: bool | None = None,
        locked: bool | None = None,
    ) -> Segment:
        """Rename or recolour (undoable), show/hide or lock/unlock (not in the undo history)."""
        seg = self.segment(key)
        if name is not None or color is not None:
            if name is not None and not name.strip():
                msg = "a segment name cannot be empty; type a name"
                raise SegmentationError(msg)
            with self.group(f"edit segment {seg.name}"):
                self._snapshot_segments()
                if name is not None and name != seg.name:
                    seg.name = self._unique_name(name.strip())
                if color is not None:
                    if len(color) != 3 or not all(0.0 <= float(c) <= 1.0 for c in color):
                        msg = "a segment colour is three numbers between 0 and 1"
                        raise SegmentationError(msg)
                    seg.color = tuple(float(c) for c in color)  # type: ignore[assignment]
        if visible is not None:
            seg.visible = bool(visible)
        if locked is not None:
            seg.locked = bool(locked)
        self._emit("segments", (seg.id,))
        return seg

    def move_segment(self, key: str | Segment, index: int) -> None:
        """Change the display order (not in the undo history)."""
        seg = self.segment(key)
        self._segments.remove(seg)
        self._segments.insert(max(0, min(index, len(self._segments))), seg)
        self._emit("segments", (seg.id,))

    def _segments_state(self) -> list[dict]:
        return [s.to_dict() for s in self._segments] + [{"next_id": self._next_id}]

    def _restore_segments(self, state: list[dict]) -> None:
        self._next_id = int(state[-1]["next_id"])
        self._segments = [Segment.from_dict(d) for d in state[:-1]]
        for seg in self._segments:
            self._boxes.setdefault(seg.id, self.grid.full_box())
        self._exact.clear()
        for seg_id in list(self._boxes):
            if not any(s.id == seg_id for s in self._segments):
                del self._boxes[seg_id]

    def _snapshot_segments(self) -> None:
        assert self._open is not None
        if self._open.segments_before is None:
            self._open.segments_before = self._segments_state()

    def _ensure_bits(self, bits_needed: int) -> None:
        dtype = _dtype_for(bits_needed)
        if dtype.itemsize > self.labels.dtype.itemsize:
            with self.lock:
                self.labels = self.labels.astype(dtype)

    def _bit_value(self, seg: Segment) -> np.generic:
        return self.labels.dtype.type(1 << seg.bit)

    def _refuse_locked(self, seg: Segment) -> None:
        if seg.locked:
            msg = f"segment {seg.name!r} is locked; unlock it to edit it"
            raise SegmentationError(msg)

    # ------------------------------------------------------------- reading
    def mask(self, key: str | Segment, box: Box | None = None) -> np.ndarray:
        """Boolean mask of a segment, on the whole grid or on ``box`` of it."""
        seg = self.segment(key)
        crop = self.labels if box is None else self.labels[box]
        if seg.bit == 0 and crop.dtype == np.uint8:
            return (crop & np.uint8(1)).view(bool)
        return (crop & self._bit_value(seg)) != 0

    def bbox(self, key: str | Segment) -> Box | None:
        """Tight box ``(k, j, i)`` slices of a segment's voxels, None when it is empty."""
        seg = self.segment(key)
        cached = self._boxes.get(seg.id, self.grid.full_box())
        if cached is None or seg.id in self._exact:
            return cached
        exact = mask_box(
            self.mask(seg, cached), (cached[0].start, cached[1].start, cached[2].start)
        )
        self._boxes[seg.id] = exact
        self._exact.add(seg.id)
        return exact

    def is_empty(self, key: str | Segment) -> bool:
        return self.bbox(key) is None

    def voxel_count(self, key: str | Segment) -> int:
        box = self.bbox(key)
        return 0 if box is None else int(np.count_nonzero(self.mask(key, box)))

    def label_map(self, keys: list[str] | None = None) -> tuple[np.ndarray, list[Segment]]:
        """An exclusive uint8/uint16 label map (value n = n-th listed segment; later wins overlaps)."""
        segs = [self.segment(k) for k in keys] if keys is not None else self.segments
        out = np.zeros(self.grid.shape, dtype=np.uint8 if len(segs) < 256 else np.uint16)
        for value, seg in enumerate(segs, start=1):
            box = self.bbox(seg)
            if box is not None:
                out[box][self.mask(seg, box)] = value
        return out, segs

    # ----------------------------------------------------------------- edits
    def check_mask(self, mask: np.ndarray, offset: tuple[int, int, int] = (0, 0, 0)) -> Box:
        """The box a mask at ``offset`` covers; SegmentationError unless it fits on the grid."""
        mask = np.asarray(mask)
        if mask.ndim != 3:
            msg = f"a mask must be 3D (k, j, i), got {mask.ndim}D; pass one mask per volume"
            raise SegmentationError(msg)
        box = tuple(slice(int(o), int(o) + int(n)) for o, n in zip(offset, mask.shape, strict=True))
        if any(s.start < 0 or s.stop > n for s, n in zip(box, self.grid.shape, strict=True)):
            msg = (
                f"mask of shape {mask.shape} at offset {tuple(offset)} does not fit the volume "
                f"{self.grid.shape}; crop or resample it to the volume grid"
            )
            raise SegmentationError(msg)
        return box  # type: ignore[return-value]

    def modify(
        self,
        key: str | Segment,
        mask: np.ndarray,
        mode: Mode = "set",
        offset: tuple[int, int, int] = (0, 0, 0),
        description: str = "",
        *,
        exclusive: bool | None = None,
    ) -> int:
        """Set, add to or remove from one segment with a boolean mask; returns changed voxels.

        ``mask`` covers the box at ``offset`` (``(k, j, i)``); with ``mode="set"`` the segment
        becomes exactly ``mask`` (voxels outside the box are cleared too). ``exclusive``
        overrides ``overwrite_other_segments`` for this call.
        """
        seg = self.segment(key)
        self._refuse_locked(seg)
        box = self.check_mask(mask, offset)
        mask = np.asarray(mask, dtype=bool)
        _check_mode(mode)
        if mode == "set":
            current = self.bbox(seg)
            if current is not None and not box_contains(box, current):
                grown = box_union(box, current)
                assert grown is not None
                bigger = np.zeros(tuple(s.stop - s.start for s in grown), dtype=bool)
                bigger[relative(box, grown)] = mask
                box, mask = grown, bigger
        exclusive = self.overwrite_other_segments if exclusive is None else exclusive
        with self.group(description or f"{mode} {seg.name}"):
            if exclusive and mode != "remove" and len(self._segments) > 1:
                new, bits = self._new_values(seg, box, mask, mode)
                changed = self._commit(box, new, (seg.id,), bits)
            else:
                changed = self._commit_bit(seg, box, self._flips(seg, box, mask, mode))
        if mode == "set":
            self._boxes[seg.id] = box  # holds the new voxels; made tight on the next bbox()
        return changed

    def modify_slabs(
        self,
        key: str | Segment,
        mask_of: Callable[[slice], np.ndarray],
        mode: Mode = "set",
        description: str = "",
    ) -> int:
        """:meth:`modify` over the whole grid, with the mask made slab by slab; returns changed voxels.

        ``mask_of(ks)`` returns the boolean mask of the slices ``ks`` (shape ``(len, nj, ni)``;
        it may reuse its buffer between calls). Each slab is made, compared with the segment,
        written and packed into the undo diff while it is in the CPU cache, so no whole-volume
        mask or temporary exists and a threshold costs about what the bare comparison does.
        The lock is held for the whole pass (views never see half of it). Exclusive edits
        (``overwrite_other_segments``) assemble the mask and take :meth:`modify`'s path.
        """
        seg = self.segment(key)
        self._refuse_locked(seg)
        _check_mode(mode)
        if self.overwrite_other_segments and mode != "remove" and len(self._segments) > 1:
            mask = np.concatenate([mask_of(ks) for ks in self._slabs()])
            return self.modify(seg, mask, mode, description=description)
        was_empty = seg.id in self._exact and self._boxes.get(seg.id) is None
        with self.group(description or f"{mode} {seg.name}"):
            with self.lock:
                diff, box = self._flip_slabs(seg, mask_of, mode)
            if diff is None or box is None:
                return 0
            self._record(diff, box, (seg.id,), (seg.bit,))
        if was_empty and mode != "remove":
            self._exact.add(seg.id)  # its voxels are exactly the flips, and box is tight
        return diff.count

    def _slab_step(self) -> int:
        """Slices per slab: about ``_SLAB_VOXELS``, each slab starting on a byte of packed bits."""
        plane = self.grid.shape[1] * self.grid.shape[2]
        align = 8 // math.gcd(plane, 8)
        step = max(1, _SLAB_VOXELS // plane)
        return -(-step // align) * align

    def _slabs(self) -> Iterator[slice]:
        nk, step = self.grid.shape[0], self._slab_step()
        for k0 in range(0, nk, step):
            yield slice(k0, min(nk, k0 + step))

    def _flip_slabs(
        self, seg: Segment, mask_of: Callable[[slice], np.ndarray], mode: Mode
    ) -> tuple[LabelDiff | None, Box | None]:
        """Flip the segment's bit slab by slab: the undo diff and the tight box of the flips.

        The diff covers whole slices from the slab holding the first flip; if ``mask_of``
        raises, the slabs already written are flipped back before the error propagates.
        """
        nk, nj, ni = self.grid.shape
        plane = nj * ni
        packed = np.zeros(-(-nk * plane // 8), np.uint8)
        hit_plane = np.zeros((nj, ni), bool)
        hit_k: list[int] = []
        count = done = 0
        try:
            for ks in self._slabs():
                box = (ks, slice(0, nj), slice(0, ni))
                flips = self._flips(seg, box, np.asarray(mask_of(ks), dtype=bool), mode)
                bits = np.packbits(flips)
                n = int(np.bitwise_count(bits).sum(dtype=np.int64))
                done = ks.stop
                if n:
                    start = ks.start * plane // 8
                    packed[start : start + bits.size] = bits
                    self._xor_bit(seg, box, flips)
                    np.logical_or(hit_plane, np.logical_or.reduce(flips, axis=0), out=hit_plane)
                    hit_k.extend(ks.start + np.flatnonzero(flips.any(axis=(1, 2))))
                    count += n
        except BaseException:
            self._unflip(seg, packed, done)
            raise
        if not count:
            return None, None
        k0, k1 = int(hit_k[0]), int(hit_k[-1]) + 1
        k_from = k0 - k0 % self._slab_step()
        whole = (slice(k_from, k1), slice(0, nj), slice(0, ni))
        packed = packed[k_from * plane // 8 : -(-k1 * plane // 8)]
        diff = LabelDiff.of_packed(whole, seg.bit, packed, count)
        plane_box = mask_box(hit_plane[None])
        assert plane_box is not None
        return diff, (slice(k0, k1), plane_box[1], plane_box[2])

    def _unflip(self, seg: Segment, packed: np.ndarray, done: int) -> None:
        """Flip back the bits ``packed`` holds for slices ``0:done`` (a failed slab pass)."""
        nj, ni = self.grid.shape[1:]
        box = (slice(0, done), slice(0, nj), slice(0, ni))
        diff = LabelDiff.of_packed(box, seg.bit, packed[: -(-done * nj * ni // 8)])
        if diff is not None:
            diff.apply_to(self.labels)

    def _flips(self, seg: Segment, box: Box, mask: np.ndarray, mode: Mode) -> np.ndarray:
        """Where the segment's bit must flip in ``box`` for this edit (one segment only)."""
        if seg.id in self._exact and self._boxes.get(seg.id) is None:
            # the segment is empty: set and add flip exactly the mask, remove flips nothing
            return mask if mode != "remove" else np.zeros(mask.shape, dtype=bool)
        old = self.labels[box]
        if seg.bit == 0 and old.dtype == np.uint8:
            current = (old & np.uint8(1)).view(bool)
        else:
            current = (old & self._bit_value(seg)) != 0
        if mode == "set":
            return np.not_equal(current, mask, out=current)
        if mode == "add":
            return np.greater(mask, current, out=current)
        return np.logical_and(mask, current, out=current)

    def _commit_bit(self, seg: Segment, box: Box, flips: np.ndarray) -> int:
        """Flip one segment's bit where ``flips`` is set: three passes, no full new crop."""
        diff = LabelDiff.of_plane(box, seg.bit, flips)
        if diff is None:
            return 0
        with self.lock:
            self._xor_bit(seg, box, flips)
        self._record(diff, box, (seg.id,), (seg.bit,))
        return diff.count

    def _xor_bit(self, seg: Segment, box: Box, flips: np.ndarray) -> None:
        """Flip the segment's bit in ``box`` wherever ``flips`` is set (in place, under the lock)."""
        target = self.labels[box]
        if seg.bit == 0 and target.dtype == np.uint8:
            np.bitwise_xor(target, flips.view(np.uint8), out=target)
        else:
            stamp = flips.astype(target.dtype)
            if seg.bit:
                np.left_shift(stamp, target.dtype.type(seg.bit), out=stamp)
            np.bitwise_xor(target, stamp, out=target)

    def _new_values(
        self, seg: Segment, box: Box, mask: np.ndarray, mode: Mode
    ) -> tuple[np.ndarray, tuple[int, ...] | None]:
        """New label values in ``box`` for an exclusive set/add (other segments lose the voxels)."""
        old = self.labels[box]
        dtype = old.dtype
        bit = self._bit_value(seg)
        others = locked = 0
        for other in self._segments:
            if other is not seg:
                if other.locked:
                    locked |= 1 << other.bit
                else:
                    others |= 1 << other.bit
        if locked:
            mask = mask & ((old & dtype.type(locked)) == 0)
        stamp = mask.astype(dtype)
        new = old & ~bit if mode == "set" else old.copy()
        new &= ~(stamp * dtype.type(others))
        new |= np.left_shift(stamp, dtype.type(seg.bit))
        return new, None

    def write_masks(
        self,
        masks: dict[str, np.ndarray],
        offset: tuple[int, int, int] = (0, 0, 0),
        description: str = "",
    ) -> int:
        """Set several segments inside one box at once (one undo step); returns changed voxels.

        Each mask replaces its segment inside the box only; outside the box nothing changes.
        """
        if not masks:
            return 0
        segs = [self.segment(k) for k in masks]
        for seg in segs:
            self._refuse_locked(seg)
        if len({np.shape(m) for m in masks.values()}) != 1:
            msg = "all masks given together must have the same shape"
            raise SegmentationError(msg)
        box = self.check_mask(next(iter(masks.values())), offset)
        new = self.labels[box].copy()
        for seg, mask in zip(segs, masks.values(), strict=True):
            bit = self._bit_value(seg)
            new &= ~bit
            new |= np.asarray(mask, dtype=bool).astype(new.dtype) * bit
        with self.group(description or "edit segments"):
            return self._commit(box, new, tuple(s.id for s in segs), tuple(s.bit for s in segs))

    def _commit(
        self, box: Box, new: np.ndarray, ids: tuple[str, ...], bits: tuple[int, ...] | None = None
    ) -> int:
        old = self.labels[box]
        diff = LabelDiff.between(box, old, new, bits)
        if diff is None:
            return 0
        with self.lock:
            self.labels[box] = new
        self._record(diff, box, ids, bits)
        return diff.count

    def _record(
        self, diff: LabelDiff, box: Box, ids: tuple[str, ...], bits: tuple[int, ...] | None
    ) -> None:
        assert self._open is not None, "commits happen inside a group"
        self._open.diffs.append(diff)
        for seg_id in ids:
            if seg_id in self._boxes:
                self._boxes[seg_id] = box_union(self._boxes[seg_id], box)
        if bits is None:  # other segments may have lost voxels too
            self._exact.clear()
        else:
            self._exact.difference_update(ids)
        self._emit("labels", ids, box)

    # --------------------------------------------------------------- history
    @contextlib.contextmanager
    def group(self, description: str) -> Iterator[None]:
        """Fold every edit inside the ``with`` block into one undo step.

        If the block raises, the edits made inside it are rolled back and the error propagates,
        so a failing or cancelled tool never leaves half a result.
        """
        outer = self._depth == 0
        if outer:
            self._open = Change(description)
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if outer:
                self._rollback()
            raise
        self._depth -= 1
        if outer:
            self._close()

    def begin_stroke(self, description: str = "paint") -> None:
        """Start a brush stroke: every edit until :meth:`end_stroke` is one undo step."""
        if self._depth:
            msg = "a stroke is already open; end it before starting another"
            raise SegmentationError(msg)
        self._open = Change(description)
        self._depth = 1

    def end_stroke(self) -> None:
        """Close the stroke opened by :meth:`begin_stroke` (harmless when none is open)."""
        if self._depth == 1 and self._open is not None:
            self._depth = 0
            self._close()

    def cancel_stroke(self) -> None:
        """Roll back the open stroke (for Escape during a drag)."""
        if self._depth == 1 and self._open is not None:
            self._depth = 0
            self._rollback()

    @contextlib.contextmanager
    def stroke(self, description: str = "paint") -> Iterator[None]:
        """``with seg.stroke(): ...`` around the dabs of one brush stroke."""
        with self.group(description):
            yield

    def _close(self) -> None:
        change, self._open = self._open, None
        if change is None:
            return
        if change.segments_before is not None:
            change.segments_after = self._segments_state()
        if not change.diffs and change.segments_before is None:
            return
        self.history.push(change.merged(self.labels))
        self._emit("history")

    def _rollback(self) -> None:
        change, self._open = self._open, None
        if change is None:
            return
        with self.lock:
            for diff in reversed(change.diffs):
                diff.apply_to(self.labels, forward=False)
        if change.segments_before is not None:
            self._restore_segments(change.segments_before)
        self._touch(change)

    def _touch(self, change: Change) -> None:
        box = change.box
        for seg in self._segments:
            self._boxes[seg.id] = box_union(self._boxes.get(seg.id), box)
        self._exact.clear()
        if change.segments_before is not None:
            self._emit("segments")
        if box is not None:
            self._emit("labels", tuple(s.id for s in self._segments), box)

    def undo(self) -> bool:
        """Undo the last change; False when there is nothing to undo."""
        if self._depth:
            msg = "finish the current stroke before undoing"
            raise SegmentationError(msg)
        if not self.history.undo_stack:
            return False
        change = self.history.undo_stack.pop()
        with self.lock:
            for diff in reversed(change.diffs):
                diff.apply_to(self.labels, forward=False)
        if change.segments_before is not None:
            self._restore_segments(change.segments_before)
        self.history.redo_stack.append(change)
        self._touch(change)
        self._emit("history")
        return True

    def redo(self) -> bool:
        """Redo the last undone change; False when there is nothing to redo."""
        if self._depth:
            msg = "finish the current stroke before redoing"
            raise SegmentationError(msg)
        if not self.history.redo_stack:
            return False
        change = self.history.redo_stack.pop()
        if change.segments_after is not None:
            self._ensure_bits(max((d["bit"] for d in change.segments_after[:-1]), default=0) + 1)
        with self.lock:
            for diff in change.diffs:
                diff.apply_to(self.labels, forward=True)
        if change.segments_after is not None:
            self._restore_segments(change.segments_after)
        self.history.undo_stack.append(change)
        self._touch(change)
        self._emit("history")
        return True

    # ------------------------------------------------------------ statistics
    def statistics(
        self, volume: Any = None, keys: list[str] | None = None, *, surface: bool = True
    ) -> list[SegmentStatistics]:
        """Volume (ml), surface (mm², SimpleITK's Crofton estimate), box and HU figures."""
        if volume is not None and not self.grid.matches(volume):
            msg = "the volume is not on the segmentation's grid; use the volume it was made on"
            raise SegmentationError(msg)
        segs = [self.segment(k) for k in keys] if keys is not None else self.segments
        return [segment_statistics(self, seg, volume, surface=surface) for seg in segs]

    def _load(self, labels: np.ndarray, segments: list[Segment], next_id: int) -> None:
        """Replace the whole content (used by readers and importers; clears the history)."""
        if labels.shape != self.grid.shape:
            msg = f"label array {labels.shape} does not match the grid {self.grid.shape}"
            raise SegmentationError(msg)
        self.labels = labels
        self._segments = list(segments)
        self._next_id = next_id
        self._boxes = {s.id: self.grid.full_box() for s in segments}
        self._exact.clear()
        self.history.clear()
        self._emit("segments")
        self._emit("labels", tuple(s.id for s in segments), self.grid.full_box())


def _check_mode(mode: str) -> None:
    if mode not in ("set", "add", "remove"):
        msg = f"unknown edit mode {mode!r}; use set, add or remove"
        raise SegmentationError(msg)


def padded_box(
    seg: Segmentation, key: str | Segment, pad: tuple[int, int, int] | int
) -> Box | None:
    """A segment's box grown by ``pad`` voxels (k, j, i), clipped to the grid."""
    box = seg.bbox(key)
    return None if box is None else box_pad(box, pad, seg.grid.shape)


__all__ = [
    "MAX_SEGMENTS",
    "PALETTE",
    "Segment",
    "SegmentStatistics",
    "Segmentation",
    "SegmentationEvent",
    "padded_box",
]
